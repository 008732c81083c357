#include "common/address.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace distd {

std::string Address::ToString() const {
  if (kind == Kind::kUnix) return absl::StrCat("unix:", path);
  return absl::StrCat("tcp:", host, ":", port);
}

std::string Address::GrpcTarget() const {
  if (kind == Kind::kUnix) return absl::StrCat("unix:", path);
  return absl::StrCat(host, ":", port);
}

absl::StatusOr<Address> ParseAddress(absl::string_view text) {
  Address address;
  if (absl::ConsumePrefix(&text, "unix:")) {
    if (text.empty()) return absl::InvalidArgumentError("unix: address without a path");
    if (text.size() >= sizeof(sockaddr_un::sun_path)) {
      return absl::InvalidArgumentError(absl::StrCat("socket path is ", text.size(),
                                                     " bytes; the limit is ",
                                                     sizeof(sockaddr_un::sun_path) - 1));
    }
    if (text.find('\0') != absl::string_view::npos) {
      return absl::InvalidArgumentError("socket path contains a NUL byte");
    }
    address.kind = Address::Kind::kUnix;
    address.path = std::string(text);
    return address;
  }
  if (absl::ConsumePrefix(&text, "tcp:")) {
    size_t colon = text.rfind(':');
    if (colon == absl::string_view::npos || colon == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("tcp address \"", text, "\" is not of the form HOST:PORT"));
    }
    absl::string_view host = text.substr(0, colon);
    absl::string_view port = text.substr(colon + 1);
    int number = 0;
    if (port.empty() || port.size() > 5 ||
        port.find_first_not_of("0123456789") != absl::string_view::npos ||
        !absl::SimpleAtoi(port, &number) || number < 1 || number > 65535) {
      return absl::InvalidArgumentError(absl::StrCat("port \"", port, "\" is not in 1..65535"));
    }
    bool bracketed = absl::StartsWith(host, "[") && absl::EndsWith(host, "]");
    if (!bracketed && host.find(':') != absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("IPv6 host \"", host, "\" must be in brackets, as [::1]"));
    }
    absl::string_view bare = bracketed ? host.substr(1, host.size() - 2) : host;
    for (char c : bare) {
      if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f || c == '[' || c == ']' || c == '/') {
        return absl::InvalidArgumentError(absl::StrCat("host \"", host, "\" is not a host name"));
      }
    }
    if (bare.empty()) return absl::InvalidArgumentError("tcp address without a host");
    address.kind = Address::Kind::kTcp;
    address.host = std::string(host);
    address.port = number;
    return address;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("address \"", text, "\" must start with unix: or tcp:"));
}

bool IsLoopbackAddress(absl::string_view host) {
  if (absl::ConsumePrefix(&host, "[")) {
    if (!absl::ConsumeSuffix(&host, "]")) return false;
  }
  in6_addr v6{};
  if (host.find(':') != absl::string_view::npos) {
    const std::string text(host);
    return inet_pton(AF_INET6, text.c_str(), &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
  }
  in_addr v4{};
  const std::string text(host);
  return inet_pton(AF_INET, text.c_str(), &v4) == 1 && (ntohl(v4.s_addr) >> 24) == 127;
}

std::string DefaultSocketPath() {
  if (const char* socket = std::getenv("DISTD_SOCKET"); socket != nullptr && *socket != '\0') {
    return socket;
  }
  if (const char* runtime = std::getenv("XDG_RUNTIME_DIR"); runtime != nullptr && *runtime == '/') {
    return absl::StrCat(runtime, "/distd/distd.sock");
  }
  return absl::StrCat("/tmp/distd-", getuid(), "/distd.sock");
}

}  // namespace distd
