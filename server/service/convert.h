// Translation between the engine's types and the API's messages. No policy lives here.
#ifndef DISTD_SERVER_SERVICE_CONVERT_H_
#define DISTD_SERVER_SERVICE_CONVERT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "distd/v1/distd.pb.h"
#include "server/engine/engine.h"

namespace distd::service {

// An engine status as the Error of a response: OK becomes an empty Error.
v1::Error ToError(const absl::Status& status);

// The jobs of a request: each command's cwd defaults to the request's, and its env entries
// override the request's by name. Commands that add nothing share one copy of the request's
// environment. Checks only what the engine cannot (the shape of env entries is the engine's
// to check).
std::vector<engine::JobSpec> ToJobSpecs(
    const std::string& request_cwd, const google::protobuf::RepeatedPtrField<std::string>& env,
    const google::protobuf::RepeatedPtrField<v1::Command>& commands,
    const v1::ProcessSettings& settings);

// The client's umask and limits; null when it sent none. A resource this distd does not know
// gets resource -1, which the engine refuses.
std::shared_ptr<const engine::ProcessSettings> ToSettings(const v1::ProcessSettings& settings);

void ToProto(const engine::JobResult& result, engine::JobId id, v1::JobResult* out);
void ToProto(const engine::JobInfo& job, v1::Job* out);
void ToProto(const engine::BuildInfo& build, v1::Build* out);
v1::Stream ToProto(engine::OutputStream stream);

}  // namespace distd::service

#endif  // DISTD_SERVER_SERVICE_CONVERT_H_
