#include "client/connect.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
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
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/autostart.h"
#include "client/print.h"
#include "client/rpc.h"
#include "client/signals.h"
#include "common/exit_codes.h"
#include "common/read_file.h"
#include "grpc/grpc.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/create_channel_posix.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"
#include "grpcpp/support/client_interceptor.h"

namespace distd::client {
namespace {

constexpr absl::Duration kPingTimeout = absl::Seconds(1);
constexpr absl::Duration kTcpPingTimeout = absl::Seconds(5);
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

// The whole of `path` (of at most 1 MiB), for `flag`'s message. A `secret` file must be this
// user's, and closed to everyone else, as ssh wants of a key.
absl::StatusOr<std::string> ReadClientFile(const std::string& flag, const std::string& path,
                                           bool secret) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    return absl::InvalidArgumentError(absl::StrCat(flag, " ", path, ": ", std::strerror(errno)));
  }
  struct stat st {};
  absl::Status status;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    status = absl::InvalidArgumentError(absl::StrCat(flag, " ", path, ": not a regular file"));
  } else if (secret && (st.st_uid != geteuid() || (st.st_mode & 077) != 0)) {
    status = absl::InvalidArgumentError(absl::StrCat(
        flag, " ", path, ": it must be this user's and closed to others (chmod 600 it)"));
  } else if (st.st_size > (1 << 20)) {
    status = absl::InvalidArgumentError(absl::StrCat(flag, " ", path, ": larger than 1 MiB"));
  }
  std::string text;
  if (status.ok()) {
    text = ReadUpTo(fd, static_cast<size_t>(st.st_size));
  }
  close(fd);
  if (!status.ok()) return status;
  return text;
}

// The token of a token file: its first line that is not blank or a comment, which is the
// token alone or distd's NAME TOKEN [...] line for it.
absl::StatusOr<std::string> ReadToken(const std::string& path) {
  absl::StatusOr<std::string> text = ReadClientFile("--token-file", path, /*secret=*/true);
  if (!text.ok()) return text.status();
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    std::vector<absl::string_view> words = absl::StrSplit(line, ' ', absl::SkipWhitespace());
    return std::string(words.size() >= 2 ? words[1] : words[0]);
  }
  return absl::InvalidArgumentError(absl::StrCat("--token-file ", path, ": no token in it"));
}

// Sends `authorization: Bearer TOKEN` with every call, over TLS or (to loopback) not: gRPC's
// own call credentials refuse a channel without TLS.
class BearerToken final : public grpc::experimental::Interceptor {
 public:
  explicit BearerToken(const std::string* value) : value_(value) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->insert({"authorization", *value_});
    }
    methods->Proceed();
  }

 private:
  const std::string* const value_;
};

class BearerTokens final : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit BearerTokens(std::string token) : value_(absl::StrCat("Bearer ", token)) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo* /*info*/) override {
    return new BearerToken(&value_);
  }

 private:
  const std::string value_;
};

// A TCP channel, which connects, and reconnects, by itself: TLS as the options say, or, with
// --insecure-loopback, plain TCP to a numeric loopback address; with the token, if any.
absl::StatusOr<std::shared_ptr<grpc::Channel>> NewChannel(const Address& address,
                                                          const GlobalOptions& options) {
  grpc::ChannelArguments args = ChannelArgs();
  // After a failed connection gRPC waits 1 s and then longer before trying again; keep it
  // short for a daemon that is just starting.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 20);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 20);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 250);
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  const bool tls_flags =
      !options.tls_ca.empty() || !options.tls_cert.empty() || !options.tls_key.empty();
  if (options.insecure_loopback) {
    if (tls_flags) {
      return absl::InvalidArgumentError(
          "--insecure-loopback is plain TCP: it does not go with --tls-ca, --tls-cert or "
          "--tls-key");
    }
    if (!IsLoopbackAddress(address.host)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--insecure-loopback: ", address.host,
          " is not a numeric loopback address (127.0.0.0/8, ::1); plain TCP anywhere else "
          "would show the token and the commands to the network"));
    }
    credentials = grpc::InsecureChannelCredentials();
  } else {
    if (options.tls_cert.empty() != options.tls_key.empty()) {
      return absl::InvalidArgumentError("--tls-cert and --tls-key go together");
    }
    grpc::SslCredentialsOptions ssl;
    if (!options.tls_ca.empty()) {
      absl::StatusOr<std::string> ca = ReadClientFile("--tls-ca", options.tls_ca, false);
      if (!ca.ok()) return ca.status();
      ssl.pem_root_certs = *std::move(ca);
    }
    if (!options.tls_cert.empty()) {
      absl::StatusOr<std::string> cert = ReadClientFile("--tls-cert", options.tls_cert, false);
      if (!cert.ok()) return cert.status();
      absl::StatusOr<std::string> key = ReadClientFile("--tls-key", options.tls_key, true);
      if (!key.ok()) return key.status();
      ssl.pem_cert_chain = *std::move(cert);
      ssl.pem_private_key = *std::move(key);
    }
    credentials = grpc::SslCredentials(ssl);
  }
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> tokens;
  if (!options.token_file.empty()) {
    absl::StatusOr<std::string> token = ReadToken(options.token_file);
    if (!token.ok()) return token.status();
    tokens.push_back(std::make_unique<BearerTokens>(*std::move(token)));
  }
  return grpc::experimental::CreateCustomChannelWithInterceptors(address.GrpcTarget(), credentials,
                                                                 args, std::move(tokens));
}

