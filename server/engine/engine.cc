// Admission, dispatch and completion: how a job enters the engine (Submit), takes a slot of
// the pool (DispatchLocked, StartLocked), and ends (OnProcessExit, FinishLocked, CancelJob);
// and Close, which forgets a build. Part of Engine (engine.h). The engine's other rooms:
//   dying.cc     the dying protocol, its promises and the races it handles; start there
//   barriers.cc  `wait` and the waiters of an abort
//   sweep.cc     the lazy end of a dead build's cancelled queue, forgetting old records
//   views.cc     output to watchers and observers, read-only views
// records.h holds the records they share; every one of them is guarded by mu_.
//
// Dispatch is round robin over the builds with queued jobs (ring_), one job per turn, and a
// build that gains work goes to the front: one build's 100,000 queued jobs never make another
// build's single job wait for more than one free slot.
#include "server/engine/engine.h"

#include <unistd.h>

#include <cstring>
#include <iterator>
#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "common/shell_words.h"
#include "server/engine/records.h"
#include "spdlog/spdlog.h"

namespace distd::engine {
namespace {

const std::vector<std::string>& EmptyEnv() {
  static const auto* env = new std::vector<std::string>();
  return *env;
}

int DefaultPoolSize(int jobs) {
  if (jobs > 0) return jobs;
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  return cpus > 0 ? static_cast<int>(cpus) : 1;
}

}  // namespace

std::string CommandLine(const std::vector<std::string>& argv) {
  constexpr size_t kMax = 200;
  std::string line = ShellJoin(argv);
  if (line.size() > kMax) line = absl::StrCat(line.substr(0, kMax), "...");
  return line;
}

absl::Status NoSuchBuild(absl::string_view name, const Limits& limits) {
  if (absl::Status invalid = ValidateName("build", name, limits); !invalid.ok()) return invalid;
  return absl::NotFoundError(absl::StrCat("no build named ", name));
}

std::string DescribeResult(const JobResult& result) {
  switch (result.outcome) {
    case Outcome::kFailed:
      return absl::StrCat("exit code ", result.exit_code);
    case Outcome::kKilled:
      return absl::StrCat("killed by signal ", result.signal, " (", strsignal(result.signal), ")");
    case Outcome::kTimedOut:
      return "timed out";
    case Outcome::kCannotStart:
      return absl::StrCat("could not start (", result.message, ")");
    default:
      return OutcomeName(result.outcome);
  }
}

Engine::Engine(const EngineOptions& options, std::unique_ptr<spawn::Spawner> spawner,
               std::unique_ptr<spawn::Clock> clock)
    : options_(options),
      pool_size_(DefaultPoolSize(options.jobs)),
      spawner_(std::move(spawner)),
      clock_(std::move(clock)),
      last_job_id_(options.last_job_id) {
  if (options_.idle_abort > absl::ZeroDuration()) ScheduleIdleCheck();
  if (options_.watch_returns && options_.jobserver == spawn::JobserverStyle::kPipe) {
    returns_ = std::make_unique<spawn::ReturnWatcher>([this](JobId id) { OnTokensReturned(id); });
  }
}

Engine::~Engine() {
  Shutdown("the engine is shutting down");
  returns_.reset();  // its last call has returned
  // No job runs now. Joining the spawner's and the clock's threads ends every callback into
  // this object before its members go.
  spawner_.reset();
  clock_.reset();
}

void Engine::Unlock(Deferred& deferred) {
  mu_.Unlock();
  for (auto& fn : deferred) fn();
  deferred.clear();
}

Engine::Build* Engine::FindBuildLocked(absl::string_view name) {
  auto it = builds_.find(name);
  return it == builds_.end() ? nullptr : it->second.get();
}

Engine::Job* Engine::FindJobLocked(JobId id) {
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return nullptr;
  Job* job = it->second.get();
  if (job->state == JobState::kQueued && job->build->state != BuildState::kRunning) {
    // Doomed, and the sweep has not reached it: finish it now, so that no one ever sees a job
    // of a dying build as queued. The sweep will skip it.
    const JobId ids[] = {job->id};
    FinishDoomedLocked(job, job->build->died_at);
    ReportCancelledLocked(*job->build_name, ids);
  }
  return job;
}

size_t Engine::BuildsOpenedByLocked(absl::string_view principal) const {
  size_t count = 0;
  for (const auto& [name, build] : builds_) {
    // A build whose work is all done does not count: a CI that never closes its builds
    // (nor may, without an admin token) is not locked out by its past ones.
    if (build->state == BuildState::kRunning && build->opened_by == principal &&
        (!build->queue.empty() || !build->running.empty())) {
      ++count;
    }
  }
  return count;
}

absl::StatusOr<std::vector<JobId>> Engine::Submit(absl::string_view build_name,
                                                  std::vector<JobSpec> specs, const Caller& caller,
                                                  JobWatcher* watcher) {
  const Limits& limits = options_.limits;
  if (absl::Status s = ValidateName("build", build_name, limits); !s.ok()) return s;
  if (specs.empty()) return absl::InvalidArgumentError("no command given");
  if (specs.size() > limits.max_jobs_per_request) {
    return absl::InvalidArgumentError(absl::StrCat(
        specs.size(), " jobs in one request; the limit is ", limits.max_jobs_per_request));
  }
  for (size_t i = 0; i < specs.size(); ++i) {
    if (absl::Status s = ValidateJobSpec(specs[i], limits); !s.ok()) {
      if (specs.size() == 1) return s;
      absl::Status refused(s.code(), absl::StrCat("command ", i + 1, ": ", s.message()));
      refused.SetPayload(kCommandPayload, absl::Cord(absl::StrCat(i + 1)));
      return refused;
    }
  }
  if (options_.admission) {
    if (absl::Status s = options_.admission(); !s.ok()) {
      return absl::Status(s.code(),
                          absl::StrCat(s.message(), "; nothing of this request was queued"));
    }
  }
  auto shared_caller = std::make_shared<const Caller>(caller);

  mu_.Lock();
  Deferred deferred;
  absl::StatusOr<std::vector<JobId>> ids = std::vector<JobId>();
  Build* build = FindBuildLocked(build_name);
  if (shutting_down_) {
    ids = absl::UnavailableError("distd is shutting down");
  } else if (build != nullptr && build->state != BuildState::kRunning) {
    ids = RefusalLocked(*build);  // before the queue limit: a failure is always named
  } else if (build == nullptr &&
             BuildsOpenedByLocked(caller.principal) >= limits.max_builds_per_caller) {
    ids = absl::ResourceExhaustedError(absl::StrCat(
        caller.principal, " has ", limits.max_builds_per_caller,
        " builds with jobs queued or running, the limit; build ", build_name, " was not opened"));
  } else if (queued_ + specs.size() > limits.max_queued_jobs) {
    ids = absl::ResourceExhaustedError(
        absl::StrCat("the queue is full: ", queued_, " jobs are queued, the limit is ",
                     limits.max_queued_jobs, "; nothing of this request was queued"));
  } else if (const size_t in_build = build != nullptr ? build->queue.size() : 0;
             in_build + specs.size() > limits.max_queued_per_build) {
    ids = absl::ResourceExhaustedError(absl::StrCat(
        "build ", build_name, " has ", in_build, " jobs queued, the limit of a build is ",
        limits.max_queued_per_build, "; nothing of this request was queued"));
  }
  if (!ids.ok()) {
    Unlock(deferred);
    return ids;
  }
  if (build == nullptr) {
    auto created = std::make_unique<Build>();
    created->name = std::make_shared<const std::string>(build_name);
    created->opened_by = caller.principal;
    build = created.get();
    builds_.emplace(*build->name, std::move(created));
  }
  const absl::Time now = clock_->Now();
  ids->reserve(specs.size());
  std::vector<JobInfo> queued;  // for the observers
  if (!observers_.empty()) queued.reserve(specs.size());
  for (JobSpec& spec : specs) {
    auto job = std::make_unique<Job>();
    job->id = ++last_job_id_;
    job->build = build;
    job->build_name = build->name;
    job->spec = std::move(spec);
    job->caller = shared_caller;
    job->queued_at = now;
    if (job->spec.targets != nullptr) job->owner = watcher;
    if (watcher != nullptr) {
      job->watchers.push_back(watcher);
      build->watched_queued.insert(job.get());
    }
    build->queue.push_back(job.get());
    if (job->spec.background) {
      // Barriers wait for background jobs: a foreground job's own client waits for it.
      build->barrier.unfinished.push_back(job->id);
      if (!job->spec.group.empty()) build->groups[job->spec.group].unfinished.push_back(job->id);
    }
    if (!observers_.empty()) queued.push_back(InfoLocked(*job));
    ids->push_back(job->id);
    jobs_.emplace(job->id, std::move(job));
  }
  for (EngineObserver* o : observers_) o->OnJobsQueued(queued);
  queued_ += ids->size();
  build->submitted += ids->size();
  build->attended_at = now;
  if (!build->in_ring) {
    // A build that gains work goes first: its next job waits for at most one free slot,
    // however many jobs other builds have queued.
    ring_.push_front(build);
    build->ring_pos = ring_.begin();
    build->in_ring = true;
  }
  DispatchLocked(deferred);
  EvictLocked(kEvictPerRequest);
  Unlock(deferred);
  return ids;
}

void Engine::DispatchLocked(Deferred& deferred) {
  const uint64_t pool = static_cast<uint64_t>(pool_size_);
  while (!ring_.empty()) {
    // A slot lent as a token is free again once it is back in its job's pipe.
    if (running_ + lent_ >= pool && (lent_ == 0 || ReclaimTokensLocked(queued_) == 0)) break;
    Build* build = ring_.front();
    ring_.pop_front();
    build->in_ring = false;
    Job* job = build->queue.front();
    build->queue.pop_front();
    --queued_;
    if (!job->watchers.empty()) build->watched_queued.erase(job);
    if (!build->queue.empty()) {
      ring_.push_back(build);
      build->ring_pos = std::prev(ring_.end());
      build->in_ring = true;
    }
    StartLocked(job, deferred);
  }
  if (ring_.empty()) {
    LendTokensLocked();
  } else if (lent_ > 0 && reclaim_timer_ == 0 && returns_ == nullptr) {
    // Queued jobs wait for tokens that running jobs have taken, and no watcher will say when
    // they come back: look again soon.
    reclaim_timer_ =
        clock_->Schedule(clock_->Now() + options_.jobserver_reclaim, [this] { OnReclaimTimer(); });
  }
}

void Engine::StartLocked(Job* job, Deferred& deferred) {
  job->started_at = clock_->Now();
  spawn::SpawnRequest request;
  request.id = job->id;
  request.argv = &job->spec.argv;
  request.cwd = &job->spec.cwd;
  request.env = job->spec.env != nullptr ? job->spec.env.get() : &EmptyEnv();
  request.settings = job->spec.settings.get();
  request.build = job->build_name.get();
  OpenTokensLocked(job, request);
  request.targets = std::move(job->spec.targets);  // the spawner's from now on
  if (request.targets != nullptr) {
    job->forwarded[0] = request.targets->fd(OutputStream::kStdout) >= 0;
    job->forwarded[1] = request.targets->fd(OutputStream::kStderr) >= 0;
  }
  absl::StatusOr<std::unique_ptr<spawn::Process>> process = spawner_->Start(request, this);
  if (!process.ok()) {
    request.targets.reset();  // closed before anyone hears the job ended
    job->tokens.reset();
    JobResult result;
    result.outcome = Outcome::kCannotStart;
    result.program_not_found = absl::IsNotFound(process.status());
    result.message = std::string(process.status().message());
    FinishLocked(job, std::move(result), deferred);
    return;
  }
  job->process = *std::move(process);
  job->pid = job->process->pid();
  job->state = JobState::kRunning;
  job->out = std::make_unique<OutputBuffer>(options_.output_head_bytes, options_.output_tail_bytes,
                                            &output_budget_);
  job->err = std::make_unique<OutputBuffer>(options_.output_head_bytes, options_.output_tail_bytes,
                                            &output_budget_);
  ++running_;
  job->build->running.insert(job);
  if (job->tokens != nullptr) {
    job->tokens->Started();
    token_jobs_.push_back(job);
    if (returns_ != nullptr) returns_->Watch(job->id, job->tokens->return_fd());
  }
  if (job->spec.timeout.has_value()) {
    JobId id = job->id;
    job->timeout_timer = clock_->Schedule(job->started_at + *job->spec.timeout,
                                          [this, id] { OnStopTimer(id, /*timeout=*/true); });
  }
  spdlog::debug("job {} started (pid {}, build {}): {}", job->id, job->pid, *job->build_name,
                CommandLine(job->spec.argv));
  if (!job->watchers.empty() || !observers_.empty()) {
    JobInfo info = InfoLocked(*job);
    for (JobWatcher* w : job->watchers) w->OnJobStarted(info);
    for (EngineObserver* o : observers_) o->OnJobStarted(info);
  }
}

void Engine::FinishLocked(Job* job, JobResult result, Deferred& deferred) {
  Build* build = job->build;
  if (job->state == JobState::kRunning) {
    --running_;
    build->running.erase(job);
    ReturnTokensLocked(job);
  }
  job->state = JobState::kFinished;
  job->result = std::move(result);
  job->ended_at = clock_->Now();
  job->process.reset();
  job->spec.targets.reset();  // a queued job's, closed before anyone hears it ended
  job->build = nullptr;
  if (job->timeout_timer != 0) clock_->Cancel(job->timeout_timer);
  if (job->kill_timer != 0) clock_->Cancel(job->kill_timer);
  const Outcome outcome = job->result.outcome;
  // A job stopped on request did not fail on its own: it counts as cancelled.
  if (outcome == Outcome::kSucceeded) {
    ++build->succeeded;
  } else if (outcome == Outcome::kCancelled || job->result.stopped) {
    ++build->cancelled;
  } else {
    ++build->failed;
  }
  spdlog::debug("job {} {} (build {}): {}", job->id, DescribeResult(job->result), *job->build_name,
                CommandLine(job->spec.argv));
  if (!job->watchers.empty() || !observers_.empty()) {
    JobInfo info = InfoLocked(*job);
    for (JobWatcher* w : job->watchers) w->OnJobFinished(info);
    for (EngineObserver* o : observers_) o->OnJobFinished(info);
    job->watchers.clear();
  }
  job->backlogged.clear();
  finished_order_.push_back(job->id);
  if (job->out != nullptr) {
    output_order_.push_back(job->id);
    TrimOutputLocked();
  }

  if (IsFailure(outcome) && job->spec.check && !job->result.stopped &&
      build->state == BuildState::kRunning) {
    StartDyingLocked(build, FailureOfLocked(*job));
    StopRunningLocked(build, options_.grace);
  } else if (build->state == BuildState::kRunning) {
    AdvanceBarrierLocked(build, "", deferred);
    if (!job->spec.group.empty()) AdvanceBarrierLocked(build, job->spec.group, deferred);
  }
  MaybeDeadLocked(build, deferred);
}

absl::Status Engine::CancelJob(JobId id, bool client_gone) {
  mu_.Lock();
  Deferred deferred;
  absl::Status status;
  Job* job = FindJobLocked(id);
  if (job == nullptr) {
    status = absl::NotFoundError(absl::StrCat("no job ", id));
  } else if (job->state == JobState::kQueued) {
    Build* build = job->build;
    // A cancelled job is usually a recent foreground one: search from the back.
    auto pos = std::find(build->queue.rbegin(), build->queue.rend(), job);
    build->queue.erase(std::next(pos).base());
    --queued_;
    if (!job->watchers.empty()) build->watched_queued.erase(job);
    if (build->queue.empty() && build->in_ring) {
      ring_.erase(build->ring_pos);
      build->in_ring = false;
    }
    JobResult result;
    result.outcome = Outcome::kCancelled;
    result.stopped = true;
    result.message = "cancelled by its client before it started";
    FinishLocked(job, std::move(result), deferred);
  } else if (job->state == JobState::kRunning) {
    if (!job->stopped_on_request) {
      job->stopped_on_request = true;
      job->stop_reason = "stopped: cancelled by its client";
    }
    if (client_gone) StopForwardingLocked(job);
    StopJobLocked(job, options_.grace);
  }
  Unlock(deferred);
  return status;
}

absl::Status Engine::Close(absl::string_view build_name) {
  absl::MutexLock lock(&mu_);
  Build* build = FindBuildLocked(build_name);
  if (build == nullptr) return NoSuchBuild(build_name, options_.limits);
  if (!build->queue.empty() || !build->running.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("build ", build_name, " has ", build->queue.size(), " queued and ",
                     build->running.size(), " running jobs; abort it first"));
  }
  if (auto it = std::find(sweeping_.begin(), sweeping_.end(), build); it != sweeping_.end()) {
    // The sweep has not finished its cancelled queue: finish it here, so that no Job is left
    // pointing to the Build, the sweep to no Build, and observers hear of every job before
    // the close.
    SweepBuildLocked(build, build->doomed.size());
    sweeping_.erase(it);
    // The records beyond max_finished_jobs are left to the sweep task, which is scheduled
    // whenever sweeping_ is not empty.
  }
  // What its jobs printed goes with it; their records stay until forgotten.
  for (JobId id : output_order_) {
    Job* job = FindJobLocked(id);
    if (job != nullptr && *job->build_name == build_name && !job->out->dropped()) {
      job->out->Drop("its build was closed");
      job->err->Drop("its build was closed");
    }
  }
  for (EngineObserver* o : observers_) o->OnBuildClosed(build_name);
  spdlog::info("build {} closed", std::string(build_name));
  builds_.erase(builds_.find(build_name));
  return absl::OkStatus();
}

void Engine::OnProcessExit(JobId id, ExitStatus status) {
  mu_.Lock();
  Deferred deferred;
  Job* job = FindJobLocked(id);
  if (job == nullptr || job->state != JobState::kRunning) {
    spdlog::warn("exit of unknown job {} ignored", id);
    Unlock(deferred);
    return;
  }
  JobResult result;
  result.signal = status.signal;
  if (status.signal == 0) result.exit_code = status.exit_code;
  if (job->timed_out) {
    result.outcome = Outcome::kTimedOut;
    result.message = absl::StrCat("timed out after ", absl::FormatDuration(*job->spec.timeout));
  } else if (status.signal != 0) {
    result.outcome = Outcome::kKilled;
  } else {
    result.outcome = status.exit_code == 0 ? Outcome::kSucceeded : Outcome::kFailed;
  }
  result.stopped = job->stopped_on_request;
  if (result.stopped && result.message.empty()) result.message = job->stop_reason;
  FinishLocked(job, std::move(result), deferred);
  DispatchLocked(deferred);
  EvictLocked(kEvictPerRequest);
  Unlock(deferred);
}
}  // namespace distd::engine
