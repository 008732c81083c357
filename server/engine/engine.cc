// Notes on the dying protocol.
//
// tests/model/dying.pml is a Promela model of this protocol, step for step (each step names
// the function here that it mirrors); spin checks it in CI, and checks that the 2015 variant
// (tests/model/deadlock_2015.pml) deadlocks. Change the two together.
//
// What it promises:
//   1. At most `pool_size_` jobs run at once, across every build.
//   2. A checked failure, or an abort, turns its build from running to dying in one step under
//      mu_: every queued job of the build is cancelled in that step (so none of them can be
//      spawned afterwards), every barrier waiter is moved from its barrier to the build's
//      death waiters (so none of them waits for queued work any more), and every running job
//      gets SIGTERM, with SIGKILL after the grace period (an abort in drain mode lets them
//      finish instead, and so does a checked failure that happens during such a drain).
//      The step's cost does not grow with the queue, only with the queued jobs that have a
//      watcher and with the build's groups (see sweep.cc).
//   3. The build becomes dead when its last running job has been reaped; that step completes
//      every death waiter: each abort and each barrier that reports the failure returns only
//      once no process of the build's process groups runs, so its caller may delete the work
//      tree. (A descendant that left its job's process group with setsid is beyond reach.)
//   4. A dead build keeps its first failure and refuses new jobs, naming it, until Close.
//
// Lazy cancellation: the dying step detaches the queue in O(1); the records are finished
// later by a sweep on the clock, or on the spot by a lookup. Its notes are in sweep.cc.
//
// The races it handles, all serialised by the one mutex, so each is one of two orders:
//   - A failure while a barrier waits behind a long queue (the 2015 cmd/dist deadlock): the
//     failing job's FinishLocked starts the dying step itself; the barrier's waiters are moved
//     to the death list there, and the queue is dropped, not drained.
//   - Concurrent aborts, or an abort racing a failure: the first to take mu_ starts dying;
//     the others find the build dying or dead and add a death waiter (or return at once); a
//     later kill abort also stops the running jobs of an earlier drain. Only the first
//     failure is recorded.
//   - A submit racing an abort: the submit either lands before (its jobs are then cancelled
//     with the rest, or stopped if they had a free slot and started) or after (refused with
//     the failure; after Close, the name starts a new build): never half-queued.
//   - A job's exit racing its SIGKILL timer, timeout or cancel: timers look the job up by id
//     and do nothing unless it still runs; signals go through Process::Signal, which refuses
//     once the job has been reaped, so a recycled process group is never hit.
//   - A lookup, a cancel or a Close racing the sweep: whichever comes first finishes the
//     record, and the other finds it finished (see sweep.cc).
//
// Rejected designs:
//   - Waking barrier waiters with a condition variable and letting each re-check: the waiter
//     would have to wake once per finished job; explicit waiter lists keep the cost per job
//     O(1) and make "release every waiter" one step.
//   - Calling observers outside the lock: events of one job could then be seen out of order.
//     Observers are called under mu_ and must not block; waiter callbacks, which may do
//     anything, run after mu_ is released.
//   - Draining the queue on failure (letting workers pick cancelled jobs and skip them): the
//     barrier would wait for the queue's length, exactly the bug this engine exists to
//     prevent. (The sweep is not that: it never gates a barrier, an abort or a slot.)
//   - Finishing every queued record in the dying step itself (the first design): 43-120 ns a
//     job under mu_ (a cache miss per Job, a message string, the id list), 5-12 ms with
//     100,000 queued, which `distctl abort` and a failing build's `distctl wait` waited for.
//   - A sweep task per build holding its Build*: Close would leave it dangling. One task
//     walks sweeping_ instead.
#include "server/engine/engine.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <iterator>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/exit_codes.h"
#include "common/shell_words.h"
#include "server/engine/records.h"
#include "spdlog/spdlog.h"

