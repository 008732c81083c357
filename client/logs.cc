// `distctl logs JOB`: what a job printed (as kept: the head and tail of a long output), and
// with --follow what it prints until it ends.
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "client/commands.h"
#include "client/connect.h"
#include "client/print.h"
#include "client/rpc.h"
#include "client/signals.h"
#include "common/exit_codes.h"

namespace distd::client {
namespace {

constexpr char kDescription[] =
    R"(what job JOB printed, and with --follow what it prints until it ends
Prints what job JOB (the id `run --bg` printed) wrote: its stdout to stdout, its stderr to
stderr. Of a long output distd keeps the head and the tail; what was left out is counted
on stderr.)";

// Ends the call early: on a signal, or when our reader went away.
class Stopper {
 public:
  explicit Stopper(grpc::ClientContext* context) : context_(context) {}
  void Stop(int reason) {
    {
      absl::MutexLock lock(&mu_);
      if (reason_ == 0) reason_ = reason;
    }
    context_->TryCancel();
  }
  int reason() {
    absl::MutexLock lock(&mu_);
    return reason_;
  }

 private:
  grpc::ClientContext* const context_;
  absl::Mutex mu_;
  int reason_ ABSL_GUARDED_BY(mu_) = 0;
};

void ReportOmitted(uint64_t bytes, absl::string_view stream) {
  if (bytes == 0) return;
  Err(absl::StrCat(bytes, " bytes of ", stream,
                   " were not kept (distd keeps the head and the tail)"));
}

int Logs(const GlobalOptions& global, const v1::LogsRequest& request) {
  absl::StatusOr<Connection> connection = Connect(global);
  if (!connection.ok()) return ReportConnectError(connection.status());
  grpc::ClientContext context;
  Stopper stopper(&context);
  std::optional<v1::LogsEvent::End> end;
  std::optional<v1::Error> error;
  grpc::Status status;
  {
    OnSignal on_signal([&](int signo) { stopper.Stop(signo); });
    std::unique_ptr<grpc::ClientReader<v1::LogsEvent>> reader =
        connection->stub->Logs(&context, request);
    v1::LogsEvent event;
    bool writing = true;
    while (reader->Read(&event)) {
      if (end.has_value() || error.has_value()) continue;
      switch (event.event_case()) {
        case v1::LogsEvent::kOutput: {
          if (!writing) break;
          const int fd = event.output().stream() == v1::STDERR ? STDERR_FILENO : STDOUT_FILENO;
          if (int err = WriteAll(fd, event.output().data()); err != 0) {
            writing = false;
            if (err != EPIPE) Err(absl::StrCat("cannot write the output: ", std::strerror(err)));
            stopper.Stop(err == EPIPE ? SIGPIPE : -1);
          }
          break;
        }
        case v1::LogsEvent::kEnd:
          end = event.end();
          break;
        case v1::LogsEvent::kError:
          error = event.error();
          break;
        default:
          break;
      }
    }
    status = reader->Finish();
  }
  if (int reason = stopper.reason(); reason != 0) {
    return reason > 0 ? kExitSignalBase + reason : kExitDistdError;
  }
  if (error.has_value()) {
    if (!ReportError(*error)) Err("distd refused without saying why");
    return RefusalExitCode(*error);
  }
  if (end.has_value()) {
    ReportOmitted(end->stdout_omitted(), "stdout");
    ReportOmitted(end->stderr_omitted(), "stderr");
    return kExitOk;
  }
  return StreamEndedEarly(status, connection->address);
}

}  // namespace

void AddLogsCommand(const CommandSite& site) {
  CLI::App* logs = AddSubcommand(site, "logs", kDescription);
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
