#include "server/service/remote.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/read_file.h"
#include "grpcpp/security/auth_context.h"

namespace distd::service {
namespace {

constexpr size_t kMaxFileBytes = 1 << 20;
constexpr size_t kMaxCredentials = 1024;
constexpr size_t kMinTokenBytes = 16;
constexpr size_t kMaxTokenBytes = 512;
constexpr size_t kMaxNameBytes = 64;

bool IsName(absl::string_view name) {
  if (name.empty() || name.size() > kMaxNameBytes) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
  });
}

bool IsTokenText(absl::string_view token) {
  return std::all_of(token.begin(), token.end(),
                     [](char c) { return c > ' ' && c < 0x7f; });  // printable, no space
}

// Equal, in a time that does not depend on either text (both at most kMaxTokenBytes): every
// byte position up to the limit is compared, the lengths too.
bool SameSecret(absl::string_view a, absl::string_view b) {
  size_t diff = a.size() ^ b.size();
  for (size_t i = 0; i < kMaxTokenBytes; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= x ^ y;
  }
  return diff == 0;
}

// The whole of `path`, a regular file of this user (or root) of at most kMaxFileBytes. A
// `secret` file must be closed to everyone else; any other must not be writable by them.
absl::StatusOr<std::string> ReadFile(const std::string& flag, const std::string& path,
                                     bool secret) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) {
    return absl::FailedPreconditionError(absl::StrCat(flag, " ", path, ": ", std::strerror(errno)));
  }
  struct stat st {};
  std::string text;
  absl::Status status;
  if (fstat(fd, &st) != 0) {
    status =
        absl::FailedPreconditionError(absl::StrCat(flag, " ", path, ": ", std::strerror(errno)));
  } else if (!S_ISREG(st.st_mode)) {
    status = absl::FailedPreconditionError(absl::StrCat(flag, " ", path, ": not a regular file"));
  } else if (st.st_uid != geteuid() && st.st_uid != 0) {
    status = absl::FailedPreconditionError(absl::StrCat(
        flag, " ", path, ": owned by uid ", st.st_uid, ", not by distd's user or root"));
  } else if ((st.st_mode & (secret ? 077 : 022)) != 0) {
    status = absl::FailedPreconditionError(absl::StrCat(
        flag, " ", path, ": ", secret ? "others may read or write it" : "others may write it",
        absl::StrFormat(" (mode %04o); chmod ", st.st_mode & 07777), secret ? "600" : "go-w",
        " it"));
  } else if (static_cast<size_t>(st.st_size) > kMaxFileBytes) {
    status = absl::FailedPreconditionError(
        absl::StrCat(flag, " ", path, ": larger than ", kMaxFileBytes, " bytes"));
  } else {
    text = ReadUpTo(fd, static_cast<size_t>(st.st_size));
  }
  close(fd);
  if (!status.ok()) return status;
  return text;
}

// The combinations that cannot be served safely over TCP.
absl::Status CheckTcp(const RemoteOptions& options, const std::vector<Address>& tcp) {
  const bool tls = !options.tls_cert.empty() || !options.tls_key.empty();
  if (options.tls_cert.empty() != options.tls_key.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key go together");
  }
  if (tls && options.insecure_loopback) {
    return absl::InvalidArgumentError(
        "--insecure-loopback is for TCP without TLS, not with "
        "--tls-cert");
  }
  if (!tls) {
    if (!options.insecure_loopback) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--listen ", tcp.front().ToString(),
          ": TCP needs TLS (--tls-cert and --tls-key); plain TCP is only for a numeric "
          "loopback address, with --insecure-loopback"));
    }
    for (const Address& address : tcp) {
      if (!IsLoopbackAddress(address.host)) {
        return absl::InvalidArgumentError(
            absl::StrCat("--listen ", address.ToString(),
                         ": plain TCP is refused off loopback "
                         "(127.0.0.0/8, ::1): give --tls-cert and --tls-key"));
      }
    }
    if (!options.tls_client_ca.empty()) {
      return absl::InvalidArgumentError("--tls-client-ca needs TLS: give --tls-cert and --tls-key");
    }
  }
  if (options.token_file.empty() && options.tls_client_ca.empty()) {
    return absl::InvalidArgumentError(
        "TCP callers must authenticate: give --token-file, --tls-client-ca, or both");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<Credential>> ParseTokenFile(absl::string_view text) {
  std::vector<Credential> credentials;
  absl::flat_hash_set<std::string> names;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    auto refuse = [line_number](absl::string_view why) {
      return absl::InvalidArgumentError(absl::StrCat("line ", line_number, ": ", why));
    };
    std::vector<absl::string_view> words = absl::StrSplit(line, ' ', absl::SkipWhitespace());
    if (words.size() < 2) return refuse("expected NAME TOKEN [builds=PREFIX] [admin]");
    Credential credential;
    if (!IsName(words[0])) {
      return refuse(absl::StrCat("a name is 1 to ", kMaxNameBytes, " of A-Z a-z 0-9 . _ -"));
    }
    credential.name = std::string(words[0]);
    if (words[1] != "-") {
      if (words[1].size() < kMinTokenBytes || words[1].size() > kMaxTokenBytes ||
          !IsTokenText(words[1])) {
        return refuse(absl::StrCat("a token is ", kMinTokenBytes, " to ", kMaxTokenBytes,
                                   " printable bytes without spaces (or -, for the client "
                                   "certificate of that name)"));
      }
      credential.token = std::string(words[1]);
    }
    for (size_t i = 2; i < words.size(); ++i) {
      absl::string_view word = words[i];
      if (word == "admin") {
        credential.access.admin = true;
      } else if (absl::ConsumePrefix(&word, "builds=")) {
        if (word.empty() || !IsTokenText(word)) {
          return refuse("builds= takes the prefix of the names of the builds allowed");
        }
        credential.access.builds = std::string(word);
      } else {
        // Not quoted: it could be a token written in the wrong place.
        return refuse(
            absl::StrCat("word ", i + 1, " is not an option (known: builds=PREFIX, admin)"));
      }
    }
    const std::string key =
        absl::StrCat(credential.token.empty() ? "cert:" : "token:", credential.name);
    if (!names.insert(key).second) return refuse(absl::StrCat(key, " is named twice"));
    for (const Credential& other : credentials) {
      if (!credential.token.empty() && SameSecret(other.token, credential.token)) {
        return refuse(
            absl::StrCat("the token of ", credential.name, " is also ", other.name, "'s"));
      }
    }
    if (credentials.size() == kMaxCredentials) {
      return refuse(absl::StrCat("more than ", kMaxCredentials, " credentials"));
    }
    credentials.push_back(std::move(credential));
  }
  return credentials;
}

