#include "client/connect.h"

#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/autostart.h"
#include "client/print.h"
#include "client/rpc.h"
#include "client/signals.h"
#include "common/exit_codes.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"

namespace distd::client {
namespace {

constexpr absl::Duration kPingTimeout = absl::Seconds(1);
constexpr absl::Duration kStartTimeout = absl::Seconds(10);
// After the distd we started has exited (most likely it lost the race for the lock to
// another client's), how long the daemon that won may take to answer.
constexpr absl::Duration kLoserGrace = absl::Seconds(2);

std::shared_ptr<grpc::Channel> NewChannel(const Address& address) {
  grpc::ChannelArguments args;
  // After a failed connection gRPC waits 1 s and then longer before trying again. While
  // distctl waits for a distd it just started, that wait is all the latency there is: keep
  // it short. (Unix sockets fail fast, so this costs nothing.)
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 20);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 20);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 250);
  // A status of a busy host or a failed build's kept output can exceed the 4 MiB default.
  args.SetMaxReceiveMessageSize(64 << 20);
  return grpc::CreateCustomChannel(address.GrpcTarget(), grpc::InsecureChannelCredentials(), args);
}

grpc::Status Ping(v1::Distd::Stub* stub, absl::Duration timeout, bool wait_for_ready) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(timeout));
  context.set_wait_for_ready(wait_for_ready);
  v1::PingRequest request;
  v1::PingResponse response;
  int signo = 0;
  return CallCancellable(
      &context, [&] { return stub->Ping(&context, request, &response); }, &signo);
}

std::string DescribeExit(int wait_status) {
  if (WIFEXITED(wait_status)) return absl::StrCat("exited with status ", WEXITSTATUS(wait_status));
  if (WIFSIGNALED(wait_status)) return absl::StrCat("was killed by signal ", WTERMSIG(wait_status));
  return "ended";
}

// Starts distd and polls it with a growing back-off until it answers, it has exited and no
// other daemon took its place, or kStartTimeout passes.
absl::Status StartAndAwait(const Connection& connection) {
  absl::StatusOr<StartedDaemon> daemon = StartDaemon(connection.address.path);
  if (!daemon.ok()) return daemon.status();
  const absl::Time deadline = absl::Now() + kStartTimeout;
  absl::Time give_up = deadline;
  bool exited = false;
  int wait_status = 0;
  absl::Duration step = absl::Milliseconds(25);
  grpc::Status last;
  while (true) {
    const absl::Time now = absl::Now();
    if (now >= give_up) break;
    const absl::Duration attempt = std::min(step, give_up - now);
    // wait_for_ready: the ping is sent the moment the channel connects, not refused while
    // the channel backs off between attempts.
    last = Ping(connection.stub.get(), attempt, /*wait_for_ready=*/true);
    if (last.ok()) return absl::OkStatus();
    if (ReceivedSignal() != 0) return absl::CancelledError("interrupted while starting distd");
    if (last.error_code() != grpc::StatusCode::UNAVAILABLE &&
        last.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED) {
      return absl::UnavailableError(DescribeRpcError(last, connection.address));
    }
    // A ping that failed at once must not make this a busy loop.
    const absl::Duration left = attempt - (absl::Now() - now);
    if (left > absl::ZeroDuration()) SleepUnlessSignalled(left);
    if (!exited && waitpid(daemon->pid, &wait_status, WNOHANG) == daemon->pid) {
      exited = true;
      give_up = std::min(deadline, absl::Now() + kLoserGrace);
    }
    step = std::min(step * 2, absl::Seconds(1));
  }
  if (exited) {
    return absl::UnavailableError(absl::StrCat(
        "started ", daemon->program, ", but it ", DescribeExit(wait_status),
        " and nothing answers on ", connection.address.path, "; see ", daemon->log_path));
  }
  return absl::UnavailableError(
      absl::StrCat("started ", daemon->program, " (pid ", daemon->pid,
                   "), but it did not answer on ", connection.address.path, " within ",
                   absl::FormatDuration(kStartTimeout), "; see ", daemon->log_path));
}

}  // namespace

absl::StatusOr<Connection> Dial(const GlobalOptions& options) {
  Connection connection;
  const bool explicit_address = !options.addr.empty();
  if (explicit_address) {
    absl::StatusOr<Address> address = ParseAddress(options.addr);
    if (!address.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(options.addr_source, ": ", address.status().message()));
    }
    connection.address = *std::move(address);
  } else {
    std::string path = DefaultSocketPath();
    // A relative DISTD_SOCKET names a socket in this directory; distd, started in "/", must
    // be told where that is.
    if (!path.empty() && path[0] != '/') {
      char cwd[4096];
      if (getcwd(cwd, sizeof(cwd)) != nullptr) path = absl::StrCat(cwd, "/", path);
    }
    absl::StatusOr<Address> address = ParseAddress(absl::StrCat("unix:", path));
    if (!address.ok()) {
      return absl::FailedPreconditionError(absl::StrCat("the default socket ", path, ": ",
                                                        address.status().message(),
                                                        " (set DISTD_SOCKET, or use --addr)"));
    }
    connection.address = *std::move(address);
  }
  connection.channel = NewChannel(connection.address);
  connection.stub = v1::Distd::NewStub(connection.channel);
  return connection;
}

absl::StatusOr<Connection> Connect(const GlobalOptions& options) {
  absl::StatusOr<Connection> dialed = Dial(options);
  if (!dialed.ok()) return dialed.status();
  Connection connection = *std::move(dialed);
  const bool explicit_address = !options.addr.empty();

  // One round trip, so that "nobody is there" is told apart from "distd died during the
  // call" later on, and a refusal (PERMISSION_DENIED) is reported before anything is sent.
  grpc::Status ping = Ping(connection.stub.get(), kPingTimeout, /*wait_for_ready=*/false);
  if (ping.ok()) return connection;
  if (ReceivedSignal() != 0) return absl::CancelledError("interrupted");
  // Only "nobody is at the default socket" starts a daemon; one that is there and refuses,
  // or hangs, is reported as it is.
  if (explicit_address || ping.error_code() != grpc::StatusCode::UNAVAILABLE) {
    return absl::UnavailableError(DescribeRpcError(ping, connection.address));
  }
  if (absl::Status started = StartAndAwait(connection); !started.ok()) return started;
  return connection;
}

int ReportConnectError(const absl::Status& status) {
  if (absl::IsCancelled(status)) {
    int signo = ReceivedSignal();
    return signo != 0 ? kExitSignalBase + signo : kExitDistdError;
  }
  Err(status.message());
  return absl::IsInvalidArgument(status) ? kExitUsage : kExitDistdError;
}

}  // namespace distd::client
