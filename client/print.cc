#include "client/print.h"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/exit_codes.h"

namespace distd::client {

int WriteAll(int fd, absl::string_view data) {
  while (!data.empty()) {
    ssize_t n = write(fd, data.data(), data.size());
    if (n >= 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      // Someone gave us a non-blocking fd (a shared pipe, a terminal set up by an editor):
      // wait until it drains instead of spinning or dropping output.
      pollfd pfd{fd, POLLOUT, 0};
      if (poll(&pfd, 1, -1) < 0 && errno != EINTR) return errno;
      continue;
    }
    return errno;
  }
  return 0;
}

void Out(absl::string_view text) { (void)WriteAll(STDOUT_FILENO, text); }

void Err(absl::string_view message) {
  (void)WriteAll(STDERR_FILENO, absl::StrCat("distctl: ", message, "\n"));
}

int UsageError(absl::string_view command, absl::string_view message) {
  std::string prefix = command.empty() ? "" : absl::StrCat(command, ": ");
  std::string help =
      command.empty() ? "distctl --help" : absl::StrCat("distctl ", command, " --help");
  Err(absl::StrCat(prefix, message));
  Err(absl::StrCat("try '", help, "' for usage"));
  return kExitUsage;
}

std::string OneLine(absl::string_view text) {
  std::string line(text);
  for (char& c : line) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) c = '?';
  }
  return line;
}

std::string Elide(absl::string_view text, size_t width) {
  if (text.size() <= width) return std::string(text);
  if (width < 3) return std::string(width, '.');
  size_t keep = width - 3;
  // Back off over UTF-8 continuation bytes (10xxxxxx) so a character is never split.
  while (keep > 0 && (static_cast<unsigned char>(text[keep]) & 0xC0) == 0x80) --keep;
  return absl::StrCat(text.substr(0, keep), "...");
}

std::string FormatElapsed(absl::Duration elapsed) {
  if (elapsed < absl::ZeroDuration()) elapsed = absl::ZeroDuration();
  if (elapsed < absl::Seconds(1)) {
    return absl::StrCat(absl::ToInt64Milliseconds(elapsed), "ms");
  }
  if (elapsed < absl::Minutes(1)) {
    return absl::StrFormat("%.1fs", absl::ToDoubleSeconds(elapsed));
  }
  int64_t seconds = absl::ToInt64Seconds(elapsed);
  if (elapsed < absl::Hours(1)) {
    return absl::StrFormat("%dm%02ds", seconds / 60, seconds % 60);
  }
  return absl::StrFormat("%dh%02dm", seconds / 3600, seconds / 60 % 60);
}

bool ColourOn(int fd) {
  const char* no_colour = getenv("NO_COLOR");
  const char* term = getenv("TERM");
  return isatty(fd) == 1 && (no_colour == nullptr || no_colour[0] == '\0') &&
         (term == nullptr || std::strcmp(term, "dumb") != 0);
}

std::string Paint(absl::string_view text, Colour colour, bool on) {
  if (!on) return std::string(text);
  const char* code = colour == Colour::kGreen ? "32" : colour == Colour::kRed ? "31" : "1;31";
  return absl::StrCat("\x1b[", code, "m", text, "\x1b[0m");
}

namespace {

// The width of `cell` on a terminal, its colour codes (ESC [ ... m) left out.
size_t VisibleWidth(absl::string_view cell) {
  size_t width = 0;
  for (size_t i = 0; i < cell.size(); ++i) {
    if (cell[i] == '\x1b' && i + 1 < cell.size() && cell[i + 1] == '[') {
      const size_t end = cell.find('m', i);
      if (end != absl::string_view::npos) {
        i = end;
        continue;
      }
    }
    ++width;
  }
  return width;
}

}  // namespace

std::string FormatTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], VisibleWidth(row[i]));
  }
  std::string table;
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line.append(widths[i] - VisibleWidth(row[i]) + 2, ' ');
    }
    // Trailing blanks of empty last cells say nothing.
    line.erase(line.find_last_not_of(' ') + 1);
    table += line;
    table.push_back('\n');
  }
  return table;
}

}  // namespace distd::client