// A socket connected to the unix socket `path` and the credentials of the process that
// listens there (SO_PEERCRED: the kernel's word, taken when it called listen). NotFound if
// nothing listens there (or its backlog is full: a non-blocking connect does not wait for
// that); PermissionDenied, before a byte is sent, if another user's process does: whoever
// serves the socket runs the commands and sees the environment sent to it.
absl::StatusOr<int> ConnectUnixSocket(const std::string& path, ucred* peer) {
  sockaddr_un name{};
  if (path.size() >= sizeof(name.sun_path)) {  // ParseAddress refuses such paths
    return absl::InvalidArgumentError(absl::StrCat("socket path too long: ", path));
  }
  name.sun_family = AF_UNIX;
  std::memcpy(name.sun_path, path.data(), path.size());
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return absl::UnavailableError(absl::StrCat("socket: ", std::strerror(errno)));
  if (connect(fd, reinterpret_cast<const sockaddr*>(&name), sizeof(name)) != 0) {
    const int error = errno;
    close(fd);
    return absl::NotFoundError(
        absl::StrCat("nothing answers on ", path, " (", std::strerror(error), ")"));
  }
  socklen_t size = sizeof(*peer);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, peer, &size) != 0) {
    const int error = errno;
    close(fd);
    return absl::UnavailableError(
        absl::StrCat("cannot tell who serves ", path, ": ", std::strerror(error)));
  }
  if (peer->uid != geteuid()) {
    close(fd);
    return absl::PermissionDeniedError(
        absl::StrCat("the daemon on ", path, " runs as uid ", peer->uid, " (pid ", peer->pid,
                     "), not as this user (uid ", geteuid(),
                     "); nothing was sent to it. Remove what is "
                     "there, or point DISTD_SOCKET or --addr elsewhere"));
  }
  return fd;
}

// Waits until the server on `fd` has sent its first HTTP/2 frame, a SETTINGS frame (the
// server's connection preface, RFC 9113 3.4), and leaves it to be read. That is what
// gRPC's own connect waits for before it calls a connection READY: a gRPC server is there
// and serves this connection, not just something that accepted it. False if it has not
// come by `deadline` (kNone), or if anything else came (kOther): distd writes the frame in
// one write. Looks at least once, so that a deadline already past (a slow gRPC start) only
// limits the waiting.
enum class Preface { kSeen, kNone, kOther };
Preface AwaitServerPreface(int fd, absl::Time deadline) {
  pollfd readable = {fd, POLLIN, 0};
  while (true) {
    const absl::Duration left = std::max(deadline - absl::Now(), absl::ZeroDuration());
    const int ready =
        poll(&readable, 1,
             static_cast<int>(absl::ToInt64Milliseconds(absl::Ceil(left, absl::Milliseconds(1)))));
    if (ready < 0 && errno == EINTR && ReceivedSignal() == 0) continue;
    if (ready <= 0) return Preface::kNone;
    break;
  }
  constexpr ssize_t kFrameHeaderSize = 9;  // length (3 bytes), type, flags, stream id (4)
  unsigned char header[kFrameHeaderSize];
  const bool settings = recv(fd, header, sizeof(header), MSG_PEEK) == kFrameHeaderSize &&
                        header[3] == 0x4;  // the type: SETTINGS
  return settings ? Preface::kSeen : Preface::kOther;
}

