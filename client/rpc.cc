#include "client/rpc.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "client/print.h"
#include "client/stop.h"
#include "common/exit_codes.h"

namespace distd::client {
namespace {

const char* CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    default:
      return "unknown status";
  }
}

}  // namespace

std::string DescribeRpcError(const grpc::Status& status, const Address& address) {
  const std::string where = address.ToString();
  const std::string& message = status.error_message();
  switch (status.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
      return absl::StrCat("cannot reach distd at ", where, ": ", message);
    case grpc::StatusCode::PERMISSION_DENIED:
      return absl::StrCat("distd at ", where, " refused the call: ", message);
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return absl::StrCat("distd at ", where, " did not answer in time");
    case grpc::StatusCode::UNIMPLEMENTED:
      return absl::StrCat("distd at ", where,
                          " does not know this call (is it an older version?): ", message);
    default:
      return absl::StrCat("the call to distd at ", where,
                          " failed: ", CodeName(status.error_code()), ": ", message);
  }
}

int FailedCall(const grpc::Status& status, int signo, const Address& address) {
  if (signo != 0) return kExitSignalBase + signo;
  Err(DescribeRpcError(status, address));
  return kExitDistdError;
}

int StreamEndedEarly(const grpc::Status& status, const Address& address) {
  switch (status.error_code()) {
    case grpc::StatusCode::OK:
      Err("distd ended the stream without a result (did it die?)");
      return kExitDistdError;
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::UNKNOWN:
    case grpc::StatusCode::INTERNAL:
      Err(absl::StrCat("distd ended the stream without a result (did it die?): ",
                       status.error_message()));
      return kExitDistdError;
    default:
      return FailedCall(status, 0, address);
  }
}

int RefusalExitCode(const v1::Error& error) {
  return error.code() == v1::Error::INVALID_ARGUMENT ? kExitUsage : kExitDistdError;
}

bool ReportError(const v1::Error& error) {
  if (error.code() == v1::Error::OK) return false;
  if (!error.message().empty()) {
    Err(error.message());
  } else {
    // An Error without words: say at least which kind (the name, or the number of a code
    // newer than this client).
    std::string name = v1::Error::Code_Name(error.code());
    Err(absl::StrCat("distd refused the request (",
                     name.empty() ? absl::StrCat("code ", static_cast<int>(error.code())) : name,
                     ")"));
  }
  return true;
}

grpc::Status CallCancellable(grpc::ClientContext* context, absl::FunctionRef<grpc::Status()> call,
                             int* signo) {
  CallStop stop([context](int) { context->TryCancel(); });
  const grpc::Status status = call();
  const int reason = stop.Finish();
  // A signal that came after the call had completed changed nothing: report the outcome.
  *signo = status.ok() ? 0 : reason;
  return status;
}

std::optional<int> ExitWithoutResult(const StreamEnd& end, const Address& address) {
  if (end.stopped != 0) return StopExitCode(end.stopped);
  if (end.refused.has_value()) {
    if (!ReportError(*end.refused)) Err("distd refused the request without saying why");
    return RefusalExitCode(*end.refused);
  }
  if (end.result) return std::nullopt;
  return StreamEndedEarly(end.status, address);
}

}  // namespace distd::client
