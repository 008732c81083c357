#include "server/service/client_files.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "common/direct_output.h"
#include "spdlog/spdlog.h"

namespace distd::service {
namespace {

bool Names(const v1::ClientFile& file, const struct stat& st) {
  return st.st_dev == file.dev() && st.st_ino == file.ino();
}

// fd `number` of `pid`, opened for writing, if it is the file `file` names and one to write
// to directly; else -1.
int OpenClientFile(int pid, int number, const v1::ClientFile& file) {
  const std::string path = absl::StrCat("/proc/", pid, "/fd/", number);
  // A handle on the file that opens nothing (O_PATH), checked, then opened through that
  // handle: whatever the client's fd points to meanwhile, what is opened is what was checked.
  const int handle = open(path.c_str(), O_PATH | O_CLOEXEC);
  struct stat st;
  if (handle < 0 || fstat(handle, &st) != 0 || !Names(file, st) || !IsDirectOutputFile(st)) {
    spdlog::debug("{} is gone, not the file the client named, or not one to write to", path);
    if (handle >= 0) close(handle);
    return -1;
  }
  const std::string own = absl::StrCat("/proc/self/fd/", handle);
  const int fd = open(own.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
  const int err = errno;
  close(handle);
  if (fd < 0) {
    // ENXIO: a FIFO nobody reads; EACCES: another uid. Either way, Output events it is.
    spdlog::debug("cannot open {}: {}", path, strerror(err));
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
  if (err_file.ino() != 0 && err_file.dev() == out_file.dev() && err_file.ino() == out_file.ino()) {
    // One file, one order: both streams written here, or both relayed by distctl (one
    // written here and one by distctl could split each other's chunks).
    if (out < 0) return nullptr;
    return std::make_shared<const engine::OutputTargets>(out, out);
  }
  const int err = err_file.ino() != 0 ? OpenClientFile(pid, STDERR_FILENO, err_file) : -1;
  if (out < 0 && err < 0) return nullptr;
  return std::make_shared<const engine::OutputTargets>(out, err);
}

}  // namespace distd::service
