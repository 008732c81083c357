#include "server/service/reactors.h"

#include <deque>
#include <string>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "server/service/client_files.h"
#include "server/service/convert.h"
#include "server/service/stream_writer.h"

namespace distd::service {
namespace {

v1::RunEvent ErrorEvent(const absl::Status& status) {
  v1::RunEvent event;
  *event.mutable_error() = ToError(status);
  return event;
}

class RunReactor final : public StreamWriter<v1::RunEvent>, public engine::JobWatcher {
 public:
  RunReactor(engine::Engine* engine, const engine::Caller& caller, const v1::RunRequest& request)
      : engine_(engine) {
    google::protobuf::RepeatedPtrField<v1::Command> commands;
    *commands.Add() = request.command();
    std::vector<engine::JobSpec> specs =
        ToJobSpecs(request.cwd(), request.env(), commands, request.settings());
    specs.front().background = false;  // its client waits for it; barriers do not
    specs.front().targets = OpenClientFiles(caller.pid, request);
    auto ids = engine_->Submit(request.build(), std::move(specs), caller, this);
    if (!ids.ok()) {
      Send(ErrorEvent(ids.status()), /*last=*/true);
      Uncork();
      return;
    }
    v1::RunEvent queued;
    queued.mutable_queued()->set_job_id(ids->front());
    {
      absl::MutexLock lock(&mu_);
      job_id_ = ids->front();
    }
    // Events of the job may already be queued behind the cork: Queued goes first.
    std::deque<v1::RunEvent> first;
    first.push_back(std::move(queued));
    Uncork(std::move(first));
  }

  void OnJobStarted(const engine::JobInfo& job) override {
    v1::RunEvent event;
    event.mutable_started()->set_job_id(job.id);
    event.mutable_started()->set_pid(job.pid);
    Send(std::move(event));
  }

  void OnJobOutput(engine::JobId, engine::OutputStream stream, absl::string_view data) override {
    SendOutput(ToProto(stream), data);
  }

  bool Backlogged() override { return Overloaded(); }

  void OnCaughtUp() override {
    engine::JobId id;
    {
      absl::MutexLock lock(&mu_);
      id = job_id_;
    }
    engine_->ResumeOutput(id, this);
  }

  void OnJobFinished(const engine::JobInfo& job) override {
    v1::RunEvent event;
    ToProto(job.result, job.id, event.mutable_result());
    Send(std::move(event), /*last=*/true);
  }

  void OnCancel() override {
    engine::JobId id;
    {
      absl::MutexLock lock(&mu_);
      id = job_id_;
    }
    // The job ends (killed, or cancelled if still queued) and its result finishes the stream.
    // Its client is gone: nothing more goes to its stdout and stderr.
    if (id != 0) (void)engine_->CancelJob(id, /*client_gone=*/true);
  }

 private:
  engine::Engine* const engine_;
  absl::Mutex mu_;
  engine::JobId job_id_ ABSL_GUARDED_BY(mu_) = 0;
};

class WaitReactor final : public StreamWriter<v1::WaitEvent> {
 public:
  WaitReactor(engine::Engine* engine, spawn::Clock* clock, absl::Duration interval,
              History* history, const v1::WaitRequest& request)
      : engine_(engine),
        clock_(clock),
        interval_(interval),
        history_(history),
        build_(request.build()) {
    Uncork();
    // The waiter's callback is the one place that finishes this stream, so the reactor
    // outlives it.
    engine::WaiterId id = engine_->WaitAsync(
        request.build(), request.group(),
        [this](absl::StatusOr<engine::BuildInfo> result) { OnResult(std::move(result)); });
    bool cancelled;
    {
      absl::MutexLock lock(&mu_);
      waiter_ = id;
      cancelled = cancelled_;
    }
    if (cancelled && id != 0) engine_->CancelWaiter(id);
    if (request.progress()) ScheduleTick();
  }

