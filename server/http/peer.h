// Who is at the other end of a TCP connection on loopback: the kernel knows the uid that
// opened the peer's socket (sock_diag(7)), as it knows a unix socket's peer (SO_PEERCRED).
#ifndef DISTD_SERVER_HTTP_PEER_H_
#define DISTD_SERVER_HTTP_PEER_H_

#include <sys/types.h>

#include "absl/status/statusor.h"

namespace distd::http {

// The uid of the process that opened the other end of `fd`, an accepted TCP connection whose
// peer is on this host (a loopback address); NotFound if the kernel has no such socket (the
// peer is elsewhere, or closed it already), Unavailable if the kernel cannot be asked.
absl::StatusOr<uid_t> LoopbackPeerUid(int fd);

}  // namespace distd::http

#endif  // DISTD_SERVER_HTTP_PEER_H_
