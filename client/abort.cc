// `distctl abort`: makes the build dying and returns once no job of it runs. Quiet on
// success, so that scripts can call it unconditionally on their way out.
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/commands.h"
#include "client/connect.h"
#include "client/print.h"
#include "client/rpc.h"
#include "common/exit_codes.h"

namespace distd::client {
namespace {

constexpr char kDescription[] = R"(aborts the build and returns once no job of it runs
Aborts the build: its queued jobs are cancelled, its running jobs stopped (SIGTERM to each
job's process group, SIGKILL after the grace period), every waiter released with the
failure. Returns once no job of the build runs; the build then stays failed until
`distctl build close`. Idempotent. Exits 0, or 125 if distd refuses (an unknown build).)";

}  // namespace

void AddAbortCommand(const CommandSite& site) {
  CLI::App* abort = AddSubcommand(site, "abort", kDescription);
  if (abort == nullptr) return;
  auto request = std::make_shared<v1::AbortRequest>();
  request->set_reason("distctl abort");
  abort
      ->add_option_function<std::string>(
          "--reason",
          [request](const std::string& value) {
            if (value.empty()) throw CLI::ValidationError("--reason", "the reason is empty");
            request->set_reason(value);
          },
          "why, as waiters and status will show it")
      ->type_name("TEXT");
  abort->add_flag_callback(
      "--drain", [request] { request->set_drain(true); },
      "let running jobs finish instead of stopping them");
  abort
      ->add_option_function<std::string>(
          "--grace",
          [request](const std::string& value) {
            request->set_grace_ms(ToApiMilliseconds(*ParsePositiveDuration(value)));
          },
          "between SIGTERM and SIGKILL (default: distd's --grace)")
      ->type_name("DUR")
      ->check(PositiveDuration());
  abort->callback([site, request] {
    *site.action = [global = site.global, request] {
      request->set_build(global->build);
      absl::StatusOr<Connection> connection = Connect(*global);
      if (!connection.ok()) return ReportConnectError(connection.status());
      // Ctrl-C stops waiting for the abort, not the abort: distd carries it through.
      v1::AbortResponse response;
      return CallDistd(*connection, &v1::Distd::Stub::Abort, *request, &response);
    };
  });
}

}  // namespace distd::client