absl::StatusOr<std::unique_ptr<Remote>> Remote::Open(const RemoteOptions& options,
                                                     const std::vector<Address>& tcp, bool http) {
  const bool tls = !options.tls_cert.empty() || !options.tls_key.empty();
  const bool any = tls || !options.tls_client_ca.empty() || !options.token_file.empty() ||
                   options.insecure_loopback;
  if (tcp.empty()) {
    if (!any) return std::unique_ptr<Remote>();
    const bool tokens_only = !tls && options.tls_client_ca.empty() && !options.insecure_loopback;
    if (!http || !tokens_only) {
      return absl::InvalidArgumentError(
          "--tls-cert, --tls-key, --tls-client-ca and --insecure-loopback are for TCP "
          "listeners, and --token-file for them or the HTTP ones: add --listen tcp:HOST:PORT");
    }
  } else if (absl::Status s = CheckTcp(options, tcp); !s.ok()) {
    return s;
  }
  std::unique_ptr<Remote> remote(new Remote());
  remote->options_ = options;
  if (tls) {
    absl::StatusOr<std::string> cert = ReadFile("--tls-cert", options.tls_cert, false);
    if (!cert.ok()) return cert.status();
    absl::StatusOr<std::string> key = ReadFile("--tls-key", options.tls_key, true);
    if (!key.ok()) return key.status();
    remote->cert_pem_ = *std::move(cert);
    remote->key_pem_ = *std::move(key);
  }
  if (!options.tls_client_ca.empty()) {
    absl::StatusOr<std::string> ca = ReadFile("--tls-client-ca", options.tls_client_ca, false);
    if (!ca.ok()) return ca.status();
    if (!absl::StrContains(*ca, "-----BEGIN CERTIFICATE-----")) {
      return absl::InvalidArgumentError(
          absl::StrCat("--tls-client-ca ", options.tls_client_ca, ": no PEM certificate in it"));
    }
    remote->client_ca_pem_ = *std::move(ca);
  }
  if (!options.token_file.empty()) {
    absl::StatusOr<std::string> text = ReadFile("--token-file", options.token_file, true);
    if (!text.ok()) return text.status();
    absl::StatusOr<std::vector<Credential>> credentials = ParseTokenFile(*text);
    if (!credentials.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--token-file ", options.token_file, ": ", credentials.status().message()));
    }
    remote->credentials_ = *std::move(credentials);
    const bool tokens = std::any_of(remote->credentials_.begin(), remote->credentials_.end(),
                                    [](const Credential& c) { return !c.token.empty(); });
    if (!tokens && options.tls_client_ca.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--token-file ", options.token_file, " has no token"));
    }
  }
  return remote;
}

