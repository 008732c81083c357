// See jobserver.h. Why distd's ends are file descriptions of their own: a pipe's two fds are
// one description each, shared with the job once it inherits them, and O_NONBLOCK belongs to
// the description. distd must never block reading back a token, and make expects its reads to
// block; reopening the pipe through /proc/self/fd gives distd ends whose flags are its own.
#include "server/spawn/jobserver.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace distd::spawn {
namespace {

// Above the fds the spawner puts things at (0 to 4), so that no dup2 in the child overwrites
// an fd that a later one reads.
constexpr int kLowestFd = 10;

void CloseFd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

absl::Status Errno(absl::string_view what) {
  return absl::ResourceExhaustedError(absl::StrCat("jobserver: ", what, ": ", strerror(errno)));
}

// `fd` moved to kLowestFd or above, close-on-exec; the old one closed. -1 on failure.
int MoveUp(int fd) {
  int moved = fcntl(fd, F_DUPFD_CLOEXEC, kLowestFd);
  close(fd);
  return moved;
}

bool IsJobserverWord(absl::string_view word) {
  if (word == "-j" || word == "--jobs") return true;
  if (absl::StartsWith(word, "--jobs=") || absl::StartsWith(word, "--jobserver-auth=") ||
      absl::StartsWith(word, "--jobserver-fds=")) {
    return true;
  }
  if (word.size() > 2 && absl::StartsWith(word, "-j")) {
    for (char c : word.substr(2)) {
      if (c < '0' || c > '9') return false;
    }
    return true;
  }
  return false;
}

// MAKEFLAGS' words: separated by spaces that no backslash escapes (make escapes the spaces
// in a value so).
std::vector<absl::string_view> Words(absl::string_view text) {
  std::vector<absl::string_view> words;
  size_t start = 0;
  for (size_t i = 0; i <= text.size(); ++i) {
    if (i < text.size() && text[i] == '\\') {
      ++i;
      continue;
    }
    if (i == text.size() || text[i] == ' ' || text[i] == '\t') {
      if (i > start) words.push_back(text.substr(start, i - start));
      start = i + 1;
    }
  }
  return words;
}

constexpr absl::string_view kVariables[] = {"MAKEFLAGS=", "MFLAGS=", "CARGO_MAKEFLAGS="};

}  // namespace

std::optional<JobserverStyle> ParseJobserverStyle(absl::string_view text) {
  if (text == "off") return JobserverStyle::kOff;
  if (text == "pipe") return JobserverStyle::kPipe;
  if (text == "fifo") return JobserverStyle::kFifo;
  return std::nullopt;
}

