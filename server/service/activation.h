// Sockets handed over by a service manager, as systemd's socket activation does: the
// environment's LISTEN_PID names this process and LISTEN_FDS counts the descriptors, which
// start at 3 (sd_listen_fds(3)).
#ifndef DISTD_SERVER_SERVICE_ACTIVATION_H_
#define DISTD_SERVER_SERVICE_ACTIVATION_H_

#include <vector>

#include "absl/status/statusor.h"

namespace distd::service {

// The descriptors passed to this process, each made close-on-exec; none when LISTEN_PID is
// unset or names another process. LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES are removed from
// the environment either way, so that no job inherits them. Malformed variables, or a
// descriptor that is not open, are InvalidArgument. Call it before any thread starts.
absl::StatusOr<std::vector<int>> TakePassedSockets();

}  // namespace distd::service

#endif  // DISTD_SERVER_SERVICE_ACTIVATION_H_
