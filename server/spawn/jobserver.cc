// See jobserver.h. Why distd reads a give pipe through a file description of its own: the
// pipe's read end is one description, shared with the job once it inherits it, and O_NONBLOCK
// belongs to the description. distd must never block taking back a token, and make expects its
// reads to block; reopening the pipe through /proc/self/fd gives distd a read end whose flags
// are its own. The ends only distd holds (the give pipe's write end, the return pipe's read
// end) are made non-blocking directly.
#include "server/spawn/jobserver.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
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

// `fd` (close-on-exec) at kLowestFd or above: itself, or moved there and the old one closed.
// -1 on failure.
int MoveUp(int fd) {
  if (fd >= kLowestFd) return fd;  // as in a running distd, which has many open
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
    int give[2], back[2];
    if (pipe2(give, O_CLOEXEC) != 0) return Errno("pipe2");
    pipe->give_ = give[1];
    pipe->job_fds_[0] = MoveUp(give[0]);
    if (pipe2(back, O_CLOEXEC) != 0) return Errno("pipe2");
    pipe->return_read_ = back[0];
    pipe->job_fds_[1] = MoveUp(back[1]);
    if (pipe->job_fds_[0] < 0 || pipe->job_fds_[1] < 0) return Errno("fcntl");
    if (fcntl(pipe->give_, F_SETFL, O_NONBLOCK) != 0 ||
        fcntl(pipe->return_read_, F_SETFL, O_NONBLOCK) != 0) {
      return Errno("fcntl");
    }
    std::string read_end = absl::StrCat("/proc/self/fd/", pipe->job_fds_[0]);
    pipe->take_back_ = open(read_end.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (pipe->take_back_ < 0) return Errno(absl::StrCat("reopen ", read_end));
    return pipe;
  }
  if (style == JobserverStyle::kFifo) {
    if (mkfifo(fifo_path.c_str(), 0600) != 0) return Errno(absl::StrCat("mkfifo ", fifo_path));
    pipe->fifo_ = fifo_path;  // removed by the destructor from now on
    // Open for both, so that it never reads as closed while the job has not opened it yet.
    pipe->give_ = open(fifo_path.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (pipe->give_ < 0) return Errno(absl::StrCat("open ", fifo_path));
    pipe->take_back_ = pipe->give_;
    return pipe;
  }
  return absl::InvalidArgumentError("jobserver: no style");
}

TokenPipe::~TokenPipe() {
  if (take_back_ != give_) CloseFd(take_back_);
  CloseFd(give_);
  CloseFd(return_read_);
  CloseFd(job_fds_[0]);
  CloseFd(job_fds_[1]);
  if (!fifo_.empty()) unlink(fifo_.c_str());
}

namespace {

// Reads up to `count` bytes from a non-blocking `fd`; how many.
int Drain(int fd, int count) {
  char tokens[256];
  int taken = 0;
  while (fd >= 0 && taken < count) {
    ssize_t n = read(fd, tokens, std::min(sizeof(tokens), static_cast<size_t>(count - taken)));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    taken += static_cast<int>(n);
  }
  return taken;
}

}  // namespace

int TokenPipe::Put(int count) {
  static constexpr char kTokens[] = "++++++++++++++++++++++++++++++++";
  int put = 0;
  while (put < count) {
    ssize_t n =
        write(give_, kTokens, std::min(sizeof(kTokens) - 1, static_cast<size_t>(count - put)));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    put += static_cast<int>(n);
  }
  return put;
}

int TokenPipe::Take(int count) { return Drain(take_back_, count); }

int TokenPipe::Returned(int max) { return Drain(return_read_, max); }

void TokenPipe::Started() { CloseFd(job_fds_[0]); }

int TokenPipe::Untaken() const {
  int n = 0;
  return ioctl(give_, FIONREAD, &n) == 0 ? n : 0;
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

JobserverChanges ChangesForJobserver(const std::vector<std::string>& env, absl::string_view auth,
                                     int slots) {
  JobserverChanges changes;
  bool makeflags_set = false;
  for (size_t i = 0; i < env.size(); ++i) {
    const std::string& entry = env[i];
    if (entry.empty() || (entry[0] != 'M' && entry[0] != 'C')) continue;  // the common case
    absl::string_view name;
    for (absl::string_view variable : kVariables) {
      if (absl::StartsWith(entry, variable)) name = variable;
    }
    if (name.empty()) continue;
    changes.drop.push_back(i);
    const bool makeflags = name == "MAKEFLAGS=";
    if (makeflags && makeflags_set) continue;  // the first wins, as getenv has it
    std::string value =
        JobMakeflags(absl::string_view(entry).substr(name.size()), makeflags ? auth : "", slots);
    if (makeflags) makeflags_set = true;
    if (!value.empty()) changes.add.push_back(absl::StrCat(name, value));
  }
  if (!auth.empty() && !makeflags_set) {
    changes.add.push_back(absl::StrCat("MAKEFLAGS=", JobMakeflags("", auth, slots)));
  }
  return changes;
}

std::vector<std::string> JobserverEnvironment(const std::vector<std::string>& env,
                                              absl::string_view auth, int slots) {
  JobserverChanges changes = ChangesForJobserver(env, auth, slots);
  std::vector<std::string> result;
  size_t next_drop = 0;
  for (size_t i = 0; i < env.size(); ++i) {
    if (next_drop < changes.drop.size() && changes.drop[next_drop] == i) {
      ++next_drop;
      continue;
    }
    result.push_back(env[i]);
  }
  for (std::string& entry : changes.add) result.push_back(std::move(entry));
  return result;
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

ReturnWatcher::ReturnWatcher(std::function<void(uint64_t)> on_return)
    : on_return_(std::move(on_return)),
      epoll_fd_(epoll_create1(EPOLL_CLOEXEC)),
      stop_fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  epoll_event stop = {.events = EPOLLIN, .data = {.u64 = 0}};  // job ids start at 1
  if (epoll_fd_ < 0 || stop_fd_ < 0 || epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, stop_fd_, &stop) != 0) {
    // Only at start-up, out of fds: jobs' returns then wait for the engine's next look.
    CloseFd(epoll_fd_);
    return;
  }
  thread_ = std::thread([this] { Run(); });
}

ReturnWatcher::~ReturnWatcher() {
  if (thread_.joinable()) {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = write(stop_fd_, &one, sizeof(one));
    thread_.join();
  }
  CloseFd(epoll_fd_);
  CloseFd(stop_fd_);
}

void ReturnWatcher::Watch(uint64_t id, int fd) {
  if (epoll_fd_ < 0 || fd < 0) return;
  epoll_event ev = {.events = EPOLLIN, .data = {.u64 = id}};
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
}

void ReturnWatcher::Unwatch(int fd) {
  if (epoll_fd_ >= 0 && fd >= 0) epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
}

void ReturnWatcher::Run() {
  epoll_event ready[32];
  while (true) {
    int n = epoll_wait(epoll_fd_, ready, 32, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return;
    for (int i = 0; i < n; ++i) {
      if (ready[i].data.u64 == 0) return;  // stopping
      on_return_(ready[i].data.u64);
    }
  }
}

}  // namespace distd::spawn
