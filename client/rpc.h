// distctl's calls to distd, and what it makes of their outcome: gRPC-level faults and the Error
// inside answers, as messages for the user and exit codes. A unary call is made with CallDistd,
// a server stream read with ReadStream; both end early by a CallStop.
#ifndef DISTD_CLIENT_RPC_H_
#define DISTD_CLIENT_RPC_H_

#include <functional>
#include <optional>
#include <string>

#include "absl/functional/function_ref.h"
#include "client/connect.h"
#include "client/stop.h"
#include "common/address.h"
#include "common/exit_codes.h"
#include "distd/v1/distd.pb.h"
#include "grpcpp/client_context.h"
#include "grpcpp/support/status.h"
#include "grpcpp/support/sync_stream.h"

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
// Returns its status; *signo is the signal that stopped it, or 0 (also when the call had
// succeeded all the same).
grpc::Status CallCancellable(grpc::ClientContext* context, absl::FunctionRef<grpc::Status()> call,
                             int* signo);

// A unary call of `method` on `connection` that SIGINT/SIGTERM/SIGHUP cancels, as distctl's
// exit code: kExitOk with *response filled in (and, where the answer has an Error, not a
// refusal); else, after saying why, the code of a call that failed at the gRPC level or that
// distd refused. `amend`, if given, may reword a refusal before it is said.
template <typename Request, typename Response>
int CallDistd(const Connection& connection,
              grpc::Status (v1::Distd::Stub::*method)(grpc::ClientContext*, const Request&,
                                                      Response*),
              const Request& request, Response* response,
              const std::function<void(v1::Error*)>& amend = nullptr) {
  grpc::ClientContext context;
  int signo = 0;
  const grpc::Status status = CallCancellable(
      &context, [&] { return (connection.stub.get()->*method)(&context, request, response); },
      &signo);
  if (!status.ok()) return FailedCall(status, signo, connection.address);
  if constexpr (requires { response->error(); }) {
    if (amend && response->error().code() != v1::Error::OK) amend(response->mutable_error());
    if (ReportError(response->error())) return RefusalExitCode(response->error());
  }
  return kExitOk;
}

// How a server stream ended.
struct StreamEnd {
  int stopped = 0;                   // the reason it was stopped before its end (CallStop), or 0
  std::optional<v1::Error> refused;  // the terminal Error, if it came
  bool result = false;               // the terminal event was the result
  grpc::Status status;               // the call's own status
};

// Reads `reader`'s stream to its end, as each distctl command that streams does. Each event
// goes to `on_event` until the terminal one: an Error (kept in StreamEnd::refused), or one for
// which `on_event` returns true (the result). After it nothing counts: the rest is read and
// dropped, and `stop` is finished, so that a signal from then on changes nothing.
template <typename Event>
StreamEnd ReadStream(grpc::ClientReader<Event>* reader, CallStop* stop,
                     absl::FunctionRef<bool(const Event&)> on_event) {
  StreamEnd end;
  bool ended = false;
  Event event;
  while (reader->Read(&event)) {
    if (ended) continue;
    if (event.has_error()) {
      end.refused = event.error();
      ended = true;
    } else {
      ended = end.result = on_event(event);
    }
    if (ended) stop->Finish();
  }
  end.status = reader->Finish();
  end.stopped = stop->Finish();
  return end;
}

// The exit code of a stream that did not deliver its result, after saying why (nothing for a
// signal: the user knows): stopped, refused, or broken off. std::nullopt if it delivered its
// result, from which the command makes its exit code.
std::optional<int> ExitWithoutResult(const StreamEnd& end, const Address& address);

}  // namespace distd::client

#endif  // DISTD_CLIENT_RPC_H_
