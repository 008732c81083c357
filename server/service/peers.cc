#include "server/service/peers.h"

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"

namespace distd::service {

void Peers::Add(int fd, const PeerCredentials& credentials) {
  absl::MutexLock lock(&mu_);
  by_fd_[fd] = credentials;
}

absl::StatusOr<engine::Caller> Peers::Authorize(const std::string& peer) {
  absl::string_view fd_text = peer;
  int fd = -1;
  if (!absl::ConsumePrefix(&fd_text, "fd:") || !absl::SimpleAtoi(fd_text, &fd)) {
    // Only connections accepted by the daemon itself carry an fd: anything else did not come
    // through the checked socket.
    return absl::PermissionDeniedError(absl::StrCat("distd refuses the connection from ", peer));
  }
  PeerCredentials credentials;
  {
    absl::MutexLock lock(&mu_);
    auto it = by_fd_.find(fd);
    if (it == by_fd_.end()) {
      return absl::PermissionDeniedError("distd has no credentials for this connection");
    }
    credentials = it->second;
  }
  // Not root either: its commands and environment would run as this daemon's user.
  if (credentials.uid != owner_) {
    return absl::PermissionDeniedError(absl::StrCat("distd runs as uid ", owner_,
                                                    " and serves only that uid; ",
                                                    "the caller is uid ", credentials.uid));
  }
  engine::Caller caller;
  caller.uid = credentials.uid;
  caller.principal = absl::StrCat("uid:", credentials.uid);
  caller.pid = credentials.pid;
  return caller;
}

absl::StatusOr<Authorized> Peers::Authorize(const grpc::ServerContextBase& context) {
  const std::string peer = context.peer();
  if (remote_ != nullptr && (absl::StartsWith(peer, "ipv4:") || absl::StartsWith(peer, "ipv6:"))) {
    return remote_->Authorize(context);
  }
  absl::StatusOr<engine::Caller> caller = Authorize(peer);
  if (!caller.ok()) return caller.status();
  Authorized authorized;
  authorized.caller = *std::move(caller);
  authorized.access.admin = true;  // distd's own user
  return authorized;
}

}  // namespace distd::service
