// The engine: one bounded pool of workers shared by every build on the host, builds as
// fail-fast scopes, groups as barriers, and the dying protocol that lets a failure noticed in
// a worker stop a whole build at once, however long its queue. It knows nothing of gRPC;
// the service translates requests into these calls.
//
// Threading: every public method may be called from any thread. Methods ending in Async
// never block; their callback runs exactly once, on the calling thread before the method
// returns if the answer is already known, else on the thread that completed the condition
// (a spawner or clock thread), never with the engine's lock held. The blocking variants are
// for tests and simple callers.
//
// Lifetime: the engine owns its spawner and clock. Destroying it aborts every build, waits
// until no job runs, then stops the spawner and the clock.
#ifndef DISTD_SERVER_ENGINE_ENGINE_H_
#define DISTD_SERVER_ENGINE_ENGINE_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "server/engine/observer.h"
#include "server/engine/output_buffer.h"
#include "server/engine/types.h"
#include "server/engine/validate.h"
#include "server/spawn/clock.h"
#include "server/spawn/spawner.h"

namespace distd::engine {

struct EngineOptions {
  int jobs = 0;  // size of the pool; <= 0 means the number of CPUs
  // Between SIGTERM and SIGKILL when a job is stopped (abort, cancel, timeout).
  absl::Duration grace = absl::Seconds(5);
  Limits limits;
  // What is kept of each stream of each job (see OutputBuffer).
  size_t output_head_bytes = 256 * 1024;
  size_t output_tail_bytes = 256 * 1024;
  // Records of finished jobs kept for logs and status; the oldest are forgotten first.
  size_t max_finished_jobs = 10'000;
  // All that is kept of every job's output together (OutputBuffer::held): beyond it the
  // output of the oldest finished jobs is dropped first (their logs then say so). Running
  // jobs keep theirs.
  uint64_t max_output_bytes = uint64_t{256} << 20;
  // How long after a build dies the sweep of its cancelled queue begins (see the notes in
  // sweep.cc). The daemon waits a little, so that the sweep's work does not compete for the
  // CPU with the dying step's own latency: stopping and reaping the running jobs, answering
  // the aborts and barriers. Nothing but the time of OnJobsCancelled tells the difference.
  absl::Duration sweep_delay = absl::ZeroDuration();
  // Job ids go on after this one: the highest id a previous distd gave (see the journal), so
  // that an id names one job for as long as the journal remembers it.
  JobId last_job_id = 0;
  // A build with jobs queued or running that no client attends for this long is aborted
  // (see idle.cc). Zero: never.
  absl::Duration idle_abort = absl::ZeroDuration();
  // The jobserver each job is offered (spawn/jobserver.h, engine/jobserver.cc): its style,
  // or kOff for none.
  spawn::JobserverStyle jobserver = spawn::JobserverStyle::kOff;
  // kFifo: a job's fifo is this followed by its id; in a directory only distd's user may
  // use.
  std::string jobserver_fifo_prefix;
  // While queued jobs wait for slots that running jobs hold as tokens, how often the engine
  // looks for tokens that came back: for a fifo, the only way it learns of them.
  absl::Duration jobserver_reclaim = absl::Milliseconds(2);
  // kPipe: a thread of the engine's own (spawn::ReturnWatcher) hears at once when a job
  // writes a token back, and calls OnTokensReturned. Without it, only a test's call does.
  bool watch_returns = false;
  // Asked before each submission is accepted, without the engine's lock: a status other than
  // OK refuses it with that status (distd's journal cannot be written, say). Empty: always.
  std::function<absl::Status()> admission;
};

enum class AbortMode {
  kKill,   // SIGTERM to every running job's process group, SIGKILL after the grace period
  kDrain,  // let running jobs finish
};

struct AbortOptions {
  std::string reason;
  AbortMode mode = AbortMode::kKill;
  std::optional<absl::Duration> grace;  // overrides EngineOptions::grace
};

struct JobOutput {
  JobInfo job;
  std::string stdout_text;
  std::string stderr_text;
  uint64_t stdout_bytes = 0;  // written in all, kept or not
  uint64_t stderr_bytes = 0;
  bool dropped = false;  // the texts only say that what was kept is gone
};

struct PoolInfo {
  int jobs = 0;
  uint64_t running = 0;
  uint64_t queued = 0;
  // Slots lent to running jobs as jobserver tokens: running + lent <= jobs.
  uint64_t lent = 0;
};

// The pool, builds and running jobs as of one moment.
struct Snapshot {
  PoolInfo pool;
  std::vector<BuildInfo> builds;
  std::vector<JobInfo> running;
};

// The answer of a barrier or an abort: the build as it was when the call returned. A barrier
// succeeded when `failure` is empty; otherwise the build is dead and `failure` is its first.
using BuildCallback = absl::AnyInvocable<void(absl::StatusOr<BuildInfo>)>;

using WaiterId = uint64_t;

class Engine final : public spawn::ProcessEvents {
 public:
  Engine(const EngineOptions& options, std::unique_ptr<spawn::Spawner> spawner,
         std::unique_ptr<spawn::Clock> clock);
  ~Engine() override;
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Queues `specs` in `build` (created on first use), all or nothing: either every job is
  // queued or none is and the status says why (bad input: InvalidArgument; the build is
  // dying or failed: FailedPrecondition naming its first failure; the queue is full:
  // ResourceExhausted; shutting down: Unavailable). `watcher`, if given, is attached to each
  // job before anything can happen to it and must outlive the jobs or be detached.
  absl::StatusOr<std::vector<JobId>> Submit(absl::string_view build, std::vector<JobSpec> specs,
                                            const Caller& caller, JobWatcher* watcher = nullptr);