  void OnCancel() override {
    engine::WaiterId id;
    {
      absl::MutexLock lock(&mu_);
      cancelled_ = true;
      id = waiter_;
    }
    if (id != 0) engine_->CancelWaiter(id);
  }

 private:
  void OnResult(absl::StatusOr<engine::BuildInfo> result) {
    v1::WaitEvent event;
    if (absl::IsNotFound(result.status())) {
      // Closed, or never used: a script that waits unconditionally must not fail for it.
      absl::StatusOr<std::optional<engine::BuildInfo>> past = std::nullopt;
      if (history_ != nullptr) past = history_->PastBuild(build_);
      if (!past.ok()) {
        result = past.status();
      } else if (past->has_value()) {
        result = **std::move(past);
      } else {
        engine::BuildInfo never;
        never.name = build_;
        result = std::move(never);
      }
    }
    if (result.ok()) {
      ToProto(*result, event.mutable_result());
      Send(std::move(event), /*last=*/true);
    } else if (absl::IsCancelled(result.status())) {
      FinishWith(grpc::Status(grpc::StatusCode::CANCELLED, "the wait was cancelled"));
    } else {
      *event.mutable_error() = ToError(result.status());
      Send(std::move(event), /*last=*/true);
    }
  }

  // Progress is sampled on the service's clock thread, never under the engine's lock. The
  // pending timer holds a reference, released when it runs or when the clock drops it.
  void ScheduleTick() {
    Ref();
    struct Holder {
      explicit Holder(WaitReactor* r) : reactor(r) {}
      Holder(const Holder&) = delete;
      Holder& operator=(const Holder&) = delete;
      ~Holder() { reactor->Unref(); }
      WaitReactor* const reactor;
    };
    auto holder = std::make_shared<Holder>(this);
    clock_->Schedule(clock_->Now() + interval_, [holder] { holder->reactor->Tick(); });
  }

  void Tick() {
    if (done()) return;
    if (!busy()) {
      v1::WaitEvent event;
      v1::Progress* progress = event.mutable_progress();
      absl::StatusOr<engine::Snapshot> snapshot = engine_->TakeSnapshot(build_);
      if (snapshot.ok()) {
        for (const engine::BuildInfo& build : snapshot->builds) {
          ToProto(build, progress->mutable_build());
        }
        for (const engine::JobInfo& job : snapshot->running) {
          ToProto(job, progress->add_running());
        }
      }
      std::string serialized = event.SerializeAsString();
      if (serialized != last_progress_) {
        last_progress_ = std::move(serialized);
        Send(std::move(event));
      }
    }
    ScheduleTick();
  }

  engine::Engine* const engine_;
  spawn::Clock* const clock_;
  const absl::Duration interval_;
  History* const history_;
  const std::string build_;
  std::string last_progress_;  // only the clock thread touches it
  absl::Mutex mu_;
  engine::WaiterId waiter_ ABSL_GUARDED_BY(mu_) = 0;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
};

class LogsReactor final : public StreamWriter<v1::LogsEvent>, public engine::JobWatcher {
 public:
  LogsReactor(engine::Engine* engine, History* history, const v1::LogsRequest& request)
      : engine_(engine), id_(request.job_id()) {
    {
      // Set before attaching: the job may end the moment the watcher is on.
      absl::MutexLock lock(&mu_);
      watching_ = request.follow();
    }
    absl::StatusOr<engine::JobOutput> output =
        request.follow() ? engine_->WatchJob(id_, this) : engine_->GetJobOutput(id_);
    if (!output.ok() || output->job.state == engine::JobState::kFinished) {
      absl::MutexLock lock(&mu_);
      watching_ = false;  // not attached
    }
    // What the engine has forgotten, the journal may have kept.
    bool from_history = false;
    if (history != nullptr &&
        (absl::IsNotFound(output.status()) ||
         (output.ok() && output->dropped && output->job.state == engine::JobState::kFinished))) {
      absl::StatusOr<std::optional<engine::JobOutput>> past = history->PastJob(id_);
      if (!past.ok() && !output.ok()) {
        output = past.status();  // an error, never "no such job", when the journal cannot tell
      } else if (past.ok() && past->has_value()) {
        output = **std::move(past);
        from_history = true;  // nothing more will come: the end is sent now
      }
    }
    if (!output.ok()) {
      v1::LogsEvent event;
      *event.mutable_error() = ToError(output.status());
      Send(std::move(event), /*last=*/true);
      Uncork();
      return;
    }
    std::deque<v1::LogsEvent> first;
    AddOutput(first, v1::STDOUT, output->stdout_text);
    AddOutput(first, v1::STDERR, output->stderr_text);
    if (!request.follow() || from_history || output->job.state == engine::JobState::kFinished) {
      first.push_back(End(output->job));
      Send(std::move(first.back()), /*last=*/true);
      first.pop_back();
    }
    Uncork(std::move(first));
  }

