#include "server/service/client_files.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace distd::service {
namespace {

// Can this file be opened again without side effects, and written without blocking?
bool Forwardable(int fd, const struct stat& st) {
  if (S_ISFIFO(st.st_mode)) return true;
  if (!S_ISCHR(st.st_mode)) return false;
  return isatty(fd) || st.st_rdev == makedev(1, 3);  // a terminal, or /dev/null
}

// fd `number` of `pid`, opened for writing, if it is the file `file` names; else -1.
int OpenClientFile(int pid, int number, const v1::ClientFile& file) {
  if (file.ino() == 0) return -1;  // not offered
  const std::string path = absl::StrCat("/proc/", pid, "/fd/", number);
  // O_NOCTTY: a daemon without a terminal must not acquire the client's.
  int fd = open(path.c_str(), O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) {
    // ENXIO: a FIFO nobody reads; EACCES: another uid. Either way, Output events it is.
    spdlog::debug("cannot open {} for a foreground job: {}", path, strerror(errno));
    return -1;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || st.st_dev != file.dev() || st.st_ino != file.ino() ||
      !Forwardable(fd, st)) {
    spdlog::debug("{} is not the file the client named, or not one to write to directly", path);
    close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

std::shared_ptr<const engine::OutputTargets> OpenClientFiles(int pid,
                                                             const v1::RunRequest& request) {
  if (pid <= 0 || (!request.has_stdout_file() && !request.has_stderr_file())) return nullptr;
  const int out = OpenClientFile(pid, STDOUT_FILENO, request.stdout_file());
  const int err = OpenClientFile(pid, STDERR_FILENO, request.stderr_file());
  if (out < 0 && err < 0) return nullptr;
  return std::make_shared<const engine::OutputTargets>(out, err);
}

}  // namespace distd::service