// The way in at a unix socket: distctl connects the socket itself, before gRPC starts, and
// checks who serves it (ConnectUnixSocket), so that distd accepts the connection and answers
// it while gRPC starts its threads (the caller starts gRPC after ConnectUnixSocket); once the
// answer is there, the socket becomes a channel of its own. Its first call goes out at once,
// without the round trip that gRPC's own connect waits for first, and there is no
// resolver, load balancer or reconnection to set up for a connection that one command uses.
// The channel never reconnects. gRPC's own channel is never used for a unix socket: it
// would connect on its own, past the check of the peer.
std::shared_ptr<grpc::Channel> ChannelFromFd(const Address& address, int fd) {
  grpc::ChannelArguments args = ChannelArgs();
  // As gRPC's own channel to a unix: target says.
  args.SetString(GRPC_ARG_DEFAULT_AUTHORITY, "localhost");
  return grpc::CreateCustomInsecureChannelFromFd(address.GrpcTarget(), fd, args);
}

// Takes `fd`, connected to `peer`, and waits until `deadline` for distd's answer
// (AwaitServerPreface); DeadlineExceeded or Unavailable, worded for the user, if it does not
// come.
absl::StatusOr<std::shared_ptr<grpc::Channel>> DirectChannel(const Address& address, int fd,
                                                             const ucred& peer,
                                                             absl::Time deadline) {
  switch (AwaitServerPreface(fd, deadline)) {
    case Preface::kSeen:
      return ChannelFromFd(address, fd);
    case Preface::kNone:
      close(fd);
      return absl::DeadlineExceededError(absl::StrCat(
          "distd (pid ", peer.pid, ") accepts connections on ", address.path,
          " but does not answer: is it stopped (kill -CONT ", peer.pid, ") or stalled?"));
    case Preface::kOther:
      break;
  }
  close(fd);
  return absl::UnavailableError(absl::StrCat("what listens on ", address.path, " (pid ", peer.pid,
                                             ") does not answer as distd does"));
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

// When the distd we started has exited: if another process holds the socket's lock, a daemon
// is there that does not answer, and the user is told which.
std::string StalledLockHolder(const std::string& socket_path) {
  const std::string lock = socket_path + ".lock";
  int fd = open(lock.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return "";
  std::string said;
  if (flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK) {
    char buffer[32] = {};
    int pid = 0;
    ssize_t n = pread(fd, buffer, sizeof(buffer) - 1, 0);
    if (n > 0 && absl::SimpleAtoi(absl::StripAsciiWhitespace(buffer), &pid) && pid > 0) {
      said = absl::StrCat("distd (pid ", pid, ") holds ", lock, " but does not answer on ",
                          socket_path, ": is it stopped (kill -CONT ", pid, ") or stalled?");
    } else {
      said = absl::StrCat("a process holds ", lock, " but does not answer on ", socket_path);
    }
  }
  close(fd);
  return said;
}

// Starts distd and tries it with a growing back-off until it answers, it has exited and no
// other daemon took its place, or kStartTimeout passes.
absl::StatusOr<Connection> StartAndAwait(const Address& address) {
  absl::StatusOr<StartedDaemon> daemon = StartDaemon(address.path);
  if (!daemon.ok()) return daemon.status();
  const absl::Time deadline = absl::Now() + kStartTimeout;
  absl::Time give_up = deadline;
  bool exited = false;
  int wait_status = 0;
  absl::Duration step = absl::Milliseconds(25);
  while (true) {
    const absl::Time now = absl::Now();
    if (now >= give_up) break;
    const absl::Time attempt_end = std::min(now + step, give_up);
    ucred peer{};
    absl::StatusOr<int> fd = ConnectUnixSocket(address.path, &peer);
    if (fd.ok()) {
      absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
          DirectChannel(address, *fd, peer, attempt_end);
      if (channel.ok()) return Track(address, *std::move(channel));
      if (!absl::IsDeadlineExceeded(channel.status())) return channel.status();
    } else if (!absl::IsNotFound(fd.status())) {
      return fd.status();
    } else {
      // Nothing listens yet: wait out the attempt, not in a busy loop.
      SleepUnlessSignalled(attempt_end - absl::Now());
    }
    if (ReceivedSignal() != 0) return absl::CancelledError("interrupted while starting distd");
    if (!exited && waitpid(daemon->pid, &wait_status, WNOHANG) == daemon->pid) {
      exited = true;
      give_up = std::min(deadline, absl::Now() + kLoserGrace);
    }
    step = std::min(step * 2, absl::Seconds(1));
  }
  if (exited) {
    if (std::string stalled = StalledLockHolder(address.path); !stalled.empty()) {
      return absl::UnavailableError(stalled);
    }
    return absl::UnavailableError(
        absl::StrCat("started ", daemon->program, ", but it ", DescribeExit(wait_status),
                     " and nothing answers on ", address.path, "; see ", daemon->log_path));
  }
  return absl::UnavailableError(absl::StrCat(
      "started ", daemon->program, " (pid ", daemon->pid, "), but it did not answer on ",
      address.path, " within ", absl::FormatDuration(kStartTimeout), "; see ", daemon->log_path));
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
  if (address->kind == Address::Kind::kUnix) {
    ucred peer{};
    absl::StatusOr<int> fd = ConnectUnixSocket(address->path, &peer);
    if (!fd.ok()) return fd.status();
    std::shared_ptr<grpc::Channel> channel = ChannelFromFd(*address, *fd);
    return Track(*std::move(address), std::move(channel));
  }
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = NewChannel(*address, options);
  if (!channel.ok()) return channel.status();
  return Track(*std::move(address), *std::move(channel));
}

absl::StatusOr<Connection> Connect(const GlobalOptions& options) {
  absl::StatusOr<Address> address = ChooseAddress(options);
  if (!address.ok()) return address.status();
  const bool explicit_address = !options.addr.empty();

  // Before anything is sent, distd must have answered the connection, so that "nobody is
  // there" is told apart from "distd died during the call" later on, and so that a command
  // sends its request at most once: nothing of it has been sent when a distd is started
  // below, and nothing is sent again afterwards.
  if (address->kind == Address::Kind::kTcp) {
    // One round trip over a channel of gRPC's, which says what is wrong in gRPC's words.
    absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = NewChannel(*address, options);
    if (!channel.ok()) return channel.status();
    Connection connection = Track(*address, *std::move(channel));
    // Across a network, with a TLS handshake: longer than a unix socket's second.
    grpc::Status ping = Ping(connection.stub.get(), kTcpPingTimeout, /*wait_for_ready=*/false);
    if (ping.ok()) return connection;
    if (ReceivedSignal() != 0) return absl::CancelledError("interrupted");
    return absl::UnavailableError(DescribeRpcError(ping, connection.address));
  }

  // A unix socket (see DirectChannel): distd's answer to the connection itself, which the
  // command's first call needs anyway, with no round trip of its own. A refusal
  // (PERMISSION_DENIED) then comes as the status of that call, which distd refuses before
  // acting on it, and which the command reports in the same words as a refused ping.
  const absl::Time connected = absl::Now();
  ucred peer{};
  absl::StatusOr<int> fd = ConnectUnixSocket(address->path, &peer);
  // Started after the connect, so that the two overlap; held until the channel, which holds
  // gRPC itself, is made.
  GrpcStarted grpc_started;
  if (fd.ok()) {
    absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
        DirectChannel(*address, *fd, peer, connected + kPingTimeout);
    if (ReceivedSignal() != 0) return absl::CancelledError("interrupted");
    if (!channel.ok()) return channel.status();
    return Track(*std::move(address), *std::move(channel));
  }
  // Only "nobody is at the default socket" starts a daemon; one that is there and refuses,
  // or hangs, is reported as it is.
  if (!absl::IsNotFound(fd.status())) return fd.status();
  if (explicit_address) {
    return absl::UnavailableError(
        absl::StrCat("cannot reach distd at ", address->ToString(), ": ", fd.status().message()));
  }
  return StartAndAwait(*address);
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
