// The dying protocol: how a failure noticed in a worker, or an abort, stops a whole build at
// once, however long its queue. Part of Engine (engine.h); its records are in records.h.
//
// States. A build is running, dying or dead (BuildState), then closed (forgotten: the name
// may start a new build). Only these steps move it, each under mu_:
//   running -> dying   StartDyingLocked, called by FinishLocked when a checked job fails on
//                      its own (not stopped on request), by AbortAsync, by Shutdown, and by
//                      CheckIdleBuilds (idle.cc) for a build no client attends.
//   dying -> dead      MaybeDeadLocked, once Build::running is empty: called after every
//                      finished job (FinishLocked), and by AbortAsync and Shutdown for a
//                      build that had nothing running.
//   dead -> closed     Close (engine.cc); refused while jobs are queued or running.
// A running build may also be closed when it is idle. Nothing moves a build backwards.
//
// What it promises:
//   1. At most `pool_size_` jobs run at once, across every build (DispatchLocked, engine.cc).
//   2. The step running -> dying cancels every queued job of the build (none of them can be
//      spawned afterwards), moves every barrier waiter to the build's death waiters (none of
//      them waits for queued work any more), and records the first failure. Every running job
//      gets SIGTERM, with SIGKILL after the grace period (StopRunningLocked), unless an abort
//      in drain mode lets them finish; a checked failure during such a drain stops nothing and
//      does not replace the first failure. The step's cost does not grow with the queue, only
//      with the queued jobs that have a watcher and with the build's groups (see sweep.cc).
//   3. The bgdied promise: the build becomes dead when its last running job has been reaped,
//      and that step completes every death waiter. So each abort, and each barrier that
//      reports the failure, returns only once no process of the build's process groups runs,
//      and its caller may delete the work tree. (A descendant that left its job's process
//      group with setsid is beyond reach.)
//   4. A dying or dead build keeps its first failure and refuses new jobs, naming it
//      (RefusalLocked), until Close.
//
// The model. tests/model/dying.pml models this protocol step for step; spin checks it in CI,
// and checks that the 2015 variant (tests/model/deadlock_2015.pml) deadlocks. Change the two
// together. Each `inline` of the model is one function here or in the engine's other files:
//   Submit, DispatchLocked, StartLocked,         engine.cc: admission, dispatch and
//   FinishLocked, OnProcessExit, Close             completion
//   StartDyingLocked, StopRunningLocked,         this file
//   MaybeDeadLocked, AbortAsync                    (CheckIdleBuilds is an abort)
//   AddWaiterLocked, AdvanceBarrierLocked,       barriers.cc
//   CompleteWaiterLocked, WaitAsync
// Left out of the model: several builds and the ring, groups, CancelJob, CancelWaiter,
// timeouts and the SIGKILL timer, observers, output, eviction, the queue limit and Shutdown.
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
//     with the rest, or, if they found a free slot and started, stopped) or after (refused
//     with the failure; after Close, the name starts a new build): never half-queued.
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

#include <signal.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "server/engine/engine.h"
#include "server/engine/records.h"
#include "spdlog/spdlog.h"

namespace distd::engine {

absl::Status Engine::RefusalLocked(const Build& build) {
  std::string why = build.failure.has_value() ? build.failure->reason : "aborted";
  if (build.state == BuildState::kDying) {
    return absl::FailedPreconditionError(
        absl::StrCat("build ", *build.name, " is being stopped: ", why));
  }
  return absl::FailedPreconditionError(
      absl::StrCat("build ", *build.name, " failed: ", why, "; close it to use the name again"));
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
  if (build->running.empty()) return;
  for (Job* job : build->running) {
    if (!job->stopped_on_request) {
      job->stopped_on_request = true;
      job->stop_reason = absl::StrCat("stopped: build ", *build->name,
                                      " is being stopped: ", build->failure->reason);
    }
    StopJobLocked(job, grace);
  }
  spawner_->StopBuild(*build->name);
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
// A build a previous distd left enters in one of the protocol's resting states: running with
// nothing to do, or dead with its failure. Nothing of it runs, so there is no step to take.
absl::Status Engine::Restore(const BuildInfo& info) {
  const bool idle = info.state == BuildState::kRunning && info.queued == 0 && info.running == 0;
  const bool dead = info.state == BuildState::kDead && info.failure.has_value() &&
                    info.queued == 0 && info.running == 0;
  if (!idle && !dead) {
    return absl::InvalidArgumentError(
        absl::StrCat("build ", info.name, " cannot be restored: it has jobs queued or running, ",
                     "or is dying, or is dead without a failure"));
  }
  absl::MutexLock lock(&mu_);
  if (FindBuildLocked(info.name) != nullptr) {
    return absl::AlreadyExistsError(absl::StrCat("build ", info.name, " exists"));
  }
  auto build = std::make_unique<Build>();
  build->name = std::make_shared<const std::string>(info.name);
  build->state = info.state;
  build->failure = info.failure;
  if (dead) build->died_at = clock_->Now();
  build->submitted = info.submitted;
  build->succeeded = info.succeeded;
  build->failed = info.failed;
  build->cancelled = info.cancelled;
  builds_.emplace(*build->name, std::move(build));
  return absl::OkStatus();
}

}  // namespace distd::engine
