// Splits a line into words as a POSIX shell would, without expanding anything: the format of
// `distctl run --bg -f FILE`, one command a line.
#ifndef DISTD_COMMON_SHELL_WORDS_H_
#define DISTD_COMMON_SHELL_WORDS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace distd {

// One command of a batch file: its words and the line it started on (1-based).
struct BatchLine {
  int line = 0;
  std::vector<std::string> words;
};

// Words of one logical line. Rules: blanks (space, tab) separate words; '...' keeps
// everything literally; "..." keeps everything but \" \\ \$ \` and backslash-newline; a
// backslash outside quotes escapes the next character; '#' at the start of a word starts a
// comment. $, `, globs and the like are kept as they are (no expansion). An unterminated quote
// is InvalidArgument saying which.
absl::StatusOr<std::vector<std::string>> SplitShellWords(absl::string_view line);

// A whole batch: lines joined by a trailing backslash-newline (and newlines inside quotes),
// blank and comment-only lines skipped. Errors name the line: "line 3: unterminated '\"'".
absl::StatusOr<std::vector<BatchLine>> ParseBatch(absl::string_view text);

// The other way: one word as a POSIX shell reads it back, unchanged when it is safe, else
// single-quoted; and a command line of such words, for messages ("FAILED: sh -c 'exit 3'").
std::string ShellQuote(absl::string_view word);
template <typename Range>
std::string ShellJoin(const Range& words) {
  std::string line;
  for (const auto& word : words) {
    if (!line.empty()) line.push_back(' ');
    line += ShellQuote(word);
  }
  return line;
}

}  // namespace distd

#endif  // DISTD_COMMON_SHELL_WORDS_H_