  // The barrier: completes once every background job of `build` (of `group` in it, if not
  // empty) submitted before this call has finished; or, if the build dies, once no job of it runs,
  // with its first failure. It never waits for queued work of a dying build. NotFound for an
  // unknown build. Returns an id for CancelWaiter, or 0 if it completed at once.
  WaiterId WaitAsync(absl::string_view build, absl::string_view group, BuildCallback done);
  absl::StatusOr<BuildInfo> Wait(absl::string_view build, absl::string_view group);

  // Makes the build dying (if it is running) and completes once it is dead: no job of it runs.
  // Idempotent: concurrent and repeated aborts all complete then. A kill abort arriving while
  // a drain abort is in progress escalates it. NotFound for an unknown build.
  WaiterId AbortAsync(absl::string_view build, const AbortOptions& options, BuildCallback done);
  absl::StatusOr<BuildInfo> Abort(absl::string_view build, const AbortOptions& options);

  // Completes a pending WaitAsync/AbortAsync callback with Cancelled (the abort itself goes
  // on). No effect if it already completed.
  void CancelWaiter(WaiterId id);

  // Stops one job on behalf of its client: a queued job is cancelled, a running one gets
  // SIGTERM, then SIGKILL after the grace period. A job stopped this way never fails its
  // build. OK if it had already finished; NotFound if unknown. `client_gone`: its client
  // went away (rather than pressing Ctrl-C and reading on), so nothing more is written to
  // the job's targets (see JobSpec::targets); what it prints is still kept.
  absl::Status CancelJob(JobId id, bool client_gone = false);

  // Forgets a dead build, or an idle running one, so that its name can be used afresh.
  // FailedPrecondition while it has jobs queued or running; NotFound if unknown. The records
  // of its cancelled queue that the sweep has not finished yet are finished first (see the
  // notes in sweep.cc), so this one call may cost O(that queue).
  absl::Status Close(absl::string_view build);

  // Attaches `watcher` to a job and returns what it has printed so far, in one step, so that
  // nothing is missed or seen twice. A finished job is returned without attaching.
  absl::StatusOr<JobOutput> WatchJob(JobId id, JobWatcher* watcher);
  // Detaches a watcher; afterwards it is never called again for that job.
  void Unwatch(JobId id, JobWatcher* watcher);
  // A watcher that reported Backlogged() has caught up: reading the job's output resumes
  // once no watcher holds it back.
  void ResumeOutput(JobId id, JobWatcher* watcher);

  absl::StatusOr<JobInfo> GetJob(JobId id);
  absl::StatusOr<JobOutput> GetJobOutput(JobId id);
  absl::StatusOr<BuildInfo> GetBuild(absl::string_view build);
  // Every build; without `with_output`, their failures leave out what the job printed (for
  // a view that needs only the counts, as the metrics do).
  std::vector<BuildInfo> ListBuilds(bool with_output = true);
  // Running jobs, of one build or (empty name) of all.
  std::vector<JobInfo> RunningJobs(absl::string_view build);
  PoolInfo Pool();
  // Pool, builds and running jobs under one lock, so that they add up: of every build, or
  // (name given) of that one, NotFound if unknown. `with_output` as for ListBuilds.
  absl::StatusOr<Snapshot> TakeSnapshot(absl::string_view build, bool with_output = true);

