#include "server/service/activation.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace distd::service {
namespace {

constexpr int kFirstPassedFd = 3;  // SD_LISTEN_FDS_START
// More than any unit of distd's has reason to pass; a larger count is a mistake.
constexpr int kMaxPassedFds = 64;

std::string Take(const char* name) {
  const char* value = getenv(name);
  std::string taken = value != nullptr ? value : "";
  unsetenv(name);
  return taken;
}

}  // namespace

absl::StatusOr<std::vector<int>> TakePassedSockets() {
  const bool was_set = getenv("LISTEN_PID") != nullptr;
  const std::string pid_text = Take("LISTEN_PID");
  const std::string count_text = Take("LISTEN_FDS");
  Take("LISTEN_FDNAMES");
  if (!was_set && count_text.empty()) return std::vector<int>{};
  int pid = 0;
  if (!absl::SimpleAtoi(pid_text, &pid) || pid <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("LISTEN_PID is not a process id: '", pid_text, "'"));
  }
  // Meant for another process (a parent that did not clear them): not ours to take.
  if (pid != getpid()) return std::vector<int>{};
  int count = 0;
  if (!absl::SimpleAtoi(count_text, &count) || count < 0 || count > kMaxPassedFds) {
    return absl::InvalidArgumentError(
        absl::StrCat("LISTEN_FDS is not a count of descriptors from 0 to ", kMaxPassedFds, ": '",
                     count_text, "'"));
  }
  std::vector<int> fds;
  for (int fd = kFirstPassedFd; fd < kFirstPassedFd + count; ++fd) {
    const int flags = fcntl(fd, F_GETFD);
    if (flags < 0 || fcntl(fd, F_SETFD, flags | FD_CLOEXEC) != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("LISTEN_FDS is ", count, ", but descriptor ", fd, " is not open"));
    }
    fds.push_back(fd);
  }
  return fds;
}

}  // namespace distd::service
