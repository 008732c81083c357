#include "server/listener.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "grpcpp/server_posix.h"
#include "spdlog/spdlog.h"

namespace distd {
namespace {

absl::Status Errno(absl::string_view what, const std::string& path) {
  return absl::FailedPreconditionError(absl::StrCat(what, " ", path, ": ", strerror(errno)));
}

std::string Dirname(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// The socket's directory: made 0700 if missing; refused if others could replace the socket.
absl::Status PrepareDirectory(const std::string& dir) {
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return Errno("cannot create", dir);
  struct stat st;
  if (stat(dir.c_str(), &st) != 0) return Errno("cannot stat", dir);
  if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(dir, " is not a directory"));
  }
  // Whoever owns the directory can replace the socket: it must be us or root.
  if (st.st_uid != geteuid() && st.st_uid != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(dir, " belongs to uid ", st.st_uid, ", not to this user"));
  }
  // A directory that others may write to (like /tmp) is fine only with the sticky bit.
  if ((st.st_mode & S_IWOTH) != 0 && (st.st_mode & S_ISVTX) == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(dir, " is writable by others: another user could replace the socket"));
  }
  return absl::OkStatus();
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

}  // namespace

absl::StatusOr<std::unique_ptr<Listener>> Listener::Open(const std::string& path) {
  if (path.size() >= sizeof(sockaddr_un::sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("socket path too long: ", path));
  }
  if (absl::Status s = PrepareDirectory(Dirname(path)); !s.ok()) return s;

  const std::string lock_path = path + ".lock";
  int lock_fd = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd < 0) return Errno("cannot open", lock_path);
  if (flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    std::string holder = LockHolder(lock_fd);
    close(lock_fd);
    return absl::FailedPreconditionError(
        absl::StrCat("another distd is already serving ", path, holder));
  }
  std::string pid = absl::StrCat(getpid(), "\n");
  if (ftruncate(lock_fd, 0) != 0 || pwrite(lock_fd, pid.data(), pid.size(), 0) < 0) {
    spdlog::warn("cannot write the pid to {}: {}", lock_path, strerror(errno));
  }

  // Holding the lock, any socket file left is a dead daemon's.
  if (unlink(path.c_str()) != 0 && errno != ENOENT) {
    absl::Status s = Errno("cannot remove the stale socket", path);
    close(lock_fd);
    return s;
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    close(lock_fd);
    return Errno("cannot create a socket for", path);
  }
  sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  memcpy(addr.sun_path, path.data(), path.size());
  // Created 0600 from the start: no moment in which another user could connect.
  mode_t old_mask = umask(0177);
  int bound = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  umask(old_mask);
  if (bound != 0 || listen(fd, 128) != 0) {
    absl::Status s = Errno("cannot listen on", path);
    close(fd);
    close(lock_fd);
    return s;
  }
  int wake[2];
  if (pipe2(wake, O_CLOEXEC | O_NONBLOCK) != 0) {
    absl::Status s = Errno("cannot create a pipe for", path);
    close(fd);
    close(lock_fd);
    return s;
  }
  return std::unique_ptr<Listener>(new Listener(path, fd, lock_fd, wake[0], wake[1]));
}

Listener::Listener(std::string path, int socket_fd, int lock_fd, int wake_read, int wake_write)
    : path_(std::move(path)),
      socket_fd_(socket_fd),
      lock_fd_(lock_fd),
      wake_read_(wake_read),
      wake_write_(wake_write) {}

Listener::~Listener() {
  Stop();
  close(wake_read_);
  close(wake_write_);
  // Released last: until here, no other daemon may take the path.
  close(lock_fd_);
}

void Listener::Start(grpc::Server* server, service::Peers* peers) {
  thread_ = std::thread([this, server, peers] { Accept(server, peers); });
}

void Listener::Stop() {
  if (socket_fd_ < 0) return;
  if (thread_.joinable()) {
    char byte = 0;
    [[maybe_unused]] ssize_t n = write(wake_write_, &byte, 1);
    thread_.join();
  }
  unlink(path_.c_str());
  close(socket_fd_);
  socket_fd_ = -1;
}

void Listener::Accept(grpc::Server* server, service::Peers* peers) {
  pollfd fds[2] = {{socket_fd_, POLLIN, 0}, {wake_read_, POLLIN, 0}};
  while (true) {
    int ready = poll(fds, 2, -1);
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) {
      spdlog::error("poll on {}: {}", path_, strerror(errno));
      return;
    }
    if (fds[1].revents != 0) return;
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

}  // namespace distd