absl::StatusOr<std::unique_ptr<TokenPipe>> TokenPipe::Open(JobserverStyle style,
                                                           const std::string& fifo_path) {
  std::unique_ptr<TokenPipe> pipe(new TokenPipe());
  pipe->style_ = style;
  if (style == JobserverStyle::kPipe) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return Errno("pipe2");
    pipe->job_fds_[0] = MoveUp(fds[0]);
    pipe->job_fds_[1] = MoveUp(fds[1]);
    if (pipe->job_fds_[0] < 0 || pipe->job_fds_[1] < 0) return Errno("fcntl");
    std::string read_end = absl::StrCat("/proc/self/fd/", pipe->job_fds_[0]);
    std::string write_end = absl::StrCat("/proc/self/fd/", pipe->job_fds_[1]);
    pipe->own_read_ = open(read_end.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (pipe->own_read_ < 0) return Errno(absl::StrCat("reopen ", read_end));
    pipe->own_write_ = open(write_end.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (pipe->own_write_ < 0) return Errno(absl::StrCat("reopen ", write_end));
    return pipe;
  }
  if (style == JobserverStyle::kFifo) {
    if (mkfifo(fifo_path.c_str(), 0600) != 0) return Errno(absl::StrCat("mkfifo ", fifo_path));
    pipe->fifo_ = fifo_path;  // removed by the destructor from now on
    // Open for both, so that it never reads as closed while the job has not opened it yet.
    pipe->own_read_ = open(fifo_path.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (pipe->own_read_ < 0) return Errno(absl::StrCat("open ", fifo_path));
    pipe->own_write_ = pipe->own_read_;
    return pipe;
  }
  return absl::InvalidArgumentError("jobserver: no style");
}

TokenPipe::~TokenPipe() {
  if (own_write_ != own_read_) CloseFd(own_write_);
  CloseFd(own_read_);
  CloseFd(job_fds_[0]);
  CloseFd(job_fds_[1]);
  if (!fifo_.empty()) unlink(fifo_.c_str());
}

int TokenPipe::Put(int count) {
  if (count <= 0) return 0;
  std::string tokens(static_cast<size_t>(count), '+');
  ssize_t n;
  do {
    n = write(own_write_, tokens.data(), tokens.size());
  } while (n < 0 && errno == EINTR);
  return n > 0 ? static_cast<int>(n) : 0;
}

int TokenPipe::Take(int count) {
  if (count <= 0) return 0;
  char tokens[256];
  int taken = 0;
  while (taken < count) {
    const size_t want = std::min(sizeof(tokens), static_cast<size_t>(count - taken));
    ssize_t n = read(own_read_, tokens, want);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    taken += static_cast<int>(n);
  }
  return taken;
}

std::string TokenPipe::Auth() const {
  if (style_ == JobserverStyle::kFifo) return absl::StrCat("fifo:", fifo_);
  return absl::StrCat(kJobserverReadFd, ",", kJobserverWriteFd);
}

std::string JobMakeflags(absl::string_view makeflags, absl::string_view auth, int slots) {
  std::vector<absl::string_view> flags, variables;
  bool in_variables = false;
  for (absl::string_view word : Words(makeflags)) {
    if (in_variables) {
      variables.push_back(word);
    } else if (word == "--") {
      in_variables = true;
    } else if (!IsJobserverWord(word)) {
      flags.push_back(word);
    }
  }
  std::string result = absl::StrJoin(flags, " ");
  if (!auth.empty()) absl::StrAppend(&result, " -j", slots, " --jobserver-auth=", auth);
  if (!variables.empty()) absl::StrAppend(&result, " -- ", absl::StrJoin(variables, " "));
  return result;
}

std::vector<std::string> JobserverEnvironment(const std::vector<std::string>& env,
                                              absl::string_view auth, int slots) {
  std::vector<std::string> result;
  result.reserve(env.size() + 1);
  bool makeflags_set = false;
  for (const std::string& entry : env) {
    absl::string_view name;
    for (absl::string_view variable : kVariables) {
      if (absl::StartsWith(entry, variable)) name = variable;
    }
    if (name.empty()) {
      result.push_back(entry);
      continue;
    }
    const bool makeflags = name == "MAKEFLAGS=";
    if (makeflags && makeflags_set) continue;  // the first wins, as getenv has it
    std::string value =
        JobMakeflags(absl::string_view(entry).substr(name.size()), makeflags ? auth : "", slots);
    if (makeflags) makeflags_set = true;
    if (!value.empty()) result.push_back(absl::StrCat(name, value));
  }
  if (!auth.empty() && !makeflags_set) {
    result.push_back(absl::StrCat("MAKEFLAGS=", JobMakeflags("", auth, slots)));
  }
  return result;
}

bool HasJobserverVariable(const std::vector<std::string>& env) {
  for (const std::string& entry : env) {
    for (absl::string_view variable : kVariables) {
      if (absl::StartsWith(entry, variable)) return true;
    }
  }
  return false;
}

void StripInheritedJobserver() {
  for (absl::string_view variable : kVariables) {
    std::string name(variable.substr(0, variable.size() - 1));
    const char* value = getenv(name.c_str());
    if (value == nullptr) continue;
    std::string cleared = JobMakeflags(value, "", 0);
    if (cleared.empty()) {
      unsetenv(name.c_str());
    } else {
      setenv(name.c_str(), cleared.c_str(), 1);
    }
  }
}

}  // namespace distd::spawn
