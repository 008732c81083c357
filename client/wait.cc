// `distctl wait`: the barrier. Success exits 0; a failed build prints its first failure,
// with that job's output, and exits 1. Interrupted, it aborts the build (a cancelled CI job
// must not leave its build running on the host) and exits 128+signal once nothing of the
// build runs.
#include <sys/ioctl.h>
#include <unistd.h>

#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "client/commands.h"
#include "client/connect.h"
#include "client/print.h"
#include "client/rpc.h"
#include "client/signals.h"
#include "client/stop.h"
#include "common/exit_codes.h"

namespace distd::client {
namespace {

constexpr char kDescription[] = R"(waits for the build's background jobs: the barrier
Waits for every background job of the build (or of group G in it) submitted before it.
All succeeded, or the build never had a job: exits 0. The build failed: returns once no
job of it runs, prints FAILED: CMD and that job's output on stderr, and exits 1. A closed
build is answered as distd's journal last saw it. Ctrl-C or SIGTERM aborts the
build and exits 130 or 143 once nothing of it runs.)";

constexpr char kInterruptReason[] = "distctl wait interrupted";

// The abort that a stop of the wait starts. Sent asynchronously so that the signal thread
// stays free: a second Ctrl-C gives up on waiting for it (the abort itself goes on in distd).
class BuildAbort {
 public:
  BuildAbort(v1::Distd::Stub* stub, std::string build) : stub_(stub) {
    request_.set_build(std::move(build));
    request_.set_reason(kInterruptReason);
  }
  ~BuildAbort() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(this, &BuildAbort::IdleLocked));
  }
  BuildAbort(const BuildAbort&) = delete;
  BuildAbort& operator=(const BuildAbort&) = delete;

  // Sends the abort (once).
  void Start() {
    {
      absl::MutexLock lock(&mu_);
      if (started_) return;
      started_ = true;
    }
    // Outside the lock: gRPC may run the callback before this returns.
    stub_->async()->Abort(&context_, &request_, &response_, [this](grpc::Status status) {
      absl::MutexLock done_lock(&mu_);
      status_ = std::move(status);
      done_ = true;
    });
  }

  // Stops waiting for the answer.
  void GiveUp() { context_.TryCancel(); }

  // Waits for the answer; says whether the build was aborted, or what went wrong.
  void AwaitAndReport(const Address& address) {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(this, &BuildAbort::IdleLocked));
    if (!started_) return;
    if (!status_.ok()) {
      if (status_.error_code() != grpc::StatusCode::CANCELLED) {
        Err(absl::StrCat("aborting build ", request_.build(), ": ",
                         DescribeRpcError(status_, address)));
      }
      return;
    }
    if (!ReportError(response_.error())) Err(absl::StrCat("aborted build ", request_.build()));
  }

 private:
  bool IdleLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !started_ || done_; }

  v1::Distd::Stub* const stub_;
  v1::AbortRequest request_;
  v1::AbortResponse response_;
  grpc::ClientContext context_;
  absl::Mutex mu_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
};

// A signal that came while connecting: abort the build anyway (as a signal during the wait
// would), then exit as that signal says.
int AbortAfterEarlySignal(const GlobalOptions& global) {
  const int signo = ReceivedSignal();
  absl::StatusOr<Connection> connection = Dial(global);
  if (connection.ok()) {
    BuildAbort abort(connection->stub.get(), global.build);
    abort.Start();
    abort.AwaitAndReport(connection->address);
  }
  return kExitSignalBase + signo;
}

// The line that rewrites itself on a terminal.
class ProgressLine {
 public:
  explicit ProgressLine(bool enabled) : enabled_(enabled) {}

  void Show(const v1::Progress& progress) {
    if (!enabled_) return;
    const v1::Build& build = progress.build();
    std::string line = absl::StrCat("[", build.succeeded() + build.failed() + build.cancelled(),
                                    "/", build.submitted(), "]");
    if (progress.running_size() > 0) {
      absl::StrAppend(&line, " running: ", OneLine(ShellJoin(progress.running(0).argv())));
      if (progress.running_size() > 1) {
        absl::StrAppend(&line, " (+", progress.running_size() - 1, ")");
      }
    }
    // One column short of the width: writing the last column makes some terminals wrap.
    (void)WriteAll(STDERR_FILENO, absl::StrCat("\r", Elide(line, TerminalWidth() - 1), "\x1b[K"));
    shown_ = true;
  }

