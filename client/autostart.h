// Starting a distd for the default socket. Split from connect.cc because it is the one place
// where distctl creates a process, and that has rules of its own in a gRPC process.
#ifndef DISTD_CLIENT_AUTOSTART_H_
#define DISTD_CLIENT_AUTOSTART_H_

#include <sys/types.h>

#include <string>

#include "absl/status/statusor.h"

namespace distd::client {

struct StartedDaemon {
  pid_t pid = 0;  // our child: the caller reaps it if it exits
  std::string program;
  std::string log_path;
};

// Starts `distd --listen unix:SOCKET`, detached: the distd next to this distctl's binary, else
// the one on PATH; in a session of its own, in "/", stdin from /dev/null, stdout and stderr
// appended to distd.log beside the socket, no inherited fds beyond those, default signal
// state. The socket's directory is created with mode 0700 if missing, and must be private to
// this user (common/private_dir.h): else FailedPrecondition, naming it and what is wrong.
absl::StatusOr<StartedDaemon> StartDaemon(const std::string& socket_path);

}  // namespace distd::client

#endif  // DISTD_CLIENT_AUTOSTART_H_
