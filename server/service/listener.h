// The daemon's unix socket: made safe, bound, and accepted by the daemon itself.
//
// gRPC has no way to tell a unix-socket peer's credentials, so the daemon listens and accepts
// on its own, reads SO_PEERCRED for each connection, records it (service::Peers), and hands
// the connection to the server with grpc::AddInsecureChannelFromFd.
#ifndef DISTD_SERVER_SERVICE_LISTENER_H_
#define DISTD_SERVER_SERVICE_LISTENER_H_

#include <sys/stat.h>

#include <memory>
#include <string>
#include <thread>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "common/private_dir.h"
#include "grpcpp/server.h"
#include "server/service/peers.h"

namespace distd::service {

class Listener {
 public:
  // Prepares `path`: its directory is created with mode 0700 if missing and must be private
  // to this user (see common/private_dir.h), `path.lock` is locked with flock so that a
  // second daemon refuses to start instead of stealing the socket, a stale socket file is
  // removed, and the socket is bound with mode 0600.
  static absl::StatusOr<std::unique_ptr<Listener>> Open(const std::string& path);
  // Serves `fd`, a listening unix stream socket made by a service manager (see activation.h),
  // and takes it over. Its path's directory must pass the same check, and its lock is taken
  // the same way; but the socket file is the manager's: Stop leaves it in place, so that the
  // manager can start distd again on the next connection.
  static absl::StatusOr<std::unique_ptr<Listener>> Adopt(int fd);
  ~Listener();

  // Accepts connections on a thread of its own until Stop, handing each to `server`. A
  // socket file that is removed or replaced is made anew at once; if that cannot be done
  // (the directory or the lock file went too), the thread calls `unreachable` and stops.
  void Start(grpc::Server* server, service::Peers* peers, absl::AnyInvocable<void()> unreachable);
  // Stops accepting and removes the socket file; the lock is released by the destructor.
  void Stop();

  const std::string& path() const { return path_; }

 private:
  Listener(std::string path, int dir_fd, int lock_fd);
  // Checks the directory of `path` and takes its lock.
  static absl::StatusOr<std::unique_ptr<Listener>> Prepare(const std::string& path,
                                                           CreateMissing create);
  // Sets up the watch on the directory, once the socket is there.
  absl::Status Watch();
  // (Re)creates the socket at path_ and listens on it.
  absl::Status Bind();
  // Whether path_ is still the socket file Bind made.
  bool Intact() const;
  // After an event in the directory: puts the socket back if it went; false if it cannot.
  bool Restore();
  void Accept(grpc::Server* server, service::Peers* peers);

  const std::string path_;
  const int dir_fd_;  // the checked directory
  const int lock_fd_;
  int socket_fd_ = -1;
  struct stat socket_file_ = {};
  bool owns_file_ = false;  // whether Bind made the socket file, so Stop removes it
  int wake_read_ = -1;
  int wake_write_ = -1;
  int inotify_fd_ = -1;
  absl::AnyInvocable<void()> unreachable_;
  std::thread thread_;
};

}  // namespace distd::service

#endif  // DISTD_SERVER_SERVICE_LISTENER_H_