  void Erase() {
    if (shown_) (void)WriteAll(STDERR_FILENO, "\r\x1b[K");
    shown_ = false;
  }

 private:
  static size_t TerminalWidth() {
    winsize size{};
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col >= 20) return size.ws_col;
    return 80;
  }

  const bool enabled_;
  bool shown_ = false;
};

// FAILED: CMD (or the reason, when an abort rather than a job failed the build), then what
// that job printed, then why, all on stderr.
void PrintFailure(const v1::Failure& failure) {
  std::string text;
  const std::string failed = Paint("FAILED:", Colour::kBoldRed, ColourOn(STDERR_FILENO));
  if (failure.has_job() && failure.job().argv_size() > 0) {
    absl::StrAppend(&text, failed, " ", ShellJoin(failure.job().argv()), "\n");
  } else {
    absl::StrAppend(&text, failed, " ",
                    failure.reason().empty() ? "the build failed" : OneLine(failure.reason()),
                    "\n");
  }
  for (const std::string* output : {&failure.stdout(), &failure.stderr()}) {
    text += *output;
    if (!output->empty() && output->back() != '\n') text.push_back('\n');
  }
  (void)WriteAll(STDERR_FILENO, text);
  if (failure.has_job() && !failure.reason().empty()) Err(OneLine(failure.reason()));
}

int Wait(const GlobalOptions& global, const std::string& group, bool progress) {
  absl::StatusOr<Connection> connection = Connect(global);
  if (!connection.ok() && absl::IsCancelled(connection.status()) && ReceivedSignal() != 0) {
    // Interrupted before the wait began: the signal still means "abort the build".
    return AbortAfterEarlySignal(global);
  }
  if (!connection.ok()) return ReportConnectError(connection.status());

  v1::WaitRequest request;
  request.set_build(global.build);
  request.set_group(group);
  // Without a terminal to draw on, progress is not even asked for.
  request.set_progress(progress && isatty(STDERR_FILENO) == 1);
  ProgressLine line(request.progress());

  grpc::ClientContext context;
  BuildAbort abort(connection->stub.get(), global.build);
  // The first stop aborts the build, and the wait goes on to see it end; the next gives up.
  CallStop stop([&](int nth) {
    if (nth == 1) {
      abort.Start();
    } else {
      abort.GiveUp();
      context.TryCancel();
    }
  });
  std::unique_ptr<grpc::ClientReader<v1::WaitEvent>> reader =
      connection->stub->Wait(&context, request);
  v1::Build result;
  const StreamEnd stream = ReadStream<v1::WaitEvent>(reader.get(), &stop, [&](const auto& event) {
    if (event.has_progress()) line.Show(event.progress());
    if (!event.has_result()) return false;
    result = event.result();
    return true;
  });
  line.Erase();
  if (stream.stopped != 0) abort.AwaitAndReport(connection->address);
  if (std::optional<int> code = ExitWithoutResult(stream, connection->address)) return *code;
  if (!result.has_failure()) {
    if (result.submitted() == 0) {
      Err(absl::StrCat("build ", global.build, ": nothing to wait for (no job was queued in it)"));
    }
    return kExitOk;
  }
  PrintFailure(result.failure());
  return kExitBuildFailed;
}

}  // namespace

void AddWaitCommand(const CommandSite& site) {
  CLI::App* wait = AddSubcommand(site, "wait", kDescription);
  if (wait == nullptr) return;
  struct Flags {
    std::string group;
    bool progress = false;
  };
  auto flags = std::make_shared<Flags>();
  wait->add_option("--group", flags->group, "wait for group G only")->type_name("G");
  wait->add_flag("--progress", flags->progress,
                 "on a terminal, a status line on stderr: [done/total] running: CMD");
  wait->callback([site, flags] {
    *site.action = [global = site.global, flags] {
      return Wait(*global, flags->group, flags->progress);
    };
  });
}

}  // namespace distd::client
