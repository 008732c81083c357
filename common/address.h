// Addresses of distd: `unix:PATH` or `tcp:HOST:PORT`, and the default socket.
#ifndef DISTD_COMMON_ADDRESS_H_
#define DISTD_COMMON_ADDRESS_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace distd {

struct Address {
  enum class Kind { kUnix, kTcp };
  Kind kind = Kind::kUnix;
  std::string path;  // kUnix: the socket's path
  std::string host;  // kTcp
  int port = 0;      // kTcp

  // As written on the command line: "unix:/run/distd.sock", "tcp:127.0.0.1:7070".
  std::string ToString() const;
  // The target string of a gRPC channel: "unix:/path", "127.0.0.1:7070", "[::1]:7070".
  std::string GrpcTarget() const;
};

// Parses `unix:PATH` (PATH absolute or relative, at most 107 bytes: the size of sun_path) or
// `tcp:HOST:PORT` (HOST a name, an IPv4 address or a bracketed IPv6 address; PORT 1..65535).
absl::StatusOr<Address> ParseAddress(absl::string_view text);

// Whether `host` (as in Address::host) is a numeric loopback address: 127.0.0.0/8, [::1] or
// ::1. A name such as "localhost" is not: what it resolves to is not ours to trust.
bool IsLoopbackAddress(absl::string_view host);

// The default socket: $DISTD_SOCKET, else $XDG_RUNTIME_DIR/distd/distd.sock, else
// /tmp/distd-$UID/distd.sock.
std::string DefaultSocketPath();

}  // namespace distd

#endif  // DISTD_COMMON_ADDRESS_H_
