#include "server/journal/recorder.h"

#include <algorithm>
#include <utility>

#include "spdlog/spdlog.h"

namespace distd::journal {

Recorder::Recorder(Journal* journal, OutputStore* outputs, spawn::Clock* clock,
                   RecorderOptions options)
    : journal_(journal), outputs_(outputs), clock_(clock), options_(options), thread_([this] {
        Loop();
      }) {}

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
  ++flushing_;
  mu_.Await(absl::Condition(&done));
  --flushing_;
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
void Recorder::OnJobOutput(engine::JobId id, engine::OutputStream stream, absl::string_view data) {
  if (outputs_ == nullptr || data.empty()) return;
  absl::MutexLock lock(&mu_);
  if (output_bytes_ + data.size() <= options_.max_pending_output) {
    output_.push_back(Output{id, stream, std::string(data)});
    output_bytes_ += data.size();
    return;
  }
  if (!output_.empty() && output_.back().id == id && output_.back().stream == stream &&
      output_.back().data.empty() && !output_.back().end) {
    output_.back().skipped += data.size();
  } else {
    output_.push_back(Output{id, stream, {}, data.size()});
  }
}

void Recorder::OnJobFinished(const engine::JobInfo& job) {
  absl::MutexLock lock(&mu_);
  if (outputs_ != nullptr) output_.push_back(Output{job.id, {}, {}, 0, /*end=*/true});
  queue_.push_back(Changed{job});
  ++pushed_;
}

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
    const absl::flat_hash_map<engine::JobId, OutputSizes>* kept;
    absl::Status operator()(const Queued& c) const { return journal->JobsQueued(c.jobs); }
    absl::Status operator()(const Changed& c) const {
      auto sizes = kept->find(c.job.id);
      return journal->JobChanged(c.job,
                                 c.job.state == engine::JobState::kFinished && sizes != kept->end()
                                     ? sizes->second
                                     : OutputSizes{});
    }
    absl::Status operator()(const Cancelled& c) const {
      return journal->JobsCancelled(c.ids, c.when);
    }
    absl::Status operator()(const BuildChange& c) const {
      return journal->BuildChanged(c.build, c.when);
    }
    absl::Status operator()(const Closed& c) const { return journal->BuildClosed(c.name, c.when); }
  };
  for (const Change& change : changes) {
    status = std::visit(Apply{journal_, &kept_}, change);
    if (!status.ok()) break;
  }
  if (status.ok()) status = journal_->Commit();
  if (!status.ok()) {
    journal_->Rollback();
    return status;
  }
  for (const Change& change : changes) {
    if (const Changed* c = std::get_if<Changed>(&change);
        c != nullptr && c->job.state == engine::JobState::kFinished) {
      kept_.erase(c->job.id);
    }
  }
  return status;
}

void Recorder::WriteOutput(const std::vector<Output>& output) {
  for (const Output& o : output) {
    if (o.end) {
      if (const OutputSizes sizes = outputs_->Finish(o.id);
          sizes.stdout_bytes > 0 || sizes.stderr_bytes > 0) {
        kept_[o.id] = sizes;
      }
      // The size is held as jobs end, not only at the hourly prune.
      if (outputs_->bytes() > options_.retention.bytes) outputs_->Shrink(options_.retention.bytes);
    } else if (o.skipped > 0) {
      outputs_->Skipped(o.id, o.stream, o.skipped);
    } else {
      outputs_->Append(o.id, o.stream, o.data);
    }
  }
}

void Recorder::Prune() {
  if (outputs_ != nullptr) {
    if (const uint64_t freed = outputs_->Prune(options_.retention, absl::Now()); freed > 0) {
      spdlog::info("removed {} bytes of old jobs' output ({} bytes kept)", freed,
                   outputs_->bytes());
    }
  }
  // A failure here costs nothing but space: the next prune tries again.
  absl::StatusOr<int64_t> forgotten =
      journal_->ForgetClosedBuilds(absl::Now() - options_.history_keep);
  if (!forgotten.ok()) {
    spdlog::warn("cannot forget old builds in the journal: {}",
                 std::string(forgotten.status().message()));
  } else if (*forgotten > 0) {
    spdlog::info("forgot {} build(s) closed more than {} ago", *forgotten,
                 absl::FormatDuration(options_.history_keep));
  }
}

void Recorder::Loop() {
  std::vector<Change> batch;  // taken from the queue, not yet written
  std::vector<Output> output;
  absl::Duration retry = options_.retry_min;
  uint64_t attempt = 0;
  absl::Time next_prune = absl::Now();  // at start, then every prune_every
  while (true) {
    if (absl::Now() >= next_prune) {
      Prune();
      next_prune = absl::Now() + options_.prune_every;
    }
    {
      absl::MutexLock lock(&mu_);
      if (batch.empty()) {
        mu_.AwaitWithDeadline(absl::Condition(this, &Recorder::HasWork), next_prune);
        if (!HasWork()) continue;  // time to prune
        // Let what comes right after join this transaction.
        if (!Hurried())
          mu_.AwaitWithTimeout(absl::Condition(this, &Recorder::Hurried), options_.gather);
      }
      if (batch.empty() && queue_.empty() && output_.empty() && stopping_) return;
      output.swap(output_);
      output_bytes_ = 0;
      // What came since joins the batch, in order.
      if (batch.empty()) {
        batch.swap(queue_);
      } else {
        std::move(queue_.begin(), queue_.end(), std::back_inserter(batch));
        queue_.clear();
      }
      if (!batch.empty()) attempt = ++started_;
    }
    // Output first: a job's end in `batch` comes after all of its output.
    if (!output.empty()) {
      WriteOutput(output);
      output.clear();
    }
    if (batch.empty()) continue;
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
      // The rows are lost, but what the jobs printed since is still written and ended.
      output.swap(output_);
      break;
    }
    // Wait before trying again; a stop cuts the wait short for one last try.
    mu_.AwaitWithTimeout(absl::Condition(&stopping_), retry);
    retry = std::min(retry * 2, options_.retry_max);
  }
  WriteOutput(output);
}

}  // namespace distd::journal
