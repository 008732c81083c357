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

bool IsDevNull(const struct stat& st) { return S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3); }

// A terminal by its device number, before opening it: the virtual consoles and serial lines
// (major 4) and the pseudo-terminals' ends that programs write to (136-143). Not major 5:
// /dev/tty, /dev/console and /dev/ptmx act on open.
bool IsTerminalDevice(const struct stat& st) {
  if (!S_ISCHR(st.st_mode)) return false;
  const unsigned int major_number = major(st.st_rdev);
  return major_number == 4 || (major_number >= 136 && major_number <= 143);
}

bool Names(const v1::ClientFile& file, const struct stat& st) {
  return st.st_dev == file.dev() && st.st_ino == file.ino();
}

// fd `number` of `pid`, opened for writing, if it is the file `file` names and one to write
// to directly; else -1.
int OpenClientFile(int pid, int number, const v1::ClientFile& file) {
  const std::string path = absl::StrCat("/proc/", pid, "/fd/", number);
  struct stat st;
  if (stat(path.c_str(), &st) != 0 || !Names(file, st) ||
      !(S_ISFIFO(st.st_mode) || IsDevNull(st) || IsTerminalDevice(st))) {
    spdlog::debug("{} is gone, not the file the client named, or not one to write to", path);
    return -1;
  }
  // O_NOCTTY: a daemon without a terminal must not acquire the client's.
  int fd = open(path.c_str(), O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) {
    // ENXIO: a FIFO nobody reads; EACCES: another uid. Either way, Output events it is.
    spdlog::debug("cannot open {}: {}", path, strerror(errno));
    return -1;
  }
  // The fd may have changed between the stat and the open.
  struct stat opened;
  if (fstat(fd, &opened) != 0 || !Names(file, opened) ||
      (IsTerminalDevice(opened) && !isatty(fd))) {
    spdlog::debug("{} changed while it was opened", path);
    close(fd);
    return -1;
  }
  spdlog::debug("a foreground job's output goes to {} directly", path);
  return fd;
}

}  // namespace

std::shared_ptr<const engine::OutputTargets> OpenClientFiles(int pid,
                                                             const v1::RunRequest& request) {
  if (pid <= 0) return nullptr;
  const v1::ClientFile& out_file = request.stdout_file();
  const v1::ClientFile& err_file = request.stderr_file();
  const int out = out_file.ino() != 0 ? OpenClientFile(pid, STDOUT_FILENO, out_file) : -1;
  if (out >= 0 && err_file.dev() == out_file.dev() && err_file.ino() == out_file.ino()) {
    return std::make_shared<const engine::OutputTargets>(out, out);  // one file, one order
  }
  const int err = err_file.ino() != 0 ? OpenClientFile(pid, STDERR_FILENO, err_file) : -1;
  if (out < 0 && err < 0) return nullptr;
  return std::make_shared<const engine::OutputTargets>(out, err);
}

}  // namespace distd::service
