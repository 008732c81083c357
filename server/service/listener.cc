#include "server/service/listener.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stddef.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <string>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/private_dir.h"
#include "grpcpp/server_posix.h"
#include "spdlog/spdlog.h"

namespace distd::service {
namespace {

absl::Status Errno(absl::string_view what, const std::string& path) {
  return absl::FailedPreconditionError(absl::StrCat(what, " ", path, ": ", strerror(errno)));
}

std::string LockHolder(int lock_fd) {
  char buffer[32] = {};
  ssize_t n = pread(lock_fd, buffer, sizeof(buffer) - 1, 0);
  int pid = 0;
  if (n > 0 && absl::SimpleAtoi(absl::StripAsciiWhitespace(buffer), &pid)) {
    return absl::StrCat(" (pid ", pid, ")");
  }
  return "";
}

bool SameFile(const struct stat& a, const struct stat& b) {
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Listener>> Listener::Prepare(const std::string& path,
                                                            CreateMissing create) {
  if (path.size() >= sizeof(sockaddr_un::sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("socket path too long: ", path));
  }
  absl::StatusOr<int> dir_fd = OpenPrivateDirectory(DirectoryOf(path), create);
  if (!dir_fd.ok()) return dir_fd.status();
  const std::string lock_path = path + ".lock";
  absl::StatusOr<int> lock_fd =
      OpenPrivateFile(*dir_fd, BaseName(lock_path), O_RDWR | O_CREAT, lock_path);
  if (!lock_fd.ok()) {
    close(*dir_fd);
    return lock_fd.status();
  }
  // From here on the Listener owns both fds.
  std::unique_ptr<Listener> listener(new Listener(path, *dir_fd, *lock_fd));
  if (flock(*lock_fd, LOCK_EX | LOCK_NB) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("another distd is already serving ", path, LockHolder(*lock_fd)));
  }
  std::string pid = absl::StrCat(getpid(), "\n");
  if (ftruncate(*lock_fd, 0) != 0 || pwrite(*lock_fd, pid.data(), pid.size(), 0) < 0) {
    spdlog::warn("cannot write the pid to {}: {}", lock_path, strerror(errno));
  }
  return listener;
}

absl::Status Listener::Watch() {
  int wake[2];
  if (pipe2(wake, O_CLOEXEC | O_NONBLOCK) != 0) return Errno("cannot create a pipe for", path_);
  wake_read_ = wake[0];
  wake_write_ = wake[1];
  // Told when the socket file, the lock or the directory goes, so that a daemon that nobody
  // could reach any more puts its socket back, or stops (see Restore).
  inotify_fd_ = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  if (inotify_fd_ < 0 ||
      inotify_add_watch(inotify_fd_, DirectoryOf(path_).c_str(),
                        IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE_SELF |
                            IN_MOVE_SELF | IN_ONLYDIR | IN_DONT_FOLLOW) < 0) {
    return Errno("cannot watch the directory of", path_);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Listener>> Listener::Open(const std::string& path) {
  absl::StatusOr<std::unique_ptr<Listener>> listener = Prepare(path, CreateMissing::kYes);
  if (!listener.ok()) return listener.status();
  if (absl::Status s = (*listener)->Bind(); !s.ok()) return s;
  if (absl::Status s = (*listener)->Watch(); !s.ok()) return s;
  return listener;
}

absl::StatusOr<std::unique_ptr<Listener>> Listener::Adopt(int fd) {
  const std::string what = absl::StrCat("the socket passed as descriptor ", fd);
  int domain = 0;
  int type = 0;
  int listening = 0;
  socklen_t len = sizeof(int);
  sockaddr_un addr = {};
  socklen_t addr_len = sizeof(addr);
  if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0 ||
      getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 ||
      getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || domain != AF_UNIX ||
      type != SOCK_STREAM || listening == 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &addr_len) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        what,
        " is not a listening unix stream socket: distd takes only those from a service "
        "manager (give TCP listeners with --listen)"));
  }
  const size_t path_len = addr_len > offsetof(sockaddr_un, sun_path)
                              ? strnlen(addr.sun_path, addr_len - offsetof(sockaddr_un, sun_path))
                              : 0;
  if (path_len == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " has no path (an abstract or unnamed socket)"));
  }
  const std::string path(addr.sun_path, path_len);
  if (path[0] != '/') {
    return absl::InvalidArgumentError(absl::StrCat(what, " has a relative path: ", path));
  }
  // The directory is held to the rule of the sockets distd makes, but never made.
  absl::StatusOr<std::unique_ptr<Listener>> listener = Prepare(path, CreateMissing::kNo);
  if (!listener.ok()) return listener.status();
  struct stat st;
  if (fstatat((*listener)->dir_fd_, BaseName(path).c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 ||
      !S_ISSOCK(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat(what, " is bound to ", path, ", but no socket is there"));
  }
  const int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
    return Errno("cannot make non-blocking", path);
  }
  (*listener)->socket_fd_ = fd;
  (*listener)->socket_file_ = st;
  if (absl::Status s = (*listener)->Watch(); !s.ok()) return s;
  return listener;
}

