#include "server/http/peer.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"

namespace distd::http {
namespace {

// Fills `id` with an address and port of `addr`, in network order as the kernel wants them.
bool Put(const sockaddr_storage& addr, __be32 (&address)[4], __be16* port) {
  if (addr.ss_family == AF_INET) {
    const auto& in = reinterpret_cast<const sockaddr_in&>(addr);
    address[0] = in.sin_addr.s_addr;
    *port = in.sin_port;
    return true;
  }
  if (addr.ss_family == AF_INET6) {
    const auto& in6 = reinterpret_cast<const sockaddr_in6&>(addr);
    std::memcpy(address, &in6.sin6_addr, sizeof(in6.sin6_addr));
    *port = in6.sin6_port;
    return true;
  }
  return false;
}

bool IsLoopback(const sockaddr_storage& addr) {
  if (addr.ss_family == AF_INET) {
    return (ntohl(reinterpret_cast<const sockaddr_in&>(addr).sin_addr.s_addr) >> 24) == 127;
  }
  if (addr.ss_family != AF_INET6) return false;
  const in6_addr& a = reinterpret_cast<const sockaddr_in6&>(addr).sin6_addr;
  return IN6_IS_ADDR_LOOPBACK(&a) || (IN6_IS_ADDR_V4MAPPED(&a) && a.s6_addr[12] == 127);
}

}  // namespace

absl::StatusOr<uid_t> LoopbackPeerUid(int fd) {
  sockaddr_storage local = {};
  sockaddr_storage peer = {};
  socklen_t local_len = sizeof(local);
  socklen_t peer_len = sizeof(peer);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len) != 0 ||
      getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0) {
    return absl::NotFoundError(absl::StrCat("the peer's address: ", strerror(errno)));
  }
  // The kernel knows only this host's sockets, and this host is reached on loopback only.
  if (!IsLoopback(peer)) return absl::NotFoundError("the peer is not on loopback");
  struct {
    nlmsghdr header;
    inet_diag_req_v2 request;
  } message = {};
  message.header.nlmsg_len = sizeof(message);
  message.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  message.header.nlmsg_flags = NLM_F_REQUEST;
  message.request.sdiag_family = static_cast<__u8>(peer.ss_family);
  message.request.sdiag_protocol = IPPROTO_TCP;
  message.request.idiag_states = ~0U;
  // The peer's own socket: its source is our destination, and the other way round.
  inet_diag_sockid& id = message.request.id;
  if (peer.ss_family != local.ss_family || !Put(peer, id.idiag_src, &id.idiag_sport) ||
      !Put(local, id.idiag_dst, &id.idiag_dport)) {
    return absl::NotFoundError("not a TCP connection");
  }
  id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
  id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;

  const int nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (nl < 0) return absl::UnavailableError(absl::StrCat("sock_diag: ", strerror(errno)));
  absl::Cleanup close_nl = [nl] { close(nl); };
  timeval timeout = {1, 0};
  setsockopt(nl, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  sockaddr_nl kernel = {};
  kernel.nl_family = AF_NETLINK;
  if (sendto(nl, &message, sizeof(message), 0, reinterpret_cast<sockaddr*>(&kernel),
             sizeof(kernel)) != static_cast<ssize_t>(sizeof(message))) {
    return absl::UnavailableError(absl::StrCat("sock_diag: ", strerror(errno)));
  }
  alignas(nlmsghdr) char buffer[8192];
  const ssize_t n = recv(nl, buffer, sizeof(buffer), 0);
  if (n < 0) return absl::UnavailableError(absl::StrCat("sock_diag: ", strerror(errno)));
  const auto* reply = reinterpret_cast<const nlmsghdr*>(buffer);
  if (!NLMSG_OK(reply, static_cast<unsigned>(n))) {
    return absl::UnavailableError("sock_diag: a short reply");
  }
  if (reply->nlmsg_type == NLMSG_ERROR) {
    const auto* error = static_cast<const nlmsgerr*>(NLMSG_DATA(reply));
    if (error->error == -ENOENT) return absl::NotFoundError("no such socket on this host");
    return absl::UnavailableError(absl::StrCat("sock_diag: ", strerror(-error->error)));
  }
  if (reply->nlmsg_type != SOCK_DIAG_BY_FAMILY ||
      reply->nlmsg_len < NLMSG_LENGTH(sizeof(inet_diag_msg))) {
    return absl::UnavailableError("sock_diag: an unexpected reply");
  }
  const auto* diag = static_cast<const inet_diag_msg*>(NLMSG_DATA(reply));
  // Only the very connection asked about, and only while it stands: for one socket the kernel
  // may answer with a listening socket that matches the ports, or with a closing one, whose
  // owner is given as root.
  if (diag->idiag_state != TCP_ESTABLISHED || diag->id.idiag_sport != id.idiag_sport ||
      diag->id.idiag_dport != id.idiag_dport ||
      std::memcmp(diag->id.idiag_src, id.idiag_src, sizeof(id.idiag_src)) != 0 ||
      std::memcmp(diag->id.idiag_dst, id.idiag_dst, sizeof(id.idiag_dst)) != 0) {
    return absl::NotFoundError("no such connection on this host");
  }
  return static_cast<uid_t>(diag->idiag_uid);
}

}  // namespace distd::http
