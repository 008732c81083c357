// `distctl logs JOB`: what a job printed (as kept: the head and tail of a long output), and
// with --follow what it prints until it ends.
#include <memory>
#include <optional>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "client/commands.h"
#include "client/connect.h"
#include "client/print.h"
#include "client/relay.h"
#include "client/rpc.h"
#include "client/stop.h"
#include "common/exit_codes.h"

namespace distd::client {
namespace {

constexpr char kDescription[] =
    R"(what job JOB printed, and with --follow what it prints until it ends
Prints what job JOB (the id `run --bg` printed) wrote: its stdout to stdout, its stderr to
stderr. Of a long output distd keeps the head and the tail; what was left out is counted
on stderr.)";

void ReportOmitted(uint64_t bytes, absl::string_view stream) {
  if (bytes == 0) return;
  Err(absl::StrCat(bytes, " bytes of ", stream,
                   " were not kept (distd keeps the head and the tail)"));
}

int Logs(const GlobalOptions& global, const v1::LogsRequest& request) {
  absl::StatusOr<Connection> connection = Connect(global);
  if (!connection.ok()) return ReportConnectError(connection.status());
  grpc::ClientContext context;
  CallStop stop([&context](int) { context.TryCancel(); });
  std::unique_ptr<grpc::ClientReader<v1::LogsEvent>> reader =
      connection->stub->Logs(&context, request);
  OutputRelay relay(&stop);
  v1::LogsEvent::End end;
  const StreamEnd stream = ReadStream<v1::LogsEvent>(reader.get(), &stop, [&](const auto& event) {
    if (event.has_end()) {
      end = event.end();
      return true;
    }
    if (event.has_output()) relay.Write(event.output());
    return false;
  });
  if (std::optional<int> code = ExitWithoutResult(stream, connection->address)) return *code;
  ReportOmitted(end.stdout_omitted(), "stdout");
  ReportOmitted(end.stderr_omitted(), "stderr");
  return kExitOk;
}

}  // namespace

void AddLogsCommand(const CommandSite& site) {
  CLI::App* logs = AddSubcommand(site, "logs", kDescription);
  if (logs == nullptr) return;
  auto request = std::make_shared<v1::LogsRequest>();
  logs->add_flag_callback(
      "-f,--follow", [request] { request->set_follow(true); }, "then what it writes until it ends");
  logs->add_option_function<std::string>(
          "JOB",
          [request](const std::string& value) {
            uint64_t id = 0;
            if (!absl::SimpleAtoi(value, &id) || id == 0) {
              throw CLI::ValidationError(
                  absl::StrCat("JOB must be a job id (a number > 0), not \"", value, "\""));
            }
            request->set_job_id(id);
          },
          "the job's id, as run --bg printed it")
      ->required();
  logs->callback([site, request] {
    *site.action = [global = site.global, request] { return Logs(*global, *request); };
  });
}

}  // namespace distd::client