Listener::Listener(std::string path, int dir_fd, int lock_fd)
    : path_(std::move(path)), dir_fd_(dir_fd), lock_fd_(lock_fd) {}

Listener::~Listener() {
  Stop();
  for (int fd : {wake_read_, wake_write_, inotify_fd_, dir_fd_}) {
    if (fd >= 0) close(fd);
  }
  // Released last: until here, no other daemon may take the path.
  close(lock_fd_);
}

absl::Status Listener::Bind() {
  const std::string name = BaseName(path_);
  // Holding the lock, any socket file left is a dead daemon's (or our own, replaced).
  if (unlinkat(dir_fd_, name.c_str(), 0) != 0 && errno != ENOENT) {
    return Errno("cannot remove the stale socket", path_);
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return Errno("cannot create a socket for", path_);
  sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  memcpy(addr.sun_path, path_.data(), path_.size());
  // Created 0600 from the start: no moment in which another user could connect.
  mode_t old_mask = umask(0177);
  int bound = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  umask(old_mask);
  struct stat st;
  if (bound != 0 || listen(fd, 128) != 0 ||
      fstatat(dir_fd_, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    absl::Status s = Errno("cannot listen on", path_);
    close(fd);
    return s;
  }
  if (socket_fd_ >= 0) close(socket_fd_);
  socket_fd_ = fd;
  socket_file_ = st;
  owns_file_ = true;
  return absl::OkStatus();
}

bool Listener::Intact() const {
  struct stat st;
  return lstat(path_.c_str(), &st) == 0 && SameFile(st, socket_file_);
}

bool Listener::Restore() {
  char events[4096];
  while (read(inotify_fd_, events, sizeof(events)) > 0) {
  }  // what counts is how things are now
  if (Intact()) return true;
  // Only in the directory that was checked, and only while the lock there is still ours:
  // otherwise another daemon may already serve the path.
  struct stat dir_by_path;
  struct stat dir_held;
  struct stat lock_by_path;
  struct stat lock_held;
  const bool ours = lstat(DirectoryOf(path_).c_str(), &dir_by_path) == 0 &&
                    fstat(dir_fd_, &dir_held) == 0 && SameFile(dir_by_path, dir_held) &&
                    lstat((path_ + ".lock").c_str(), &lock_by_path) == 0 &&
                    fstat(lock_fd_, &lock_held) == 0 && SameFile(lock_by_path, lock_held);
  if (!ours) {
    spdlog::error(
        "the directory of {} or its lock file was removed or replaced: nobody can "
        "reach this distd any more",
        path_);
    return false;
  }
  if (absl::Status s = Bind(); !s.ok()) {
    spdlog::error("the socket {} was removed or replaced, and cannot be made anew: {}", path_,
                  std::string(s.message()));
    return false;
  }
  spdlog::warn("the socket {} was removed or replaced: made it anew", path_);
  return true;
}

void Listener::Start(grpc::Server* server, service::Peers* peers,
                     absl::AnyInvocable<void()> unreachable) {
  unreachable_ = std::move(unreachable);
  thread_ = std::thread([this, server, peers] { Accept(server, peers); });
}

void Listener::Stop() {
  if (socket_fd_ < 0) return;
  if (thread_.joinable()) {
    char byte = 0;
    [[maybe_unused]] ssize_t n = write(wake_write_, &byte, 1);
    thread_.join();
  }
  // Only our own socket: a path that is no longer ours, or the service manager's, is left.
  if (owns_file_ && Intact()) unlink(path_.c_str());
  close(socket_fd_);
  socket_fd_ = -1;
}

void Listener::Accept(grpc::Server* server, service::Peers* peers) {
  pollfd fds[3] = {{socket_fd_, POLLIN, 0}, {wake_read_, POLLIN, 0}, {inotify_fd_, POLLIN, 0}};
  while (true) {
    int ready = poll(fds, 3, -1);
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) {
      spdlog::error("poll on {}: {}", path_, strerror(errno));
      return;
    }
    if (fds[1].revents != 0) return;
    if (fds[2].revents != 0) {
      if (!Restore()) {
        if (unreachable_) unreachable_();
        return;
      }
      fds[0].fd = socket_fd_;  // Bind may have made a new one
      fds[0].revents = 0;
      continue;
    }
    if (fds[0].revents == 0) continue;
    // Non-blocking, as gRPC needs: with a blocking fd every call on it fails.
    int fd = accept4(socket_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
      if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
        spdlog::warn("accept on {}: {}", path_, strerror(errno));
        if (errno == EMFILE || errno == ENFILE) poll(nullptr, 0, 100);  // let fds free up
      }
      continue;
    }
    ucred cred = {};
    socklen_t len = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
      spdlog::warn("SO_PEERCRED on {}: {}", path_, strerror(errno));
      close(fd);
      continue;
    }
    // Recorded before gRPC sees the fd, so that its first call finds the record.
    peers->Add(fd, service::PeerCredentials{cred.pid, cred.uid, cred.gid});
    spdlog::debug("connection on fd {} from pid {} uid {}", fd, cred.pid, cred.uid);
    grpc::AddInsecureChannelFromFd(server, fd);
  }
}

}  // namespace distd::service
