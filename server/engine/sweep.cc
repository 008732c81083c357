// Lazy cancellation: the sweep that finishes a dead build's cancelled records, and the
// eviction of finished records beyond max_finished_jobs. Part of Engine (engine.h); the
// dying protocol itself, and the promises it keeps, are in dying.cc.
//
// The dying step detaches the queue whole (a deque swap into
// Build::doomed), records the dying time and counts the jobs as cancelled (queued_,
// Build::cancelled), so that status, barriers and the pool are right at once and no doomed
// job can ever be spawned: the ring no longer holds the build and nothing reads doomed to
// start a job. (The barriers' id lists, as long as the queue, are left for the sweep to free.)
// Jobs with a watcher (a foreground `distctl run` waiting for a slot, `logs --follow`) are
// finished in that step, since a client waits on them: each build keeps the set of its queued
// jobs with watchers for this. The other records are finished later by the sweep, a task on
// the clock that finishes kSweepChunk of them per hold of mu_, reports each chunk in one
// OnJobsCancelled, forgets as many records beyond max_finished_jobs, and re-schedules itself
// until no build has doomed jobs and no record beyond the cap is left, or the engine is
// shutting down. Every promise of the dying protocol stays true because nobody can tell a
// doomed record from a finished one:
//   - FindJobLocked, the one door to a job for every lookup (GetJob, GetJobOutput, WatchJob,
//     CancelJob, Unwatch...), finishes a doomed job on the spot and reports it; the sweep
//     skips a job already finished. So each job gets exactly one outcome report.
//   - Its ended_at is the dying time, wherever it is finished; its result message is left
//     empty (a heap string per job was one of the old step's main costs) and InfoLocked
//     supplies the standard text.
//   - A doomed job enters finished_order_ only when the sweep passes it, so eviction never
//     frees a Job that a doomed list still points to.
//   - Close finishes the build's doomed jobs itself, in its one step, before the Build goes:
//     no Job points to a freed Build, and OnBuildClosed follows every OnJobsCancelled of the
//     build. The sweep finds builds only through sweeping_, which Close leaves, so a stale
//     sweep never touches a later build of the same name.
//   - Shutdown finishes every doomed job before it returns (chunk by chunk, releasing mu_ in
//     between), so that observers hear of every job before the engine and its clock go.

#include <algorithm>
#include <deque>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "server/engine/engine.h"
#include "server/engine/records.h"

namespace distd::engine {

void Engine::FinishDoomedLocked(Job* job, absl::Time ended_at) {
  job->state = JobState::kFinished;
  job->result.outcome = Outcome::kCancelled;  // message: kBuildStoppedMessage, by InfoLocked
  job->ended_at = ended_at;
  job->build = nullptr;
  job->spec.targets.reset();  // closed before anyone hears it ended
  if (!job->watchers.empty()) {
    JobInfo info = InfoLocked(*job);
    for (JobWatcher* w : job->watchers) w->OnJobFinished(info);
    job->watchers.clear();
  }
}

void Engine::ReportCancelledLocked(absl::string_view build, absl::Span<const JobId> ids) {
  if (ids.empty()) return;
  for (EngineObserver* o : observers_) o->OnJobsCancelled(build, ids);
}

size_t Engine::SweepBuildLocked(Build* build, size_t max_jobs) {
  // The dead barriers' id lists, left by the dying step: about one free per 64 ids, less
  // than finishing a chunk of records.
  std::deque<JobId>().swap(build->barrier.unfinished);
  absl::flat_hash_map<std::string, Barrier>().swap(build->groups);
  const size_t n = std::min(max_jobs, build->doomed.size());
  std::vector<JobId> ids;
  if (!observers_.empty()) ids.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    Job* job = build->doomed.front();
    build->doomed.pop_front();
    // A job finished on the spot (a lookup, or a watcher in the dying step) was reported then.
    if (job->state != JobState::kFinished) {
      FinishDoomedLocked(job, build->died_at);
      if (!observers_.empty()) ids.push_back(job->id);
    }
    finished_order_.push_back(job->id);
  }
  ReportCancelledLocked(*build->name, ids);
  return build->doomed.size();
}

void Engine::SweepLocked(size_t max_jobs) {
  while (max_jobs > 0 && !sweeping_.empty()) {
    Build* build = sweeping_.front();
    const size_t before = build->doomed.size();
    const size_t left = SweepBuildLocked(build, max_jobs);
    max_jobs -= before - left;
    if (left == 0) sweeping_.pop_front();
  }
}

void Engine::ScheduleSweepLocked(absl::Duration delay) {
  // Once shutting down, never: Shutdown finishes the records itself, and the clock is about
  // to go with the engine, possibly while a sweep task is still running.
  if (shutting_down_ || sweep_scheduled_ || (sweeping_.empty() && !OverRememberedLocked())) {
    return;
  }
  sweep_scheduled_ = true;
  // On the clock's thread: never in the caller's request.
  clock_->Schedule(clock_->Now() + delay, [this] { OnSweepTimer(); });
}

void Engine::OnSweepTimer() {
  absl::MutexLock lock(&mu_);
  sweep_scheduled_ = false;
  SweepLocked(kSweepChunk);
  // The records the chunk finished, and any left over from earlier chunks, leave memory here
  // rather than 256 per request: after a large cancel, requests stay as cheap as before it.
  EvictLocked(kSweepChunk);
  // Releasing mu_ between chunks lets requests in; the next chunk is a new task, due at once.
  ScheduleSweepLocked(absl::ZeroDuration());
}

bool Engine::OverRememberedLocked() const {
  return finished_order_.size() > options_.max_finished_jobs;
}

void Engine::EvictLocked(size_t max_jobs) {
  for (size_t i = 0; i < max_jobs && OverRememberedLocked(); ++i) {
    const JobId id = finished_order_.front();
    jobs_.erase(id);
    finished_order_.pop_front();
    if (!output_order_.empty() && output_order_.front() == id) output_order_.pop_front();
  }
}

void Engine::TrimOutputLocked() {
  while (output_budget_.used > options_.max_output_bytes && !output_order_.empty()) {
    Job* job = FindJobLocked(output_order_.front());
    output_order_.pop_front();
    if (job == nullptr || job->out->dropped()) continue;
    job->out->Drop("over the memory budget");
    job->err->Drop("over the memory budget");
  }
}

}  // namespace distd::engine
