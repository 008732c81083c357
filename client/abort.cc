// `distctl abort`: makes the build dying and returns once no job of it runs. Quiet on
// success, so that scripts can call it unconditionally on their way out.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/args.h"
#include "client/commands.h"
#include "client/connect.h"
#include "client/print.h"
#include "client/rpc.h"
#include "common/exit_codes.h"

namespace distd::client {
namespace {

constexpr char kUsage[] = R"(usage: distctl abort [--reason TEXT] [--drain] [--grace DUR]

Aborts the build: its queued jobs are cancelled, its running jobs stopped (SIGTERM to each
job's process group, SIGKILL after the grace period), every waiter released with the
failure. Returns once no job of the build runs; the build then stays failed until
`distctl build close`. Idempotent. Exits 0, or 125 if distd refuses (an unknown build).

flags:
  --reason TEXT  why, as waiters and status will show it
  --drain        let running jobs finish instead of stopping them
  --grace DUR    between SIGTERM and SIGKILL (default: distd's --grace)
  --addr, --build  as before the command (see distctl --help)
)";

}  // namespace

int AbortCommand(GlobalOptions global, const std::vector<std::string>& args) {
  ArgParser parser;
  AddGlobalFlags(&parser, &global);
  v1::AbortRequest request;
  request.set_reason("distctl abort");
  parser.Option({"--reason"}, "TEXT", [&](const std::string& value) {
    if (value.empty()) return absl::InvalidArgumentError("the reason is empty");
    request.set_reason(value);
    return absl::OkStatus();
  });
  parser.Flag({"--drain"}, [&] { request.set_drain(true); });
  parser.Option({"--grace"}, "DUR", [&](const std::string& value) {
    absl::StatusOr<absl::Duration> grace = ParsePositiveDuration(value);
    if (!grace.ok()) return grace.status();
    request.set_grace_ms(ToApiMilliseconds(*grace));
    return absl::OkStatus();
  });
  std::vector<std::string> positional;
  if (absl::Status status = parser.Parse(args, false, &positional); !status.ok()) {
    return UsageError("abort", status.message());
  }
  if (parser.help()) {
    Out(kUsage);
    return kExitOk;
  }
  if (!positional.empty()) {
    return UsageError("abort", absl::StrCat("unexpected argument \"", positional[0], "\""));
  }
  request.set_build(global.build);

  absl::StatusOr<Connection> connection = Connect(global);
  if (!connection.ok()) return ReportConnectError(connection.status());
  // Ctrl-C stops waiting for the abort, not the abort: distd carries it through.
  v1::AbortResponse response;
  return CallDistd(*connection, &v1::Distd::Stub::Abort, request, &response);
}

}  // namespace distd::client
