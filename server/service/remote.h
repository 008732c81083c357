// Calls over TCP: the TLS they arrive through, who the caller is (a bearer token or a client
// certificate) and what it may do. Whoever reaches distd runs commands as its user, so TCP is
// TLS unless the address is a numeric loopback one and --insecure-loopback says so, and
// every call must name its caller by a token of the token file or by a certificate the
// client CA signed.
//
// The token file has one line per credential, `NAME TOKEN [builds=PREFIX] [admin]`:
//   NAME     [A-Za-z0-9._-]{1,64}, as job records and the log name the caller: token:NAME
//   TOKEN    16 to 512 printable bytes without spaces; `-` instead names the client
//            certificate whose common name is NAME (cert:NAME), to give it limits (used
//            only with --tls-client-ca)
//   builds=  the caller may act only on builds whose names start with PREFIX
//   admin    the caller may also close builds and act on every build (status and list
//            show it every build; without it, only the builds it may act on)
// Blank lines and lines that start with '#' are skipped. The file must be a regular file of
// distd's user that nobody else may read or write. A certificate without a line of its own
// may act on every build but is not an admin.
//
// Limits by build are a guard against mistakes (one pipeline aborting another's build), not
// a sandbox: a caller that may run commands runs them as distd's user, who can read this
// file and reach the unix socket.
#ifndef DISTD_SERVER_SERVICE_REMOTE_H_
#define DISTD_SERVER_SERVICE_REMOTE_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/address.h"
#include "grpcpp/security/auth_context.h"
#include "grpcpp/security/auth_metadata_processor.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_context.h"
#include "server/engine/types.h"

namespace distd::service {

// What a caller may do.
struct Access {
  std::string builds;  // the prefix of the builds it may act on; empty: any
  bool admin = false;  // close builds, and see and act on every build
};

// A caller, and what it may do. Local callers (the daemon's own uid) are admins.
struct Authorized {
  engine::Caller caller;
  Access access;
  bool remote = false;
};

// One line of the token file.
struct Credential {
  std::string name;
  std::string token;  // empty: the client certificate whose common name is `name`
  Access access;
};

// Parses the token file's text; InvalidArgument naming the line of the first mistake (and
// never echoing a token).
absl::StatusOr<std::vector<Credential>> ParseTokenFile(absl::string_view text);

struct RemoteOptions {
  std::string tls_cert;  // PEM files
  std::string tls_key;
  std::string tls_client_ca;  // client certificates signed by it authenticate
  std::string token_file;
  bool insecure_loopback = false;  // plain TCP on numeric loopback addresses
};

class Remote {
 public:
  // Checks the options against the TCP addresses and reads the files: InvalidArgument for a
  // combination that cannot be served safely (TCP without TLS, plain TCP off loopback, no way
  // to authenticate, TLS flags without a TCP address), FailedPrecondition for a file that
  // cannot be read or is open to others. Null (and OK) when `tcp` is empty and no remote
  // option is given. With `http` (distd has HTTP listeners), a token file alone needs no TCP
  // address: its tokens are for the HTTP requests.
  static absl::StatusOr<std::unique_ptr<Remote>> Open(const RemoteOptions& options,
                                                      const std::vector<Address>& tcp,
                                                      bool http = false);

  // The credentials of the TCP listeners.
  std::shared_ptr<grpc::ServerCredentials> Credentials() const;

  // The caller of a call over TCP: Unauthenticated when the call carries no valid token and
  // no verified certificate.
  absl::StatusOr<Authorized> Authorize(const grpc::ServerContextBase& context) const;
  // The same from the call's metadata and its TLS peer (`auth`, may be null).
  absl::StatusOr<Authorized> Authorize(
      const std::multimap<grpc::string_ref, grpc::string_ref>& metadata,
      const grpc::AuthContext* auth) const;

  // For the log: "TLS, 2 tokens, client certificates".
  std::string Describe() const;

 private:
  // Refuses a call over TLS that names no caller before gRPC reads its request: a request of
  // up to --max-request-size is not taken in from anyone who merely completed a handshake.
  // The service authorises the call again, to know who it is.
  class Gate final : public grpc::AuthMetadataProcessor {
   public:
    explicit Gate(const Remote* remote) : remote_(remote) {}
    bool IsBlocking() const override { return false; }  // no I/O: run it where the call is
    grpc::Status Process(const InputMetadata& metadata, grpc::AuthContext* context,
                         OutputMetadata* consumed, OutputMetadata* response) override;

   private:
    const Remote* const remote_;
  };

  Remote() = default;

  RemoteOptions options_;
  std::string cert_pem_, key_pem_, client_ca_pem_;
  std::vector<Credential> credentials_;
};

// Whether `authorized` may act on `build`: PermissionDenied saying why not.
absl::Status MayActOn(const Authorized& authorized, absl::string_view build);
// Whether `authorized` is an admin (`what` names the action for the message).
absl::Status MayAdminister(const Authorized& authorized, absl::string_view what);

}  // namespace distd::service

#endif  // DISTD_SERVER_SERVICE_REMOTE_H_