  // A build that a previous distd left, as its journal has it, known again by its name: a
  // running build with no job queued or running (it may take more), or a dead one with its
  // failure (a barrier on it answers with that failure). Called before the first submission;
  // observers are not told (they were told then). AlreadyExists if the name is taken;
  // InvalidArgument for a build with jobs queued or running, or dying, or dead without a
  // failure.
  absl::Status Restore(const BuildInfo& build);

  // The engine's clock, for observers that note the time of a change.
  spawn::Clock* clock() const { return clock_.get(); }

  // Observers must outlive the engine or be removed first. See observer.h for their duties.
  void AddObserver(EngineObserver* observer);
  void RemoveObserver(EngineObserver* observer);

  // Refuses new jobs, aborts every build (kill) and returns once no job runs and the record
  // of every cancelled job is finished (and reported to the observers).
  void Shutdown(absl::string_view reason);

  // A job has written jobserver tokens back (kPipe): each goes to a queued job, else to a
  // running job that may want it. Called by the ReturnWatcher (or a test playing it).
  void OnTokensReturned(JobId id) ABSL_LOCKS_EXCLUDED(mu_);

  // ProcessEvents, called by the spawner.
  void OnProcessOutput(JobId id, OutputStream stream, absl::string_view data) override;
  void OnProcessExit(JobId id, ExitStatus status) override;

 private:
  struct Build;  // records.h
  struct Job;
  struct Waiter;

  // Doomed records finished, and finished records forgotten, per hold of mu_ by the sweep:
  // short enough for a request queued behind it, long enough that 100,000 records take a
  // few dozen tasks.
  static constexpr size_t kSweepChunk = 4096;
  // Finished records beyond max_finished_jobs forgotten by a request that finishes jobs:
  // bounded, so that a large cancel's records never land on one request (the sweep takes the
  // bulk, kSweepChunk per task).
  static constexpr size_t kEvictPerRequest = 256;
  // Work to do once the lock is released: waiter callbacks.
  using Deferred = std::vector<absl::AnyInvocable<void()>>;

  // The unfinished jobs of a barrier scope, in submission order, and its waiters, in the
  // order of their targets. Finished ids are dropped from the front lazily.
  struct Barrier {
    std::deque<JobId> unfinished;
    std::deque<Waiter*> waiters;
  };

