// Finding distd: the address from the global options or the default socket, a channel to it,
// and, for the default socket only, starting a daemon when nobody answers there (as Bazel's
// client starts its server), so that a first use needs no set-up.
#ifndef DISTD_CLIENT_CONNECT_H_
#define DISTD_CLIENT_CONNECT_H_

#include <memory>

#include "absl/status/statusor.h"
#include "client/commands.h"
#include "common/address.h"
#include "distd/v1/distd.grpc.pb.h"
#include "grpcpp/channel.h"

namespace distd::client {

struct Connection {
  Address address;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::Distd::Stub> stub;
};

// Connects to distd at the address (--addr, else DISTD_ADDR, else the default socket) and
// makes sure that it answers (within ~1 s) before anything is sent. At a unix socket, the
// process that serves it must be of this user (SO_PEERCRED), or nothing is sent at all. At
// the default socket only, if nobody answers, a distd is started for it and awaited
// (~10 s). A command's requests are sent only after this, so never twice. The channel
// does not reconnect: a caller that needs to (status --watch) connects again.
//
// Errors, worded for the user: InvalidArgument for a malformed address (a usage error),
// Cancelled if a signal interrupted the start-up, anything else when distd could not be
// reached or started.
absl::StatusOr<Connection> Connect(const GlobalOptions& options);

// The channel and stub for the address, without a ping and without starting anything (the
// peer is checked all the same): for a last call that must be tried even after a signal
// interrupted Connect (wait's abort).
absl::StatusOr<Connection> Dial(const GlobalOptions& options);

// The channels of Connect and Dial stay open until the process ends, even after their
// Connection is gone: closing a channel waits for gRPC to close its connection, and closing
// the last one shuts gRPC down, which joins its threads; about 1 ms at the end of every
// command, just before the process ends anyway. main() ends distctl with _exit(), which
// leaves the connections to the kernel to close, as when distctl is killed. Where the exit
// must run its normal course instead (AddressSanitizer checks for leaks then), main() calls
// this first: it closes them all, and so shuts gRPC down.
void CloseChannels();

// Prints a Connect error and returns the exit code for it: 2 for a bad address, 128+signal
// when interrupted, 125 otherwise.
int ReportConnectError(const absl::Status& status);

}  // namespace distd::client

#endif  // DISTD_CLIENT_CONNECT_H_
