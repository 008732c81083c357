// What distctl makes of a call's outcome: gRPC-level faults and the Error inside answers, as
// messages for the user and exit codes.
#ifndef DISTD_CLIENT_RPC_H_
#define DISTD_CLIENT_RPC_H_

#include <functional>
#include <string>

#include "client/connect.h"
#include "common/address.h"
#include "common/exit_codes.h"
#include "distd/v1/distd.pb.h"
#include "grpcpp/client_context.h"
#include "grpcpp/support/status.h"

namespace distd::client {

// A call that failed at the gRPC level, in words: "cannot reach distd at unix:/x: ...".
std::string DescribeRpcError(const grpc::Status& status, const Address& address);

// The exit code of a call that failed at the gRPC level: 128+`signo` if a signal cancelled
// it (nothing printed: the user knows), else 125 after printing why.
int FailedCall(const grpc::Status& status, int signo, const Address& address);

// The exit code of a stream that ended without its terminal message, after saying so. The
// daemon answered Connect before the call was made, so a broken connection now means it
// died; a refusal of the call itself (PERMISSION_DENIED, ...) is reported as such.
int StreamEndedEarly(const grpc::Status& status, const Address& address);

// If `error` says the request was refused (its code is not OK), prints its message and
// returns true.
bool ReportError(const v1::Error& error);

// How distctl exits when distd refused a request with `error`: 2 when the caller's input was
// wrong (as for a bad command line), else 125.
int RefusalExitCode(const v1::Error& error);

// Runs `call`, a blocking call on `context`, so that SIGINT/SIGTERM/SIGHUP cancels it.
// Returns its status; *signo is the signal that arrived during it, or 0.
grpc::Status CallCancellable(grpc::ClientContext* context,
                             const std::function<grpc::Status()>& call, int* signo);

// A unary call of `method` on `connection` that SIGINT/SIGTERM/SIGHUP cancels, as distctl's
// exit code: kExitOk with *response filled in (and, where the answer has an Error, not a
// refusal); else, after saying why, the code of a call that failed at the gRPC level or that
// distd refused.
template <typename Request, typename Response>
int CallDistd(const Connection& connection,
              grpc::Status (v1::Distd::Stub::*method)(grpc::ClientContext*, const Request&,
                                                      Response*),
              const Request& request, Response* response) {
  grpc::ClientContext context;
  int signo = 0;
  grpc::Status status = CallCancellable(
      &context, [&] { return (connection.stub.get()->*method)(&context, request, response); },
      &signo);
  if (!status.ok()) return FailedCall(status, signo, connection.address);
  if constexpr (requires { response->error(); }) {
    if (ReportError(response->error())) return RefusalExitCode(response->error());
  }
  return kExitOk;
}

}  // namespace distd::client

#endif  // DISTD_CLIENT_RPC_H_
