// `distctl build list` and `distctl build close NAME`.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/args.h"
#include "client/commands.h"
#include "client/connect.h"
#include "client/print.h"
#include "client/rpc.h"
#include "client/tables.h"
#include "common/exit_codes.h"

namespace distd::client {
namespace {

constexpr char kUsage[] = R"(usage: distctl build list
       distctl build close NAME

list    the builds distd knows: state, jobs by state, first failure
close   forgets build NAME, so that its name can be used afresh: a failed build refuses
        new jobs until it is closed. Refused (exit 125) while jobs of it are queued or
        running.
)";

int List(const Connection& connection) {
  v1::ListBuildsResponse response;
  const int code =
      CallDistd(connection, &v1::Distd::Stub::ListBuilds, v1::ListBuildsRequest(), &response);
  if (code != kExitOk) return code;
  Out(response.builds_size() == 0 ? "no builds\n" : FormatBuilds(response.builds()));
  return kExitOk;
}

int Close(const Connection& connection, const std::string& name) {
  v1::CloseBuildRequest request;
  request.set_build(name);
  v1::CloseBuildResponse response;
  return CallDistd(connection, &v1::Distd::Stub::CloseBuild, request, &response);
}

}  // namespace

int BuildCommand(GlobalOptions global, const std::vector<std::string>& args) {
  ArgParser parser;
  AddGlobalFlags(&parser, &global);
  std::vector<std::string> positional;
  if (absl::Status status = parser.Parse(args, false, &positional); !status.ok()) {
    return UsageError("build", status.message());
  }
  if (parser.help()) {
    Out(kUsage);
    return kExitOk;
  }
  if (positional.empty()) return UsageError("build", "missing list or close");
  const std::string& action = positional[0];
  if (action == "list") {
    if (positional.size() > 1) {
      return UsageError("build", absl::StrCat("unexpected argument \"", positional[1], "\""));
    }
  } else if (action == "close") {
    if (positional.size() < 2) return UsageError("build", "missing NAME: distctl build close NAME");
    if (positional.size() > 2) {
      return UsageError("build", absl::StrCat("unexpected argument \"", positional[2], "\""));
    }
    if (positional[1].empty()) return UsageError("build", "the build name is empty");
  } else {
    return UsageError("build", absl::StrCat("unknown action \"", action, "\" (list or close)"));
  }
  absl::StatusOr<Connection> connection = Connect(global);
  if (!connection.ok()) return ReportConnectError(connection.status());
  return action == "list" ? List(*connection) : Close(*connection, positional[1]);
}

}  // namespace distd::client
