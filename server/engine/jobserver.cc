// Slots of the pool lent to running jobs as jobserver tokens (spawn/jobserver.h): a job that
// is itself a parallel build (make, ninja, cargo) runs its extra processes on slots that no
// queued job wants, and never on more than the pool has. Part of Engine (engine.h).
//
// The accounting, with one token pipe per running job:
//  - running_ + lent_ <= the pool, always. A job's own process is its slot (the implicit
//    token); `lent` is what was written into its pipe and not read back, whether it still
//    sits there or the job took it.
//  - Tokens are lent only while nothing is queued (DispatchLocked calls LendTokensLocked when
//    the ring is empty), one per job in turn, to jobs that are not being stopped.
//  - When a queued job finds no slot, dispatch reads tokens back from the pipes: those not
//    taken, and those the jobs have returned. While the queue still waits on tokens the jobs
//    hold, a timer looks again every jobserver_reclaim. A nested build keeps what it took
//    until it puts it back, as make's own submakes do.
//  - When a job ends, every token it was lent is the pool's again, whether or not it wrote
//    them back (a killed make does not): its pipe goes with it. So the count is exact at
//    every barrier, and there is nothing to recount.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "server/engine/engine.h"
#include "server/engine/records.h"
#include "spdlog/spdlog.h"

namespace distd::engine {

void Engine::OpenTokensLocked(Job* job, spawn::SpawnRequest& request) {
  if (options_.jobserver == spawn::JobserverStyle::kOff) return;
  absl::StatusOr<std::unique_ptr<spawn::TokenPipe>> tokens = spawn::TokenPipe::Open(
      options_.jobserver, absl::StrCat(options_.jobserver_fifo_prefix, job->id));
  if (!tokens.ok()) {
    // The job still runs, as one process of work: a make given no jobserver runs serially.
    spdlog::warn("job {} runs without a jobserver: {}", job->id,
                 std::string(tokens.status().message()));
    return;
  }
  job->tokens = *std::move(tokens);
  request.tokens = job->tokens.get();
  request.jobserver_slots = pool_size_;
}

uint64_t Engine::ReclaimTokensLocked(uint64_t want) {
  uint64_t taken = 0;
  for (Job* job : token_jobs_) {
    if (taken >= want) break;
    if (job->lent == 0) continue;
    const uint64_t back =
        static_cast<uint64_t>(job->tokens->Take(static_cast<int>(std::min(want - taken, job->lent))));
    job->lent -= back;
    lent_ -= back;
    taken += back;
  }
  return taken;
}

void Engine::LendTokensLocked() {
  const uint64_t pool = static_cast<uint64_t>(pool_size_);
  size_t misses = 0;  // jobs in a row that took no token
  while (running_ + lent_ < pool && !token_jobs_.empty() && misses < token_jobs_.size()) {
    lend_next_ %= token_jobs_.size();
    Job* job = token_jobs_[lend_next_++];
    if (job->stopping || job->tokens->Put(1) != 1) {
      ++misses;
      continue;
    }
    misses = 0;
    ++job->lent;
    ++lent_;
  }
}

void Engine::ReturnTokensLocked(Job* job) {
  if (job->tokens == nullptr) return;
  lent_ -= job->lent;
  job->lent = 0;
  job->tokens.reset();
  auto it = std::find(token_jobs_.begin(), token_jobs_.end(), job);
  if (it != token_jobs_.end()) {
    *it = token_jobs_.back();
    token_jobs_.pop_back();
  }
}

void Engine::OnReclaimTimer() {
  mu_.Lock();
  Deferred deferred;
  reclaim_timer_ = 0;
  DispatchLocked(deferred);
  Unlock(deferred);
}

}  // namespace distd::engine
