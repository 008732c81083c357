#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "client/print.h"
#include "client/relay.h"
#include "client/rpc.h"
#include "client/run.h"
#include "client/stop.h"
#include "common/direct_output.h"
#include "common/exit_codes.h"
#include "grpcpp/client_context.h"

namespace distd::client {
namespace {

constexpr absl::Duration kCancelTimeout = absl::Seconds(5);

// Stopping a foreground job: the first time, with the job's id known, by CancelJob: the job is
// stopped (SIGTERM, then SIGKILL after the grace) and the stream goes on to its result, so
// that distctl exits only once the job is gone. Before the id is known, the second time (an
// impatient user), or if CancelJob fails, by cancelling the call itself, which makes distd
// cancel the job.
class JobStopper {
 public:
  JobStopper(v1::Distd::Stub* stub, grpc::ClientContext* run_context)
      : stub_(stub), run_context_(run_context) {}

  void SetJob(uint64_t id) {
    absl::MutexLock lock(&mu_);
    job_id_ = id;
  }

  void Stop(int nth) {
    uint64_t job = 0;
    {
      absl::MutexLock lock(&mu_);
      job = job_id_;
    }
    if (nth == 1 && job != 0 && CancelJob(job)) return;
    run_context_->TryCancel();
  }

 private:
  bool CancelJob(uint64_t job) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         absl::ToChronoMilliseconds(kCancelTimeout));
    v1::CancelJobRequest request;
    request.set_job_id(job);
    v1::CancelJobResponse response;
    grpc::Status status = stub_->CancelJob(&context, request, &response);
    // NOT_FOUND: the job has just ended and its result is on the way.
    return status.ok() && (response.error().code() == v1::Error::OK ||
                           response.error().code() == v1::Error::NOT_FOUND);
  }

  v1::Distd::Stub* const stub_;
  grpc::ClientContext* const run_context_;
  absl::Mutex mu_;
  uint64_t job_id_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace

int JobExitCode(const v1::JobResult& result) {
  const std::string& message = result.message();
  switch (result.outcome()) {
    case v1::SUCCEEDED:
    case v1::FAILED:
    case v1::KILLED: {
      // Stopped by somebody else (an abort of the build, distd shutting down): the code
      // (143, 137) alone would not say why.
      if (result.stopped()) {
        Err(message.empty() ? absl::StrCat("job ", result.job_id(),
                                           " was stopped by distd (its build was aborted, or "
                                           "the job cancelled)")
                            : message);
      }
      const int signal = result.signal();
      if (signal > 0 && signal < kExitSignalBase) return kExitSignalBase + signal;
      const int code = result.exit_code();
      if (signal == 0 && code >= 0 && code <= 255) return code;
      Err(absl::StrCat("distd reported exit code ", code, " and signal ", signal, " for job ",
                       result.job_id()));
      return kExitDistdError;
    }
    case v1::TIMED_OUT:
      if (!message.empty()) Err(message);
      return kExitTimedOut;
    case v1::CANNOT_START:
      Err(message.empty() ? "the command could not be started" : message);
      return result.program_not_found() ? kExitNotFound : kExitCannotRun;
    case v1::CANCELLED:
    case v1::LOST:
      // A job that never ran, or whose end distd did not see, has no code of its own.
      if (message.empty()) {
        Err(absl::StrCat("job ", result.job_id(), ": ",
                         result.outcome() == v1::LOST ? "lost" : "cancelled"));
      } else {
        Err(absl::StrCat("job ", result.job_id(), ": ", message));
      }
      return kExitDistdError;
    default:
      Err(absl::StrCat("distd reported no outcome for job ", result.job_id()));
      return kExitDistdError;
  }
}

void OfferOwnFiles(v1::RunRequest* request) {
  for (int fd : {STDOUT_FILENO, STDERR_FILENO}) {
    // Pipes and /dev/null (distd checks again); a file we may not write is not offered.
    struct stat st;
    const int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || (flags & O_ACCMODE) == O_RDONLY || fstat(fd, &st) != 0 ||
        !IsDirectOutputFile(st)) {
      continue;
    }
    v1::ClientFile* file =
        fd == STDOUT_FILENO ? request->mutable_stdout_file() : request->mutable_stderr_file();
    file->set_dev(st.st_dev);
    file->set_ino(st.st_ino);
  }
}

int RunForeground(const Connection& connection, const v1::RunRequest& request) {
  grpc::ClientContext context;
  JobStopper job(connection.stub.get(), &context);
  CallStop stop([&job](int nth) { job.Stop(nth); });
  std::unique_ptr<grpc::ClientReader<v1::RunEvent>> reader =
      connection.stub->Run(&context, request);
  OutputRelay relay(&stop);
  v1::JobResult result;
  const StreamEnd stream = ReadStream<v1::RunEvent>(reader.get(), &stop, [&](const auto& event) {
    switch (event.event_case()) {
      case v1::RunEvent::kQueued:
        job.SetJob(event.queued().job_id());
        break;
      case v1::RunEvent::kOutput:
        relay.Write(event.output());
        break;
      case v1::RunEvent::kResult:
        result = event.result();
        return true;
      default:  // kStarted, and events newer than this client
        break;
    }
    return false;
  });
  if (std::optional<int> code = ExitWithoutResult(stream, connection.address)) return *code;
  return JobExitCode(result);
}

}  // namespace distd::client