std::shared_ptr<grpc::ServerCredentials> Remote::Credentials() const {
  if (cert_pem_.empty()) return grpc::InsecureServerCredentials();
  grpc_ssl_client_certificate_request_type request = GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE;
  if (!client_ca_pem_.empty()) {
    const bool tokens = std::any_of(credentials_.begin(), credentials_.end(),
                                    [](const Credential& c) { return !c.token.empty(); });
    // With tokens too, a certificate is one way in of two; a certificate offered is
    // verified all the same, and a bad one fails the handshake.
    request = tokens ? GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY
                     : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  grpc::SslServerCredentialsOptions ssl(request);
  ssl.pem_root_certs = client_ca_pem_;
  ssl.pem_key_cert_pairs.push_back({key_pem_, cert_pem_});
  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::SslServerCredentials(ssl);
  credentials->SetAuthMetadataProcessor(std::make_shared<Gate>(this));
  return credentials;
}

grpc::Status Remote::Gate::Process(const InputMetadata& metadata, grpc::AuthContext* context,
                                   OutputMetadata* /*consumed*/, OutputMetadata* /*response*/) {
  absl::StatusOr<Authorized> who = remote_->Authorize(metadata, context);
  if (who.ok()) return grpc::Status::OK;
  return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, std::string(who.status().message()));
}

absl::StatusOr<Authorized> Remote::Authorize(const grpc::ServerContextBase& context) const {
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  return Authorize(context.client_metadata(), auth.get());
}

absl::StatusOr<Authorized> Remote::Authorize(
    const std::multimap<grpc::string_ref, grpc::string_ref>& metadata,
    const grpc::AuthContext* auth) const {
  Authorized authorized;
  authorized.remote = true;
  authorized.caller.uid = geteuid();
  authorized.caller.pid = 0;  // not local: its files are not ours to open
  const auto [first, last] = metadata.equal_range("authorization");
  if (first != last) {
    if (std::next(first) != last) {
      return absl::UnauthenticatedError("the call carries more than one authorization");
    }
    absl::string_view value(first->second.data(), first->second.size());
    if (!absl::ConsumePrefix(&value, "Bearer ")) {
      return absl::UnauthenticatedError("the call's authorization is not \"Bearer TOKEN\"");
    }
    // Every token is compared, whichever matches, each over the same length: the time says
    // nothing of which matched, or of how long the tokens are.
    const Credential* match = nullptr;
    if (value.size() <= kMaxTokenBytes) {
      for (const Credential& credential : credentials_) {
        if (!credential.token.empty() && SameSecret(credential.token, value)) match = &credential;
      }
    }
    if (match == nullptr) return absl::UnauthenticatedError("distd does not know this token");
    authorized.caller.principal = absl::StrCat("token:", match->name);
    authorized.access = match->access;
    return authorized;
  }
  if (!client_ca_pem_.empty() && auth != nullptr && auth->IsPeerAuthenticated()) {
    std::vector<grpc::string_ref> names = auth->FindPropertyValues("x509_common_name");
    if (names.size() == 1) {
      absl::string_view name(names[0].data(), names[0].size());
      if (!IsName(name)) {
        return absl::UnauthenticatedError(
            absl::StrCat("the client certificate's common name is not 1 to ", kMaxNameBytes,
                         " of A-Z a-z 0-9 . _ -"));
      }
      authorized.caller.principal = absl::StrCat("cert:", name);
      for (const Credential& credential : credentials_) {
        if (credential.token.empty() && credential.name == name) {
          authorized.access = credential.access;
        }
      }
      return authorized;
    }
  }
  return absl::UnauthenticatedError(absl::StrCat(
      "distd needs a token (distctl --token-file)",
      client_ca_pem_.empty() ? "" : " or a client certificate (--tls-cert)", " from a TCP caller"));
}

std::string Remote::Describe() const {
  std::vector<std::string> parts;
  parts.push_back(cert_pem_.empty() ? "plain TCP on loopback" : "TLS");
  const size_t tokens = std::count_if(credentials_.begin(), credentials_.end(),
                                      [](const Credential& c) { return !c.token.empty(); });
  if (tokens > 0) parts.push_back(absl::StrCat(tokens, tokens == 1 ? " token" : " tokens"));
  if (!client_ca_pem_.empty()) parts.push_back("client certificates");
  return absl::StrJoin(parts, ", ");
}

absl::Status MayActOn(const Authorized& authorized, absl::string_view build) {
  const std::string& prefix = authorized.access.builds;
  if (prefix.empty() || authorized.access.admin || absl::StartsWith(build, prefix)) {
    return absl::OkStatus();
  }
  return absl::PermissionDeniedError(absl::StrCat(authorized.caller.principal,
                                                  " may act only on builds named ", prefix,
                                                  "..., not on build ", build.substr(0, 128)));
}

absl::Status MayAdminister(const Authorized& authorized, absl::string_view what) {
  if (authorized.access.admin) return absl::OkStatus();
  return absl::PermissionDeniedError(
      absl::StrCat(what, " needs an admin token (", authorized.caller.principal, " is not one)"));
}

}  // namespace distd::service