  // engine.cc: admission, dispatch, completion.
  Build* FindBuildLocked(absl::string_view name) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Builds with work that a submission of `principal` opened.
  size_t BuildsOpenedByLocked(absl::string_view principal) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // idle.cc: abandoned builds.
  absl::Duration IdleCheckInterval() const;
  void ScheduleIdleCheck();
  void CheckIdleBuilds() ABSL_LOCKS_EXCLUDED(mu_);
  bool AttendedLocked(const Build& build) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The one door to a job for every lookup: a doomed job is finished on the spot (sweep.cc).
  Job* FindJobLocked(JobId id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DispatchLocked(Deferred& deferred) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StartLocked(Job* job, Deferred& deferred) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FinishLocked(Job* job, JobResult result, Deferred& deferred)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Unlock(Deferred& deferred) ABSL_UNLOCK_FUNCTION(mu_);

  // jobserver.cc: slots lent to running jobs as tokens.
  void OpenTokensLocked(Job* job, spawn::SpawnRequest& request) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Reads back up to `want` tokens that jobs have not taken (or have returned); how many.
  uint64_t ReclaimTokensLocked(uint64_t want) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Lends the spare slots to the running jobs that have taken every token they were given,
  // fewest held first (`preferred` first among equals), one each in turn.
  void LendTokensLocked(Job* preferred = nullptr) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Puts one token in the job's pipe; false if it would not go in.
  bool GiveTokenLocked(Job* job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Counts a job's written-back tokens as the pool's again (no more than it took).
  uint64_t CreditReturnsLocked(Job* job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Every token a job was lent is the pool's again: the job has ended.
  void ReturnTokensLocked(Job* job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnReclaimTimer() ABSL_LOCKS_EXCLUDED(mu_);

  // dying.cc: the dying protocol, and stopping jobs.
  absl::Status RefusalLocked(const Build& build) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Failure FailureOfLocked(const Job& job) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StartDyingLocked(Build* build, Failure failure) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StopRunningLocked(Build* build, absl::Duration grace) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MaybeDeadLocked(Build* build, Deferred& deferred) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StopJobLocked(Job* job, absl::Duration grace) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StopForwardingLocked(Job* job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnStopTimer(JobId id, bool timeout);

  // barriers.cc: barriers and waiters.
  void AdvanceBarrierLocked(Build* build, const std::string& group, Deferred& deferred)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  WaiterId AddWaiterLocked(Build* build, bool barrier, std::string group, BuildCallback done,
                           Deferred& deferred) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CompleteWaiterLocked(Waiter* waiter, absl::StatusOr<BuildInfo> result, Deferred& deferred)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<BuildInfo> AwaitWaiterLocked(WaiterId id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // sweep.cc: the lazy end of a cancelled queue; a doomed job is one whose build died while
  // it was queued and whose record has not been finished yet. And forgetting old records.
  void FinishDoomedLocked(Job* job, absl::Time ended_at) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ReportCancelledLocked(absl::string_view build, absl::Span<const JobId> ids)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Finishes (and files in finished_order_) up to `max_jobs` doomed jobs of `build`, oldest
  // first; returns how many are left.
  size_t SweepBuildLocked(Build* build, size_t max_jobs) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The same across the builds in sweeping_, in the order they died.
  void SweepLocked(size_t max_jobs) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ScheduleSweepLocked(absl::Duration delay) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnSweepTimer();
  // Forgets the oldest finished records beyond max_finished_jobs, at most max_jobs of them.
  void EvictLocked(size_t max_jobs) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool OverRememberedLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Drops the output of the oldest finished jobs while the budget is exceeded.
  void TrimOutputLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // views.cc: output to watchers, read-only views.
  void ReleaseOutputLocked(Job* job, JobWatcher* watcher) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  JobInfo InfoLocked(const Job& job) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  BuildInfo InfoLocked(const Build& build, bool with_output = true) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  JobOutput OutputLocked(const Job& job) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::vector<BuildInfo> BuildsLocked(absl::string_view only, bool with_output = true) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::vector<JobInfo> RunningLocked(absl::string_view only) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const EngineOptions options_;
  const int pool_size_;
  std::unique_ptr<spawn::Spawner> spawner_;
  std::unique_ptr<spawn::Clock> clock_;

  absl::Mutex mu_;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  JobId last_job_id_ ABSL_GUARDED_BY(mu_) = 0;
  WaiterId last_waiter_id_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t running_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t queued_ ABSL_GUARDED_BY(mu_) = 0;
  // Slots lent as tokens (jobserver.cc): running_ + lent_ never exceeds the pool.
  uint64_t lent_ ABSL_GUARDED_BY(mu_) = 0;
  // Running jobs with a jobserver.
  std::vector<Job*> token_jobs_ ABSL_GUARDED_BY(mu_);
  spawn::TimerId reclaim_timer_ ABSL_GUARDED_BY(mu_) = 0;
  // How long until the next look for a job that took an offer (jobserver.cc).
  static constexpr absl::Duration kLongestLook = absl::Milliseconds(128);
  absl::Duration lend_look_ ABSL_GUARDED_BY(mu_) = absl::Milliseconds(2);
  std::unique_ptr<spawn::ReturnWatcher> returns_;  // with watch_returns; set once, at start
  // Keyed by a view of the build's own name (Build::name, shared with its jobs): the name is
  // stored once.
  absl::flat_hash_map<absl::string_view, std::unique_ptr<Build>> builds_ ABSL_GUARDED_BY(mu_);
  // What every job's OutputBuffers hold (declared before jobs_: their buffers give their bytes back
  // as they go).
  OutputBudget output_budget_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<JobId, std::unique_ptr<Job>> jobs_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<WaiterId, std::unique_ptr<Waiter>> waiters_ ABSL_GUARDED_BY(mu_);
  // Builds with queued jobs, served round robin; a build that gains work goes to the front.
  std::list<Build*> ring_ ABSL_GUARDED_BY(mu_);
  // Finished jobs, oldest first, for forgetting beyond max_finished_jobs. A doomed job enters
  // it only when the sweep (or Close) passes it, so a Build's doomed list never holds a
  // forgotten job.
  std::deque<JobId> finished_order_ ABSL_GUARDED_BY(mu_);
  // Finished jobs that ran, in the order they finished: those whose output may still be
  // kept, a subsequence of finished_order_ (doomed jobs never ran).
  std::deque<JobId> output_order_ ABSL_GUARDED_BY(mu_);
  // Builds with doomed jobs or dead barriers to free, in the order they died, for the sweep;
  // Close takes a build out.
  std::deque<Build*> sweeping_ ABSL_GUARDED_BY(mu_);
  bool sweep_scheduled_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<EngineObserver*> observers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace distd::engine

#endif  // DISTD_SERVER_ENGINE_ENGINE_H_
