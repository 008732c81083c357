#include "common/shell_words.h"

#include <algorithm>
#include <climits>
#include <cstddef>
#include <utility>

#include "absl/strings/str_cat.h"

namespace distd {
namespace {

// One lexer for both entry points, so that a line means the same thing in a batch file as
// on its own. The only difference is what an unquoted newline does: in a batch it ends a
// command; in SplitShellWords (whose caller promised one logical line) it is taken as a blank,
// which is the lenient reading and still ends a comment.
//
// The input is arbitrary bytes (it comes from files and will be fuzzed): every access is
// bounds-checked by position, no character is assumed printable or non-NUL, and the line
// counter saturates instead of overflowing.
class Lexer {
 public:
  Lexer(absl::string_view text, bool batch) : text_(text), batch_(batch) {}

  // Reads the next command into `out`. Returns false once the text is exhausted and nothing
  // more was found.
  absl::StatusOr<bool> Next(BatchLine* out) {
    out->words.clear();
    out->line = 0;
    word_.clear();
    in_word_ = false;
    while (pos_ < text_.size()) {
      const char c = text_[pos_];
      switch (c) {
        case '\n':
          ++pos_;
          NewLine();
          EndWord(out);
          if (batch_ && !out->words.empty()) return true;
          break;
        case ' ':
        case '\t':
          ++pos_;
          EndWord(out);
          break;
        case '#':
          if (in_word_) {
            Append(out, c);
            ++pos_;
          } else {
            SkipComment();
          }
          break;
        case '\\':
          if (absl::Status status = Backslash(out); !status.ok()) return status;
          break;
        case '\'':
          if (absl::Status status = SingleQuoted(out); !status.ok()) return status;
          break;
        case '"':
          if (absl::Status status = DoubleQuoted(out); !status.ok()) return status;
          break;
        default:
          Append(out, c);
          ++pos_;
          break;
      }
    }
    EndWord(out);
    return !out->words.empty();
  }

 private:
  void NewLine() {
    if (line_ < INT_MAX) ++line_;
  }

  // Marks that a word has begun (an empty '' is a word too) and records where the command
  // starts.
  void StartWord(BatchLine* out) {
    if (in_word_) return;
    in_word_ = true;
    if (out->words.empty()) out->line = line_;
  }

  void Append(BatchLine* out, char c) {
    StartWord(out);
    word_.push_back(c);
  }

  void EndWord(BatchLine* out) {
    if (!in_word_) return;
    out->words.push_back(std::move(word_));
    word_.clear();
    in_word_ = false;
  }

  // To the end of the line; the newline itself is left for Next, which ends the command.
  void SkipComment() {
    size_t end = text_.find('\n', pos_);
    pos_ = end == absl::string_view::npos ? text_.size() : end;
  }

  // Outside quotes a backslash takes the next byte literally, and backslash-newline
  // disappears (a continuation line, which joins the halves of a word as in sh).
  absl::Status Backslash(BatchLine* out) {
    if (pos_ + 1 >= text_.size()) {
      return Error(line_, batch_ ? "backslash at the end of the file" : "trailing backslash");
    }
    const char next = text_[pos_ + 1];
    pos_ += 2;
    if (next == '\n') {
      NewLine();
    } else {
      Append(out, next);
    }
    return absl::OkStatus();
  }

  absl::Status SingleQuoted(BatchLine* out) {
    const int opened = line_;
    StartWord(out);
    const size_t close = text_.find('\'', pos_ + 1);
    if (close == absl::string_view::npos) return Error(opened, "unterminated \"'\"");
    for (size_t i = pos_ + 1; i < close; ++i) {
      if (text_[i] == '\n') NewLine();
      word_.push_back(text_[i]);
    }
    pos_ = close + 1;
    return absl::OkStatus();
  }

  // Inside "...", a backslash escapes only " \ $ ` and newline (POSIX); before anything else
  // it is kept, so "a\b" is the four bytes a\b.
  absl::Status DoubleQuoted(BatchLine* out) {
    const int opened = line_;
    StartWord(out);
    ++pos_;
    while (pos_ < text_.size()) {
      const char c = text_[pos_];
      if (c == '"') {
        ++pos_;
        return absl::OkStatus();
      }
      if (c == '\\' && pos_ + 1 < text_.size()) {
        const char next = text_[pos_ + 1];
        if (next == '"' || next == '\\' || next == '$' || next == '`') {
          word_.push_back(next);
          pos_ += 2;
          continue;
        }
        if (next == '\n') {
          NewLine();
          pos_ += 2;
          continue;
        }
      }
      if (c == '\n') NewLine();
      word_.push_back(c);
      ++pos_;
    }
    return Error(opened, "unterminated '\"'");
  }

  absl::Status Error(int line, absl::string_view what) const {
    if (!batch_) return absl::InvalidArgumentError(what);
    return absl::InvalidArgumentError(absl::StrCat("line ", line, ": ", what));
  }

  const absl::string_view text_;
  const bool batch_;
  size_t pos_ = 0;
  int line_ = 1;
  std::string word_;
  bool in_word_ = false;
};

}  // namespace

absl::StatusOr<std::vector<std::string>> SplitShellWords(absl::string_view line) {
  Lexer lexer(line, /*batch=*/false);
  BatchLine command;
  absl::StatusOr<bool> found = lexer.Next(&command);
  if (!found.ok()) return found.status();
  return std::move(command.words);
}

absl::StatusOr<std::vector<BatchLine>> ParseBatch(absl::string_view text) {
  Lexer lexer(text, /*batch=*/true);
  std::vector<BatchLine> commands;
  while (true) {
    BatchLine command;
    absl::StatusOr<bool> found = lexer.Next(&command);
    if (!found.ok()) return found.status();
    if (!*found) break;
    commands.push_back(std::move(command));
  }
  return commands;
}

std::string ShellQuote(absl::string_view word) {
  auto safe = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           absl::string_view("@%+=:,./_-").find(c) != absl::string_view::npos;
  };
  if (!word.empty() && std::all_of(word.begin(), word.end(), safe)) return std::string(word);
  std::string quoted = "'";
  for (char c : word) {
    if (c == '\'') {
      quoted += "'\\''";
    } else {
      quoted.push_back(c);
    }
  }
  quoted.push_back('\'');
  return quoted;
}

}  // namespace distd
