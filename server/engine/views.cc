// What the engine shows: its output to watchers (a foreground run, `logs --follow`) and
// observers, and read-only views of jobs, builds and the pool. Part of Engine (engine.h).
//
// A job's output goes to every watcher as it is read; a watcher that cannot keep up
// (Backlogged) makes the engine stop reading that job's pipes until it catches up or goes, so
// the job blocks on its full pipe as it would at a slow terminal. Every view is taken under
// mu_ at one moment: a Snapshot's pool, builds and running jobs add up.

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/engine/engine.h"
#include "server/engine/records.h"

namespace distd::engine {

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

std::vector<BuildInfo> Engine::ListBuilds(bool with_output) {
  absl::MutexLock lock(&mu_);
  return BuildsLocked("", with_output);
}

std::vector<JobInfo> Engine::RunningJobs(absl::string_view build_name) {
  absl::MutexLock lock(&mu_);
  return RunningLocked(build_name);
}

absl::StatusOr<Snapshot> Engine::TakeSnapshot(absl::string_view build_name, bool with_output) {
  absl::MutexLock lock(&mu_);
  if (!build_name.empty() && FindBuildLocked(build_name) == nullptr) {
    return NoSuchBuild(build_name, options_.limits);
  }
  return Snapshot{PoolInfo{pool_size_, running_, queued_, lent_},
                  BuildsLocked(build_name, with_output), RunningLocked(build_name)};
}

std::vector<BuildInfo> Engine::BuildsLocked(absl::string_view only, bool with_output) const {
  std::vector<BuildInfo> out;
  for (const auto& [name, build] : builds_) {
    if (only.empty() || name == only) out.push_back(InfoLocked(*build, with_output));
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
  return PoolInfo{pool_size_, running_, queued_, lent_};
}

void Engine::AddObserver(EngineObserver* observer) {
  absl::MutexLock lock(&mu_);
  observers_.push_back(observer);
}

void Engine::RemoveObserver(EngineObserver* observer) {
  absl::MutexLock lock(&mu_);
  observers_.erase(std::remove(observers_.begin(), observers_.end(), observer), observers_.end());
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

BuildInfo Engine::InfoLocked(const Build& build, bool with_output) const {
  BuildInfo info;
  info.name = *build.name;
  info.state = build.state;
  info.queued = build.queue.size();
  info.running = build.running.size();
  info.succeeded = build.succeeded;
  info.failed = build.failed;
  info.cancelled = build.cancelled;
  info.submitted = build.submitted;
  if (build.failure.has_value() && !with_output) {
    info.failure = Failure{build.failure->job, build.failure->reason, "", ""};
  } else {
    info.failure = build.failure;
  }
  return info;
}

JobOutput Engine::OutputLocked(const Job& job) const {
  JobOutput out;
  out.job = InfoLocked(job);
  if (job.out != nullptr) {
    out.stdout_text = job.out->Text();
    out.stdout_bytes = job.out->total();
    out.dropped = job.out->dropped();
  }
  if (job.err != nullptr) {
    out.stderr_text = job.err->Text();
    out.stderr_bytes = job.err->total();
    out.dropped = out.dropped || job.err->dropped();
  }
  return out;
}
}  // namespace distd::engine
