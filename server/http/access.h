// Who may read what distd serves over HTTP, by the rules of its API: a process of distd's own
// uid on this host is an admin, as on the unix socket; anyone else needs a token of the token
// file (`Authorization: Bearer TOKEN`), with that token's limits.
#ifndef DISTD_SERVER_HTTP_ACCESS_H_
#define DISTD_SERVER_HTTP_ACCESS_H_

#include <sys/types.h>

#include "absl/status/statusor.h"
#include "server/http/server.h"
#include "server/service/remote.h"

namespace distd::http {

// The caller of `request`: Unauthenticated if it is not distd's uid and has no valid token.
// `remote` holds the tokens (may be null: then only distd's uid is let in).
absl::StatusOr<service::Authorized> Authorize(const Request& request, uid_t own_uid,
                                              const service::Remote* remote);

// The answer for a refusal of Authorize or of a check of what the caller may do.
Response Refusal(const absl::Status& status);

}  // namespace distd::http

#endif  // DISTD_SERVER_HTTP_ACCESS_H_
