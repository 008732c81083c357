// distctl's output. Everything goes through write(2) on fds 1 and 2, never stdio: a job's
// output is relayed as it arrives and must not sit in a buffer, and mixing the two would
// reorder lines.
#ifndef DISTD_CLIENT_PRINT_H_
#define DISTD_CLIENT_PRINT_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/shell_words.h"

namespace distd::client {

// Writes all of `data` to `fd`: retries on EINTR and short writes, and waits with poll() if
// the fd was left non-blocking by whoever handed it to us. Returns 0, or the errno that
// stopped it (EPIPE when the reader went away; SIGPIPE is ignored, see signals.h).
int WriteAll(int fd, absl::string_view data);

// To stdout; a failure is ignored (there is no one left to tell).
void Out(absl::string_view text);
// "distctl: <message>\n" on stderr. Every message of distctl starts that way.
void Err(absl::string_view message);
// A usage error of `command` ("" for the top level): the message, then where to get help.
// Returns kExitUsage.
int UsageError(absl::string_view command, absl::string_view message);

// For one line of a terminal or a table: control characters become '?'.
std::string OneLine(absl::string_view text);
// At most `width` bytes of `text`, ending in "..." when cut, never inside a UTF-8 sequence.
std::string Elide(absl::string_view text, size_t width);

// "850ms", "12.3s", "4m05s", "2h07m".
std::string FormatElapsed(absl::Duration elapsed);

// Whether what goes to `fd` is coloured: it is a terminal, NO_COLOR is unset or empty (see
// no-color.org) and TERM is not "dumb".
bool ColourOn(int fd);
enum class Colour { kGreen, kRed, kBoldRed };
// `text` in `colour` when `on`, else `text` as it is.
std::string Paint(absl::string_view text, Colour colour, bool on);

// Rows of cells as columns separated by two spaces; the last column is not padded. Colour
// codes (Paint) in a cell take no width.
std::string FormatTable(const std::vector<std::vector<std::string>>& rows);

}  // namespace distd::client

#endif  // DISTD_CLIENT_PRINT_H_