namespace distd::engine {
namespace {

// Finished records beyond max_finished_jobs forgotten by a request that finishes jobs:
// bounded, so that a large cancel's records never land on one request (the sweep takes the
// bulk, kSweepChunk per task).
constexpr size_t kEvictPerRequest = 256;

// The message of a job cancelled because its build died: supplied by InfoLocked, not stored.
constexpr char kBuildStoppedMessage[] = "cancelled: the build was stopped before the job started";

const std::vector<std::string>& EmptyEnv() {
  static const auto* env = new std::vector<std::string>();
  return *env;
}

int DefaultPoolSize(int jobs) {
  if (jobs > 0) return jobs;
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  return cpus > 0 ? static_cast<int>(cpus) : 1;
}

std::string CommandLine(const std::vector<std::string>& argv) {
  constexpr size_t kMax = 200;
  std::string line = ShellJoin(argv);
  if (line.size() > kMax) line = absl::StrCat(line.substr(0, kMax), "...");
  return line;
}

// An unknown build: a name that could not be one says why (and is not echoed whole).
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

}  // namespace

Engine::Engine(const EngineOptions& options, std::unique_ptr<Spawner> spawner,
               std::unique_ptr<Clock> clock)
    : options_(options),
      pool_size_(DefaultPoolSize(options.jobs)),
      spawner_(std::move(spawner)),
      clock_(std::move(clock)) {}

Engine::~Engine() {
  Shutdown("the engine is shutting down");
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

absl::Status Engine::RefusalLocked(const Build& build) {
  std::string why = build.failure.has_value() ? build.failure->reason : "aborted";
  if (build.state == BuildState::kDying) {
    return absl::FailedPreconditionError(
        absl::StrCat("build ", *build.name, " is being stopped: ", why));
  }
  return absl::FailedPreconditionError(
      absl::StrCat("build ", *build.name, " failed: ", why, "; close it to use the name again"));
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
      return absl::Status(s.code(), absl::StrCat("command ", i + 1, ": ", s.message()));
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
  } else if (queued_ + specs.size() > limits.max_queued_jobs) {
    ids = absl::ResourceExhaustedError(
        absl::StrCat("the queue is full: ", queued_, " jobs are queued, the limit is ",
                     limits.max_queued_jobs, "; nothing of this request was queued"));
  }
  if (!ids.ok()) {
    Unlock(deferred);
    return ids;
  }
  if (build == nullptr) {
    auto created = std::make_unique<Build>();
    created->name = std::make_shared<const std::string>(build_name);
    build = created.get();
    builds_.emplace(std::string(build_name), std::move(created));
  }
  const absl::Time now = clock_->Now();
  ids->reserve(specs.size());
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
    for (EngineObserver* o : observers_) o->OnJobQueued(InfoLocked(*job));
    ids->push_back(job->id);
    jobs_.emplace(job->id, std::move(job));
  }
  queued_ += ids->size();
  build->submitted += ids->size();
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
  while (running_ < static_cast<uint64_t>(pool_size_) && !ring_.empty()) {
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
}

void Engine::StartLocked(Job* job, Deferred& deferred) {
  job->started_at = clock_->Now();
  SpawnRequest request;
  request.id = job->id;
  request.argv = &job->spec.argv;
  request.cwd = &job->spec.cwd;
  request.env = job->spec.env != nullptr ? job->spec.env.get() : &EmptyEnv();
  request.settings = job->spec.settings.get();
  request.targets = std::move(job->spec.targets);  // the spawner's from now on
  if (request.targets != nullptr) {
    job->forwarded[0] = request.targets->fd(OutputStream::kStdout) >= 0;
    job->forwarded[1] = request.targets->fd(OutputStream::kStderr) >= 0;
  }
  absl::StatusOr<std::unique_ptr<Process>> process = spawner_->Start(request, this);
  if (!process.ok()) {
    request.targets.reset();  // closed before anyone hears the job ended
    JobResult result;
    result.outcome = Outcome::kCannotStart;
    result.exit_code = absl::IsNotFound(process.status()) ? kExitNotFound : kExitCannotRun;
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

Failure Engine::FailureOfLocked(const Job& job) const {
  Failure failure;
  failure.job = InfoLocked(job);
  failure.reason = absl::StrCat(DescribeResult(job.result), ": ", CommandLine(job.spec.argv));
  if (job.out != nullptr) failure.stdout_text = job.out->Text();
  if (job.err != nullptr) failure.stderr_text = job.err->Text();
  return failure;
}

void Engine::StartDyingLocked(Build* build, Failure failure) {
  build->state = BuildState::kDying;
  build->failure = std::move(failure);
  spdlog::info("build {} is dying: {}", *build->name, build->failure->reason);
  if (build->in_ring) {
    ring_.erase(build->ring_pos);
    build->in_ring = false;
  }
  // Cancel the whole queue in this one step, at a cost that does not depend on its length:
  // detach it (a build dies once, so doomed is empty) and count it now; the records are
  // finished by the sweep, or on the spot by whoever looks one up first.
  build->died_at = clock_->Now();
  queued_ -= build->queue.size();
  build->cancelled += build->queue.size();
  build->doomed.swap(build->queue);
  if (!build->watched_queued.empty()) {
    // Their clients wait for them: they are told now, not when the sweep comes by.
    std::vector<JobId> told;
    told.reserve(build->watched_queued.size());
    for (Job* job : build->watched_queued) {
      FinishDoomedLocked(job, build->died_at);
      told.push_back(job->id);
    }
    build->watched_queued.clear();
    std::sort(told.begin(), told.end());  // the set's order is arbitrary
    ReportCancelledLocked(*build->name, told);
  }
  // Release every barrier: from now on its waiters wait only for the running jobs to end.
  auto release = [build](Barrier& barrier) {
    for (Waiter* w : barrier.waiters) build->death_waiters.push_back(w);
    barrier.waiters.clear();
  };
  release(build->barrier);
  for (auto& [name, barrier] : build->groups) release(barrier);
  // The barriers' id lists are left for the sweep to free: they hold an id per background job
  // not yet dropped, at least one per queued job, and would cost as much to free as the queue.
  // Nothing reads them once the build is dying.
  if (!build->doomed.empty() || !build->barrier.unfinished.empty() || !build->groups.empty()) {
    sweeping_.push_back(build);
    ScheduleSweepLocked(options_.sweep_delay);
  }
  if (!observers_.empty()) {
    BuildInfo info = InfoLocked(*build);
    for (EngineObserver* o : observers_) o->OnBuildDying(info);
  }
}

void Engine::StopRunningLocked(Build* build, absl::Duration grace) {
  for (Job* job : build->running) {
    if (!job->stopped_on_request) {
      job->stopped_on_request = true;
      job->stop_reason = absl::StrCat("stopped: build ", *build->name,
                                      " is being stopped: ", build->failure->reason);
    }
    StopJobLocked(job, grace);
  }
}

void Engine::StopJobLocked(Job* job, absl::Duration grace) {
  if (job->stopping) return;
  job->stopping = true;
  job->process->Signal(SIGTERM);
  JobId id = job->id;
  job->kill_timer =
      clock_->Schedule(clock_->Now() + grace, [this, id] { OnStopTimer(id, /*timeout=*/false); });
}

void Engine::OnStopTimer(JobId id, bool timeout) {
  absl::MutexLock lock(&mu_);
  Job* job = FindJobLocked(id);
  if (job == nullptr || job->state != JobState::kRunning) return;  // it ended meanwhile
  if (timeout) {
    job->timeout_timer = 0;
    job->timed_out = true;
    StopJobLocked(job, options_.grace);
  } else {
    job->kill_timer = 0;
    job->process->Signal(SIGKILL);
    // A target that nobody reads (a pipeline's reader stopped with Ctrl-Z, say) would keep
    // the killed job's end from ever being reported: an abort, a timeout and the daemon's
    // shutdown would then wait forever. Whatever it had not taken by now is dropped.
    StopForwardingLocked(job);
  }
}

void Engine::StopForwardingLocked(Job* job) {
  if (job->forwarded[0] || job->forwarded[1]) job->process->StopForwarding();
}

void Engine::MaybeDeadLocked(Build* build, Deferred& deferred) {
  if (build->state != BuildState::kDying || !build->running.empty()) return;
  build->state = BuildState::kDead;
  spdlog::info("build {} failed: {}", *build->name, build->failure->reason);
  BuildInfo info = InfoLocked(*build);
  for (EngineObserver* o : observers_) o->OnBuildDead(info);
  std::vector<Waiter*> waiters;
  waiters.swap(build->death_waiters);
  for (Waiter* w : waiters) CompleteWaiterLocked(w, info, deferred);
}

void Engine::AdvanceBarrierLocked(Build* build, const std::string& group, Deferred& deferred) {
  Barrier* barrier = &build->barrier;
  if (!group.empty()) {
    auto it = build->groups.find(group);
    if (it == build->groups.end()) return;
    barrier = &it->second;
  }
  while (!barrier->unfinished.empty()) {
    Job* front = FindJobLocked(barrier->unfinished.front());
    if (front != nullptr && front->state != JobState::kFinished) break;
    barrier->unfinished.pop_front();
  }
  while (!barrier->waiters.empty() &&
         (barrier->unfinished.empty() ||
          barrier->unfinished.front() > barrier->waiters.front()->target)) {
    Waiter* w = barrier->waiters.front();
    barrier->waiters.pop_front();
    CompleteWaiterLocked(w, InfoLocked(*build), deferred);
  }
  if (!group.empty() && barrier->unfinished.empty() && barrier->waiters.empty()) {
    build->groups.erase(group);
  }
}

WaiterId Engine::AddWaiterLocked(Build* build, bool barrier, std::string group, BuildCallback done,
                                 Deferred& deferred) {
  auto owned = std::make_unique<Waiter>();
  Waiter* w = owned.get();
  w->id = ++last_waiter_id_;
  w->build = build;
  w->barrier = barrier;
  w->group = std::move(group);
  w->target = last_job_id_;
  w->done = std::move(done);
  const bool blocking = !w->done;
  const WaiterId id = w->id;
  waiters_.emplace(id, std::move(owned));
  if (build->state == BuildState::kDead) {
    CompleteWaiterLocked(w, InfoLocked(*build), deferred);
  } else if (!barrier || build->state == BuildState::kDying) {
    build->death_waiters.push_back(w);
  } else if (!w->group.empty() && !build->groups.contains(w->group)) {
    CompleteWaiterLocked(w, InfoLocked(*build), deferred);  // nothing of that group is pending
  } else {
    Barrier& b = w->group.empty() ? build->barrier : build->groups[w->group];
    b.waiters.push_back(w);
    const std::string scope = w->group;  // `w` may be answered and freed in there
    AdvanceBarrierLocked(build, scope, deferred);
  }
  if (blocking) return id;
  return waiters_.contains(id) ? id : 0;
}

void Engine::CompleteWaiterLocked(Waiter* w, absl::StatusOr<BuildInfo> result, Deferred& deferred) {
  w->completed = true;
  if (!w->done) {
    w->result = std::move(result);  // a blocking waiter: AwaitWaiterLocked takes it
    return;
  }
  deferred.push_back(
      [done = std::move(w->done), r = std::move(result)]() mutable { done(std::move(r)); });
  waiters_.erase(w->id);
}

absl::StatusOr<BuildInfo> Engine::AwaitWaiterLocked(WaiterId id) {
  Waiter* w = waiters_.at(id).get();
  mu_.Await(absl::Condition(
      +[](Waiter* waiter) { return waiter->completed; }, w));
  absl::StatusOr<BuildInfo> result = *std::move(w->result);
  waiters_.erase(id);
  return result;
}

WaiterId Engine::WaitAsync(absl::string_view build_name, absl::string_view group,
                           BuildCallback done) {
  mu_.Lock();
  Deferred deferred;
  WaiterId id = 0;
  if (Build* build = FindBuildLocked(build_name); build != nullptr) {
    id = AddWaiterLocked(build, /*barrier=*/true, std::string(group), std::move(done), deferred);
  } else {
    deferred.push_back([done = std::move(done), name = std::string(build_name),
                        limits = options_.limits]() mutable { done(NoSuchBuild(name, limits)); });
  }
  Unlock(deferred);
  return id;
}

absl::StatusOr<BuildInfo> Engine::Wait(absl::string_view build_name, absl::string_view group) {
  absl::MutexLock lock(&mu_);
  Build* build = FindBuildLocked(build_name);
  if (build == nullptr) return NoSuchBuild(build_name, options_.limits);
  Deferred none;  // a blocking waiter defers nothing
  WaiterId id = AddWaiterLocked(build, /*barrier=*/true, std::string(group), nullptr, none);
  return AwaitWaiterLocked(id);
}

WaiterId Engine::AbortAsync(absl::string_view build_name, const AbortOptions& options,
                            BuildCallback done) {
  mu_.Lock();
  Deferred deferred;
  WaiterId id = 0;
  Build* build = FindBuildLocked(build_name);
  if (build == nullptr) {
    deferred.push_back([done = std::move(done), name = std::string(build_name),
                        limits = options_.limits]() mutable { done(NoSuchBuild(name, limits)); });
    Unlock(deferred);
    return 0;
  }
  const absl::Duration grace = options.grace.value_or(options_.grace);
  if (build->state == BuildState::kRunning) {
    Failure failure;
    failure.reason = options.reason.empty() ? "aborted" : absl::StrCat("aborted: ", options.reason);
    StartDyingLocked(build, std::move(failure));
  }
  if (build->state == BuildState::kDying && options.mode == AbortMode::kKill) {
    StopRunningLocked(build, grace);  // also escalates an earlier drain
  }
  id = AddWaiterLocked(build, /*barrier=*/false, "", std::move(done), deferred);
  MaybeDeadLocked(build, deferred);
  id = waiters_.contains(id) ? id : 0;
  EvictLocked(kEvictPerRequest);
  Unlock(deferred);
  return id;
}

absl::StatusOr<BuildInfo> Engine::Abort(absl::string_view build_name, const AbortOptions& options) {
  absl::Notification done;
  absl::StatusOr<BuildInfo> result;
  AbortAsync(build_name, options, [&](absl::StatusOr<BuildInfo> r) {
    result = std::move(r);
    done.Notify();
  });
  done.WaitForNotification();
  return result;
}

void Engine::CancelWaiter(WaiterId id) {
  mu_.Lock();
  Deferred deferred;
  auto it = waiters_.find(id);
  if (it != waiters_.end() && !it->second->completed && it->second->done) {
    Waiter* w = it->second.get();
    Build* build = w->build;
    auto drop = [w](auto& list) {
      auto pos = std::find(list.begin(), list.end(), w);
      if (pos == list.end()) return false;
      list.erase(pos);
      return true;
    };
    if (!drop(build->death_waiters)) {
      if (w->group.empty()) {
        drop(build->barrier.waiters);
      } else if (auto g = build->groups.find(w->group); g != build->groups.end()) {
        drop(g->second.waiters);
      }
    }
    CompleteWaiterLocked(w, absl::CancelledError("the wait was cancelled"), deferred);
  }
  Unlock(deferred);
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

void Engine::OnProcessOutput(JobId id, OutputStream stream, absl::string_view data) {
  absl::MutexLock lock(&mu_);
  Job* job = FindJobLocked(id);
  if (job == nullptr || job->state != JobState::kRunning) return;
  const bool is_stdout = stream == OutputStream::kStdout;
  (is_stdout ? job->out : job->err)->Append(data);
  if (output_budget_.used > options_.max_output_bytes) TrimOutputLocked();
  const bool forwarded = job->forwarded[is_stdout ? 0 : 1];
  for (JobWatcher* w : job->watchers) {
    if (forwarded && w == job->owner) continue;  // its client has it already
    w->OnJobOutput(id, stream, data);
    if (w->Backlogged() &&
        std::find(job->backlogged.begin(), job->backlogged.end(), w) == job->backlogged.end()) {
      if (job->backlogged.empty()) job->process->SetOutputPaused(true);
      job->backlogged.push_back(w);
    }
  }
  for (EngineObserver* o : observers_) o->OnJobOutput(id, stream, data);
}

void Engine::ReleaseOutputLocked(Job* job, JobWatcher* watcher) {
  auto& b = job->backlogged;
  auto it = std::find(b.begin(), b.end(), watcher);
  if (it == b.end()) return;
  b.erase(it);
  if (b.empty() && job->state == JobState::kRunning) job->process->SetOutputPaused(false);
}

void Engine::ResumeOutput(JobId id, JobWatcher* watcher) {
  absl::MutexLock lock(&mu_);
  if (Job* job = FindJobLocked(id); job != nullptr) ReleaseOutputLocked(job, watcher);
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
  if (job->timed_out) {
    result.outcome = Outcome::kTimedOut;
    result.exit_code = kExitTimedOut;
    result.message = absl::StrCat("timed out after ", absl::FormatDuration(*job->spec.timeout));
  } else if (status.signal != 0) {
    result.outcome = Outcome::kKilled;
    result.exit_code = kExitSignalBase + status.signal;
  } else {
    result.outcome = status.exit_code == 0 ? Outcome::kSucceeded : Outcome::kFailed;
    result.exit_code = status.exit_code;
  }
  result.stopped = job->stopped_on_request;
  if (result.stopped && result.message.empty()) result.message = job->stop_reason;
  FinishLocked(job, std::move(result), deferred);
  DispatchLocked(deferred);
  EvictLocked(kEvictPerRequest);
  Unlock(deferred);
}

absl::StatusOr<JobOutput> Engine::WatchJob(JobId id, JobWatcher* watcher) {
  absl::MutexLock lock(&mu_);
  Job* job = FindJobLocked(id);
  if (job == nullptr) return absl::NotFoundError(absl::StrCat("no job ", id));
  if (job->state != JobState::kFinished) job->watchers.push_back(watcher);
  if (job->state == JobState::kQueued) job->build->watched_queued.insert(job);
  return OutputLocked(*job);
}

void Engine::Unwatch(JobId id, JobWatcher* watcher) {
  absl::MutexLock lock(&mu_);
  if (Job* job = FindJobLocked(id); job != nullptr) {
    auto& w = job->watchers;
    w.erase(std::remove(w.begin(), w.end(), watcher), w.end());
    if (job->state == JobState::kQueued && w.empty()) job->build->watched_queued.erase(job);
    ReleaseOutputLocked(job, watcher);
    if (watcher == job->owner) {
      job->owner = nullptr;
      job->spec.targets.reset();  // if still queued
      if (job->state == JobState::kRunning) StopForwardingLocked(job);
    }
  }
}

absl::StatusOr<JobInfo> Engine::GetJob(JobId id) {
  absl::MutexLock lock(&mu_);
  Job* job = FindJobLocked(id);
  if (job == nullptr) return absl::NotFoundError(absl::StrCat("no job ", id));
  return InfoLocked(*job);
}

absl::StatusOr<JobOutput> Engine::GetJobOutput(JobId id) {
  absl::MutexLock lock(&mu_);
  Job* job = FindJobLocked(id);
  if (job == nullptr) return absl::NotFoundError(absl::StrCat("no job ", id));
  return OutputLocked(*job);
}

absl::StatusOr<BuildInfo> Engine::GetBuild(absl::string_view name) {
  absl::MutexLock lock(&mu_);
  Build* build = FindBuildLocked(name);
  if (build == nullptr) return NoSuchBuild(name, options_.limits);
  return InfoLocked(*build);
}

std::vector<BuildInfo> Engine::ListBuilds() {
  absl::MutexLock lock(&mu_);
  return BuildsLocked("");
}

std::vector<JobInfo> Engine::RunningJobs(absl::string_view build_name) {
  absl::MutexLock lock(&mu_);
  return RunningLocked(build_name);
}

absl::StatusOr<Snapshot> Engine::TakeSnapshot(absl::string_view build_name) {
  absl::MutexLock lock(&mu_);
  if (!build_name.empty() && FindBuildLocked(build_name) == nullptr) {
    return NoSuchBuild(build_name, options_.limits);
  }
  return Snapshot{PoolInfo{pool_size_, running_, queued_}, BuildsLocked(build_name),
                  RunningLocked(build_name)};
}

std::vector<BuildInfo> Engine::BuildsLocked(absl::string_view only) const {
  std::vector<BuildInfo> out;
  for (const auto& [name, build] : builds_) {
    if (only.empty() || name == only) out.push_back(InfoLocked(*build));
  }
  std::sort(out.begin(), out.end(),
            [](const BuildInfo& a, const BuildInfo& b) { return a.name < b.name; });
  return out;
}

std::vector<JobInfo> Engine::RunningLocked(absl::string_view only) const {
  std::vector<JobInfo> out;
  for (const auto& [name, build] : builds_) {
    if (!only.empty() && name != only) continue;
    for (const Job* job : build->running) out.push_back(InfoLocked(*job));
  }
  std::sort(out.begin(), out.end(), [](const JobInfo& a, const JobInfo& b) { return a.id < b.id; });
  return out;
}

PoolInfo Engine::Pool() {
  absl::MutexLock lock(&mu_);
  return PoolInfo{pool_size_, running_, queued_};
}

void Engine::AddObserver(EngineObserver* observer) {
  absl::MutexLock lock(&mu_);
  observers_.push_back(observer);
}

void Engine::RemoveObserver(EngineObserver* observer) {
  absl::MutexLock lock(&mu_);
  observers_.erase(std::remove(observers_.begin(), observers_.end(), observer), observers_.end());
}

void Engine::Shutdown(absl::string_view reason) {
  mu_.Lock();
  Deferred deferred;
  shutting_down_ = true;
  for (auto& [name, build] : builds_) {
    if (build->state == BuildState::kRunning) {
      Failure failure;
      failure.reason = absl::StrCat("aborted: ", reason);
      StartDyingLocked(build.get(), std::move(failure));
    }
    if (build->state == BuildState::kDying) StopRunningLocked(build.get(), options_.grace);
    MaybeDeadLocked(build.get(), deferred);
  }
  Unlock(deferred);
  // Finish every cancelled record now, rather than leave it to a sweep that the clock may drop
  // when the engine goes; a chunk per hold of mu_, as the sweep does.
  for (bool more = true; more;) {
    absl::MutexLock lock(&mu_);
    SweepLocked(kSweepChunk);
    more = !sweeping_.empty();
  }
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](uint64_t* running) { return *running == 0; }, &running_));
}

JobInfo Engine::InfoLocked(const Job& job) const {
  JobInfo info;
  info.id = job.id;
  info.build = *job.build_name;
  info.group = job.spec.group;
  info.argv = job.spec.argv;
  info.cwd = job.spec.cwd;
  info.check = job.spec.check;
  info.caller = *job.caller;
  info.state = job.state;
  info.result = job.result;
  if (job.result.outcome == Outcome::kCancelled && job.result.message.empty()) {
    info.result.message = kBuildStoppedMessage;
  }
  info.pid = job.pid;
  info.queued_at = job.queued_at;
  info.started_at = job.started_at;
  info.ended_at = job.ended_at;
  return info;
}

BuildInfo Engine::InfoLocked(const Build& build) const {
  BuildInfo info;
  info.name = *build.name;
  info.state = build.state;
  info.queued = build.queue.size();
  info.running = build.running.size();
  info.succeeded = build.succeeded;
  info.failed = build.failed;
  info.cancelled = build.cancelled;
  info.submitted = build.submitted;
  info.failure = build.failure;
  return info;
}

JobOutput Engine::OutputLocked(const Job& job) const {
  JobOutput out;
  out.job = InfoLocked(job);
  if (job.out != nullptr) {
    out.stdout_text = job.out->Text();
    out.stdout_bytes = job.out->total();
  }
  if (job.err != nullptr) {
    out.stderr_text = job.err->Text();
    out.stderr_bytes = job.err->total();
  }
  return out;
}

}  // namespace distd::engine
