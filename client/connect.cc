#include "client/connect.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/const_init.h"
#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/autostart.h"
#include "client/print.h"
#include "client/rpc.h"
#include "client/signals.h"
#include "common/exit_codes.h"
#include "grpc/grpc.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/create_channel_posix.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"

namespace distd::client {
namespace {

constexpr absl::Duration kPingTimeout = absl::Seconds(1);
// How long DirectChannel waits for distd's answer before Connect falls back to a channel of
// gRPC's, which then decides as it always did (gRPC allows its own connection attempts at
// least 100 ms). A live distd answers within a millisecond.
constexpr absl::Duration kDirectAnswerTimeout = absl::Milliseconds(20);
constexpr absl::Duration kStartTimeout = absl::Seconds(10);
// After the distd we started has exited (most likely it lost the race for the lock to
// another client's), how long the daemon that won may take to answer.
constexpr absl::Duration kLoserGrace = absl::Seconds(2);

// Every channel made here, until CloseChannels. Never destroyed, like gRPC's own globals:
// static destructors must not shut gRPC down behind main's back.
ABSL_CONST_INIT absl::Mutex channels_mu(absl::kConstInit);
std::vector<std::shared_ptr<grpc::Channel>>* open_channels ABSL_GUARDED_BY(channels_mu) = nullptr;

// The Connection over `channel`, which is kept open until CloseChannels.
Connection Track(Address address, std::shared_ptr<grpc::Channel> channel) {
  {
    absl::MutexLock lock(&channels_mu);
    if (open_channels == nullptr) open_channels = new std::vector<std::shared_ptr<grpc::Channel>>();
    open_channels->push_back(channel);
  }
  Connection connection;
  connection.address = std::move(address);
  connection.stub = v1::Distd::NewStub(channel);
  connection.channel = std::move(channel);
  return connection;
}

// Holds gRPC started (grpc_init) while it lives.
class GrpcStarted {
 public:
  GrpcStarted() { grpc_init(); }
  ~GrpcStarted() { grpc_shutdown(); }
  GrpcStarted(const GrpcStarted&) = delete;
  GrpcStarted& operator=(const GrpcStarted&) = delete;
};

// Common to both kinds of channel.
grpc::ChannelArguments ChannelArgs() {
  grpc::ChannelArguments args;
  // A status of a busy host or a failed build's kept output can exceed the 4 MiB default.
  args.SetMaxReceiveMessageSize(64 << 20);
  // A job's output comes in chunks of up to 1 MiB: let distd send each in a few large
  // HTTP/2 frames rather than sixty-four of the default 16 KiB.
  args.SetInt(GRPC_ARG_HTTP2_MAX_FRAME_SIZE, 1 << 20);
  return args;
}

// A channel that connects, and reconnects, by itself.
std::shared_ptr<grpc::Channel> NewChannel(const Address& address) {
  grpc::ChannelArguments args = ChannelArgs();
  // After a failed connection gRPC waits 1 s and then longer before trying again. While
  // distctl waits for a distd it just started, that wait is all the latency there is: keep
  // it short. (Unix sockets fail fast, so this costs nothing.)
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 20);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 20);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 250);
  return grpc::CreateCustomChannel(address.GrpcTarget(), grpc::InsecureChannelCredentials(), args);
}

