// `distctl status`: the pool, the builds and the running jobs, once or every second.
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/commands.h"
#include "client/connect.h"
#include "client/print.h"
#include "client/rpc.h"
#include "client/signals.h"
#include "client/tables.h"
#include "common/exit_codes.h"
#include "google/protobuf/util/json_util.h"

namespace distd::client {
namespace {

constexpr char kDescription[] = R"(the pool, the builds and the running jobs
Shows the pool (running and queued jobs, slots), the builds (state, jobs by state, first
failure), the running jobs and the builds closed last, with their outcome. Every build,
unless one was named with --build or DISTD_BUILD: then only that one, and distctl exits 1
if it has failed (0 otherwise).)";

constexpr absl::Duration kWatchInterval = absl::Seconds(1);

std::string Human(const v1::StatusResponse& response, bool colour) {
  std::string text = absl::StrCat("pool: ", response.running(), " running, ", response.queued(),
                                  " queued, ", response.jobs(), " slots");
  // Slots that nested builds (make, ninja, cargo) run their own processes on.
  if (response.lent() > 0) absl::StrAppend(&text, ", ", response.lent(), " lent to nested builds");
  text += "\n";
  if (response.builds_size() == 0) {
    text += "no builds\n";
  } else {
    text += FormatBuilds(response.builds(), colour);
  }
  if (response.running_jobs_size() > 0) {
    absl::StrAppend(&text, "\n", FormatRunningJobs(response.running_jobs(), absl::Now()));
  }
  if (response.history_size() > 0) {
    absl::StrAppend(&text, "\nrecently closed:\n",
                    FormatHistory(response.history(), colour, absl::Now()));
  }
  return text;
}

absl::StatusOr<std::string> Json(const v1::StatusResponse& response) {
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string json;
  auto status = google::protobuf::util::MessageToJsonString(response, &json, options);
  if (!status.ok()) {
    return absl::InternalError(
        absl::StrCat("cannot print the status as JSON: ", status.ToString()));
  }
  json.push_back('\n');
  return json;
}

int Status(const GlobalOptions& global, bool json, bool watch, int history) {
  absl::StatusOr<Connection> connection = Connect(global);
  if (!connection.ok()) return ReportConnectError(connection.status());

  v1::StatusRequest request;
  if (global.build_given) {
    request.set_build(global.build);
  } else {
    request.set_history(history);
  }
  const bool clear_screen = watch && !json && isatty(STDOUT_FILENO) == 1;
  for (bool first = true;; first = false) {
    grpc::ClientContext context;
    v1::StatusResponse response;
    int signo = 0;
    grpc::Status status = CallCancellable(
        &context, [&] { return connection->stub->Status(&context, request, &response); }, &signo);
    if (!status.ok()) {
      // Ctrl-C is how a watch ends.
      if (watch && signo != 0) return kExitOk;
      // A watch finds a distd restarted meanwhile (and checked as the first one was).
      if (watch && status.error_code() == grpc::StatusCode::UNAVAILABLE) {
        absl::StatusOr<Connection> again = Connect(global);
        if (again.ok()) {
          connection = std::move(again);
          continue;
        }
      }
      return FailedCall(status, signo, connection->address);
    }
    if (ReportError(response.error())) return RefusalExitCode(response.error());
    std::string text;
    if (json) {
      absl::StatusOr<std::string> printed = Json(response);
      if (!printed.ok()) {
        Err(printed.status().message());
        return kExitDistdError;
      }
      text = *std::move(printed);
    } else {
      text = Human(response, ColourOn(STDOUT_FILENO));
    }
    if (clear_screen) {
      text = absl::StrCat("\x1b[H\x1b[2J", text);
    } else if (watch && !json && !first) {
      text = absl::StrCat("\n", text);
    }
    Out(text);
    if (!watch) {
      for (const v1::Build& build : response.builds()) {
        if (global.build_given && build.state() != v1::BUILD_RUNNING) return kExitBuildFailed;
      }
      return kExitOk;
    }
    if (SleepUnlessSignalled(kWatchInterval) != 0) return kExitOk;
  }
}

}  // namespace

void AddStatusCommand(const CommandSite& site) {
  CLI::App* status = AddSubcommand(site, "status", kDescription);
  if (status == nullptr) return;
  struct Flags {
    bool json = false;
    bool watch = false;
    int history = 5;
  };
  auto flags = std::make_shared<Flags>();
  status->add_flag("--json", flags->json,
                   "one JSON object (the API's StatusResponse, proto field names)");
  status
      ->add_option("--history", flags->history,
                   "with every build, the N builds closed last, from distd's journal "
                   "(default 5, at most 100; 0: none)")
      ->type_name("N")
      ->check(CLI::Range(0, 100));
  status->add_flag("--watch", flags->watch,
                   "again every second until Ctrl-C (clearing the screen on a terminal; with "
                   "--json, one object a line)");
  status->callback([site, flags] {
    *site.action = [global = site.global, flags] {
      return Status(*global, flags->json, flags->watch, flags->history);
    };
  });
}

}  // namespace distd::client
