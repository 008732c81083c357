// The daemon's unix socket: made safe, bound, and accepted by the daemon itself.
//
// gRPC has no way to tell a unix-socket peer's credentials, so the daemon listens and accepts
// on its own, reads SO_PEERCRED for each connection, records it (service::Peers), and hands
// the connection to the server with grpc::AddInsecureChannelFromFd.
#ifndef DISTD_SERVER_LISTENER_H_
#define DISTD_SERVER_LISTENER_H_

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "grpcpp/server.h"
#include "server/service/peers.h"

namespace distd {

class Listener {
 public:
  // Prepares `path`: its directory is created with mode 0700 if missing (and must not be
  // writable by others if it exists), `path.lock` is locked with flock so that a second
  // daemon refuses to start instead of stealing the socket, a stale socket file is removed,
  // and the socket is bound with mode 0600.
  static absl::StatusOr<std::unique_ptr<Listener>> Open(const std::string& path);
  ~Listener();

  // Accepts connections on a thread of its own until Stop, handing each to `server`.
  void Start(grpc::Server* server, service::Peers* peers);
  // Stops accepting and removes the socket file; the lock is released by the destructor.
  void Stop();

  const std::string& path() const { return path_; }

 private:
  Listener(std::string path, int socket_fd, int lock_fd, int wake_read, int wake_write);
  void Accept(grpc::Server* server, service::Peers* peers);

  const std::string path_;
  int socket_fd_;
  int lock_fd_;
  int wake_read_;
  int wake_write_;
  std::thread thread_;
};

}  // namespace distd

#endif  // DISTD_SERVER_LISTENER_H_