  void OnJobOutput(engine::JobId, engine::OutputStream stream, absl::string_view data) override {
    SendOutput(ToProto(stream), data);
  }

  bool Backlogged() override { return Overloaded(); }
  void OnCaughtUp() override { engine_->ResumeOutput(id_, this); }

  void OnJobFinished(const engine::JobInfo& job) override {
    {
      absl::MutexLock lock(&mu_);
      watching_ = false;
    }
    Send(End(job), /*last=*/true);
  }

  void OnCancel() override {
    bool watching;
    {
      absl::MutexLock lock(&mu_);
      watching = watching_;
      watching_ = false;
    }
    if (!watching) return;  // the end is on its way, or was sent
    // After Unwatch the engine never calls this reactor again, so it may finish now.
    engine_->Unwatch(id_, this);
    FinishWith(grpc::Status(grpc::StatusCode::CANCELLED, "the client went away"));
  }

 private:
  static void AddOutput(std::deque<v1::LogsEvent>& events, v1::Stream stream,
                        const std::string& text) {
    // Chunks of at most 1 MiB keep each message far below gRPC's size limits.
    constexpr size_t kChunk = 1 << 20;
    for (size_t at = 0; at < text.size(); at += kChunk) {
      v1::LogsEvent event;
      event.mutable_output()->set_stream(stream);
      event.mutable_output()->set_data(text.substr(at, kChunk));
      events.push_back(std::move(event));
    }
  }

  static v1::LogsEvent End(const engine::JobInfo& job) {
    v1::LogsEvent event;
    ToProto(job, event.mutable_end()->mutable_job());
    return event;
  }

  engine::Engine* const engine_;
  const engine::JobId id_;
  absl::Mutex mu_;
  bool watching_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

grpc::ServerWriteReactor<v1::RunEvent>* NewRunReactor(engine::Engine* engine,
                                                      const engine::Caller& caller,
                                                      const v1::RunRequest& request,
                                                      std::shared_ptr<void> hold) {
  auto* reactor = new RunReactor(engine, caller, request);
  reactor->Hold(std::move(hold));
  return reactor;
}

grpc::ServerWriteReactor<v1::WaitEvent>* NewWaitReactor(engine::Engine* engine, spawn::Clock* clock,
                                                        absl::Duration interval, History* history,
                                                        const v1::WaitRequest& request,
                                                        std::shared_ptr<void> hold) {
  auto* reactor = new WaitReactor(engine, clock, interval, history, request);
  reactor->Hold(std::move(hold));
  return reactor;
}

grpc::ServerWriteReactor<v1::LogsEvent>* NewLogsReactor(engine::Engine* engine, History* history,
                                                        const v1::LogsRequest& request,
                                                        std::shared_ptr<void> hold) {
  auto* reactor = new LogsReactor(engine, history, request);
  reactor->Hold(std::move(hold));
  return reactor;
}

}  // namespace distd::service
