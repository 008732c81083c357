// Who is on the other end of each connection. The daemon accepts unix-socket connections
// itself, reads the peer's credentials (SO_PEERCRED) and records them here by fd before handing
// the fd to gRPC, whose calls then name their peer "fd:N". Every call is checked against the
// record: only the daemon's own uid may use it (root too is refused). Calls over TCP
// ("ipv4:..." and "ipv6:...") are the Remote's to authorize, if there is one.
#ifndef DISTD_SERVER_SERVICE_PEERS_H_
#define DISTD_SERVER_SERVICE_PEERS_H_

#include <sys/types.h>

#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/server_context.h"
#include "server/engine/types.h"
#include "server/service/remote.h"

namespace distd::service {

struct PeerCredentials {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
};

class Peers {
 public:
  // `remote` (if not null) outlives this.
  explicit Peers(uid_t owner, const Remote* remote = nullptr) : owner_(owner), remote_(remote) {}

  // Records the credentials of the connection on `fd`, replacing a record of an earlier,
  // closed connection that had the same fd number.
  void Add(int fd, const PeerCredentials& credentials);

  // The caller of a call whose peer is `peer` (as ServerContext::peer() gives it), or
  // PermissionDenied saying why not.
  absl::StatusOr<engine::Caller> Authorize(const std::string& peer);

  // The caller of the call of `context`, local or remote, and what it may do; else
  // PermissionDenied or Unauthenticated saying why not.
  absl::StatusOr<Authorized> Authorize(const grpc::ServerContextBase& context);

 private:
  const uid_t owner_;
  const Remote* const remote_;
  absl::Mutex mu_;
  absl::flat_hash_map<int, PeerCredentials> by_fd_ ABSL_GUARDED_BY(mu_);
};

}  // namespace distd::service

#endif  // DISTD_SERVER_SERVICE_PEERS_H_
