#include "server/journal/recorder.h"

#include <algorithm>
#include <utility>

#include "spdlog/spdlog.h"

namespace distd::journal {

Recorder::Recorder(Journal* journal, spawn::Clock* clock, RecorderOptions options)
    : journal_(journal), clock_(clock), options_(options), thread_([this] { Loop(); }) {}

Recorder::~Recorder() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

absl::Status Recorder::healthy() const {
  absl::MutexLock lock(&mu_);
  return health_;
}

absl::Status Recorder::Flush() {
  absl::MutexLock lock(&mu_);
  const uint64_t target = pushed_;
  const uint64_t begun = started_;
  // Either written, or a write begun since the call failed (health_ says why).
  const auto done = [this, target, begun]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return written_ >= target || last_failed_ > begun;
  };
  mu_.Await(absl::Condition(&done));
  return written_ >= target ? absl::OkStatus() : health_;
}

void Recorder::Push(Change change) {
  absl::MutexLock lock(&mu_);
  queue_.push_back(std::move(change));
  ++pushed_;
}

void Recorder::OnJobsQueued(absl::Span<const engine::JobInfo> jobs) {
  Push(Queued{std::vector<engine::JobInfo>(jobs.begin(), jobs.end())});
}
void Recorder::OnJobStarted(const engine::JobInfo& job) { Push(Changed{job}); }
void Recorder::OnJobFinished(const engine::JobInfo& job) { Push(Changed{job}); }

void Recorder::OnJobsCancelled(absl::string_view build, absl::Span<const engine::JobId> ids) {
  {
    absl::MutexLock lock(&mu_);
    if (dying_.contains(build)) return;  // cancelled with their build (OnBuildDying)
  }
  Push(Cancelled{std::vector<engine::JobId>(ids.begin(), ids.end()), clock_->Now()});
}

void Recorder::OnBuildDying(const engine::BuildInfo& build) {
  {
    absl::MutexLock lock(&mu_);
    dying_.insert(build.name);
  }
  Push(BuildChange{build, clock_->Now()});
}
void Recorder::OnBuildDead(const engine::BuildInfo& build) {
  Push(BuildChange{build, clock_->Now()});
}
void Recorder::OnBuildClosed(absl::string_view build) {
  {
    absl::MutexLock lock(&mu_);
    dying_.erase(build);
  }
  Push(Closed{std::string(build), clock_->Now()});
}

absl::Status Recorder::Write(const std::vector<Change>& changes) {
  if (absl::Status s = journal_->Begin(); !s.ok()) return s;
  absl::Status status;
  struct Apply {
    Journal* journal;
    absl::Status operator()(const Queued& c) const { return journal->JobsQueued(c.jobs); }
    absl::Status operator()(const Changed& c) const { return journal->JobChanged(c.job); }
    absl::Status operator()(const Cancelled& c) const {
      return journal->JobsCancelled(c.ids, c.when);
    }
    absl::Status operator()(const BuildChange& c) const {
      return journal->BuildChanged(c.build, c.when);
    }
    absl::Status operator()(const Closed& c) const { return journal->BuildClosed(c.name, c.when); }
  };
  for (const Change& change : changes) {
    status = std::visit(Apply{journal_}, change);
    if (!status.ok()) break;
  }
  if (status.ok()) status = journal_->Commit();
  if (!status.ok()) journal_->Rollback();
  return status;
}

void Recorder::Loop() {
  std::vector<Change> batch;  // taken from the queue, not yet written
  absl::Duration retry = options_.retry_min;
  uint64_t attempt = 0;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (batch.empty()) {
        mu_.Await(absl::Condition(this, &Recorder::HasWork));
      }
      if (batch.empty() && queue_.empty() && stopping_) return;
      // What came since joins the batch, in order.
      if (batch.empty()) {
        batch.swap(queue_);
      } else {
        std::move(queue_.begin(), queue_.end(), std::back_inserter(batch));
        queue_.clear();
      }
      attempt = ++started_;
    }
    absl::Status status = Write(batch);
    absl::MutexLock lock(&mu_);
    if (status.ok()) {
      if (!health_.ok()) spdlog::info("the journal is written again");
      written_ += batch.size();
      batch.clear();
      health_ = absl::OkStatus();
      retry = options_.retry_min;
      continue;
    }
    if (health_.ok() || health_.message() != status.message()) {
      spdlog::error("{}; {} changes wait to be written", std::string(status.message()),
                    batch.size());
    }
    health_ = status;
    last_failed_ = attempt;
    if (stopping_) {
      spdlog::error("distd stops with {} changes not in the journal", batch.size());
      return;
    }
    // Wait before trying again; a stop cuts the wait short for one last try.
    mu_.AwaitWithTimeout(absl::Condition(&stopping_), retry);
    retry = std::min(retry * 2, options_.retry_max);
  }
}

}  // namespace distd::journal
