#include "server/http/access.h"

#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "grpcpp/support/string_ref.h"

namespace distd::http {

absl::StatusOr<service::Authorized> Authorize(const Request& request, uid_t own_uid,
                                              const service::Remote* remote) {
  auto authorization = request.headers.find("authorization");
  if (authorization != request.headers.end()) {
    if (remote == nullptr) {
      return absl::UnauthenticatedError("distd has no token file (--token-file)");
    }
    std::multimap<grpc::string_ref, grpc::string_ref> metadata;
    metadata.emplace("authorization", authorization->second);
    return remote->Authorize(metadata, nullptr);
  }
  if (request.peer_uid.has_value() && *request.peer_uid == own_uid) {
    service::Authorized local;
    local.caller.uid = own_uid;
    local.caller.principal = absl::StrCat("uid:", own_uid);
    local.access.admin = true;
    return local;
  }
  return absl::UnauthenticatedError(
      absl::StrCat("only distd's user (uid ", own_uid, ") may read this without a token",
                   remote != nullptr ? "; send Authorization: Bearer TOKEN" : ""));
}

Response Refusal(const absl::Status& status) {
  const int code = absl::IsUnauthenticated(status) ? 401 : absl::IsNotFound(status) ? 404 : 403;
  return Response{code, "text/plain; charset=utf-8", absl::StrCat(status.message(), "\n")};
}

}  // namespace distd::http