// A socket connected to the unix socket `path`, or -1 if nothing listens there (or its
// backlog is full: a non-blocking connect does not wait for that).
int ConnectUnixSocket(const std::string& path) {
  sockaddr_un name{};
  if (path.size() >= sizeof(name.sun_path)) return -1;  // ParseAddress refuses such paths
  name.sun_family = AF_UNIX;
  std::memcpy(name.sun_path, path.data(), path.size());
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  if (connect(fd, reinterpret_cast<const sockaddr*>(&name), sizeof(name)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Waits until the server on `fd` has sent its first HTTP/2 frame, a SETTINGS frame (the
// server's connection preface, RFC 9113 3.4), and leaves it to be read. That is what
// gRPC's own connect waits for before it calls a connection READY: a gRPC server is there
// and serves this connection, not just something that accepted it. False if it has not
// come by `deadline`, or if anything else came (the caller then takes the slow way, which
// is always right): distd writes the frame in one write. Looks at least once, so that a
// deadline already past (a slow gRPC start) only limits the waiting.
bool AwaitServerPreface(int fd, absl::Time deadline) {
  pollfd readable = {fd, POLLIN, 0};
  const absl::Duration left = std::max(deadline - absl::Now(), absl::ZeroDuration());
  if (poll(&readable, 1,
           static_cast<int>(absl::ToInt64Milliseconds(absl::Ceil(left, absl::Milliseconds(1))))) <=
      0) {
    return false;
  }
  constexpr ssize_t kFrameHeaderSize = 9;  // length (3 bytes), type, flags, stream id (4)
  unsigned char header[kFrameHeaderSize];
  return recv(fd, header, sizeof(header), MSG_PEEK) == kFrameHeaderSize &&
         header[3] == 0x4;  // the type: SETTINGS
}

// The fast way in, for a command's calls on a unix socket: distctl connects the socket
// itself, before gRPC starts, so that distd accepts the connection and answers it while
// gRPC starts its threads (the caller starts gRPC after ConnectUnixSocket); once the answer
// is there, the socket becomes a channel of its own. Its first call goes out at once,
// without the round trip that gRPC's own connect waits for first, and there is no
// resolver, load balancer or reconnection to set up for a connection that one command uses.
// The channel never reconnects. Takes `fd`; nullptr (and `fd` closed) when distd did not
// answer as AwaitServerPreface requires within kDirectAnswerTimeout of `connected`.
std::shared_ptr<grpc::Channel> DirectChannel(const Address& address, int fd, absl::Time connected) {
  if (!AwaitServerPreface(fd, connected + kDirectAnswerTimeout)) {
    close(fd);
    return nullptr;
  }
  grpc::ChannelArguments args = ChannelArgs();
  // As gRPC's own channel to a unix: target says.
  args.SetString(GRPC_ARG_DEFAULT_AUTHORITY, "localhost");
  return grpc::CreateCustomInsecureChannelFromFd(address.GrpcTarget(), fd, args);
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

// The address from the options, else the default socket.
absl::StatusOr<Address> ChooseAddress(const GlobalOptions& options) {
  if (!options.addr.empty()) {
    absl::StatusOr<Address> address = ParseAddress(options.addr);
    if (!address.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(options.addr_source, ": ", address.status().message()));
    }
    return address;
  }
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
  return address;
}

}  // namespace

absl::StatusOr<Connection> Dial(const GlobalOptions& options) {
  absl::StatusOr<Address> address = ChooseAddress(options);
  if (!address.ok()) return address.status();
  std::shared_ptr<grpc::Channel> channel = NewChannel(*address);
  return Track(*std::move(address), std::move(channel));
}

absl::StatusOr<Connection> Connect(const GlobalOptions& options, Reconnect reconnect) {
  absl::StatusOr<Address> address = ChooseAddress(options);
  if (!address.ok()) return address.status();
  const bool explicit_address = !options.addr.empty();

  // Before anything is sent, distd must have answered the connection, so that "nobody is
  // there" is told apart from "distd died during the call" later on, and so that a command
  // sends its request at most once: nothing of it has been sent when a distd is started
  // below, and nothing is sent again afterwards.
  //
  // The fast way (see DirectChannel): distd's answer to the connection itself, which the
  // command's first call needs anyway, with no round trip of its own. A refusal
  // (PERMISSION_DENIED) then comes as the status of that call, which distd refuses before
  // acting on it, and which the command reports in the same words as a refused ping.
  const absl::Time connected = absl::Now();
  const int fd = reconnect == Reconnect::kNo && address->kind == Address::Kind::kUnix
                     ? ConnectUnixSocket(address->path)
                     : -1;
  // Started after the connect, so that the two overlap; held until the channel, which holds
  // gRPC itself, is made.
  GrpcStarted grpc_started;
  if (fd >= 0) {
    std::shared_ptr<grpc::Channel> channel = DirectChannel(*address, fd, connected);
    if (channel != nullptr) return Track(*std::move(address), std::move(channel));
  }

  // Otherwise (nothing listens there, or what does answered too late or not as distd would;
  // or a channel that must reconnect by itself; or a TCP address): one round trip over a
  // channel of gRPC's, which makes a connection of its own, and which says what is wrong in
  // gRPC's words.
  Connection connection = Track(*address, NewChannel(*address));
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

void CloseChannels() {
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  {
    absl::MutexLock lock(&channels_mu);
    if (open_channels != nullptr) channels.swap(*open_channels);
  }
  // Destroyed here, outside the lock: the last one shuts gRPC down.
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
