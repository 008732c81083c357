// Slots of the pool lent to running jobs as jobserver tokens (spawn/jobserver.h): a job that
// is itself a parallel build (make, ninja, cargo) runs its extra processes on slots that no
// queued job wants, and never on more than the pool has. Part of Engine (engine.h).
//
// The accounting, with a jobserver of its own for each running job:
//  - running_ + lent_ <= the pool, always. A job's own process is its slot (the implicit
//    token); its `lent` is what was given to it and has not come back, whether it still sits
//    in its pipe or the job took it.
//  - Tokens are lent only while nothing is queued (DispatchLocked lends when the ring is
//    empty). A job holding none is offered one; a job that took every token it was given (it
//    may be waiting for more) gets the spare slots, one each in turn, fewest held first. While
//    slots are spare and an offer lies untaken, a timer looks again: 2 ms after an offer,
//    doubling up to 128 ms while nobody takes. So a nested build gets the rest soon after it
//    takes its first. A job that is being stopped, or that leaves a token lying, gets none.
//  - A token a job writes back (the pipe style's return pipe, which only distd reads) is the
//    pool's at once: a queued job gets it before the nested build can take it again, else a
//    running job that may want it, the one that gave it back first among equals. A job never
//    gets credit for more than it took: one that writes extra tokens gains nothing.
//  - When a queued job finds no slot, dispatch also reads back the tokens that were given
//    and not taken. While the queue still waits on tokens the jobs hold, a timer looks again
//    every jobserver_reclaim (for a fifo, where a returned token lies for whoever reads first,
//    this is the only way distd gets it).
//  - When a job ends, every token it was lent is the pool's again, whether or not it gave them
//    back (a killed make does not): its pipes go with it. So the count is exact at every
//    barrier, with nothing to recount.
#include <algorithm>
#include <vector>

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

uint64_t Engine::CreditReturnsLocked(Job* job) {
  // At most what it may hold and a little more, per look: a job that floods its pipe costs a
  // bounded read under the lock.
  const uint64_t returned = static_cast<uint64_t>(
      job->tokens->Returned(static_cast<int>(std::min<uint64_t>(job->lent, 4096) + 1)));
  if (returned == 0) return 0;
  // No more than it took: what it was lent less what still lies in its pipe. (Should it take
  // one meanwhile, it is credited the next time.)
  const uint64_t untaken = static_cast<uint64_t>(job->tokens->Untaken());
  const uint64_t taken = job->lent > untaken ? job->lent - untaken : 0;
  const uint64_t back = std::min(returned, taken);
  if (returned > taken && returns_ != nullptr && !job->flooding) {
    // It wrote back tokens it never took. Not heard at once any more: its returns are read
    // when a queued job needs a slot, and all it holds comes back when it ends.
    job->flooding = true;
    returns_->Unwatch(job->tokens->return_fd());
    spdlog::warn(
        "job {} wrote back jobserver tokens it had not taken; its returns are no "
        "longer watched",
        job->id);
  }
  job->lent -= back;
  lent_ -= back;
  return back;
}

uint64_t Engine::ReclaimTokensLocked(uint64_t want) {
  uint64_t freed = 0;
  for (Job* job : token_jobs_) {
    if (job->lent == 0) continue;
    freed += CreditReturnsLocked(job);
    if (freed >= want || job->lent == 0) continue;
    const uint64_t back = static_cast<uint64_t>(
        job->tokens->Take(static_cast<int>(std::min(want - freed, job->lent))));
    job->lent -= back;
    lent_ -= back;
    freed += back;
  }
  return freed;
}

bool Engine::GiveTokenLocked(Job* job) {
  if (job->tokens->Put(1) != 1) return false;
  ++job->lent;
  ++lent_;
  return true;
}

void Engine::LendTokensLocked(Job* preferred) {
  const uint64_t pool = static_cast<uint64_t>(pool_size_);
  if (running_ + lent_ >= pool || token_jobs_.empty()) return;
  // A job that holds none is offered one: whether it reads it says whether it wants more. A
  // job that took every token it was given (a nested build at work) gets the rest, in turn,
  // fewest held first. A job that leaves a token lying gets no more.
  std::vector<Job*> fresh, taking;
  bool lying = false;  // an offer not taken yet: it may be, later
  for (Job* job : token_jobs_) {
    if (job->stopping) continue;
    if (job->lent == 0) {
      fresh.push_back(job);
    } else if (job->tokens->Untaken() == 0) {
      taking.push_back(job);
    } else {
      lying = true;
    }
  }

  bool offered = false;
  for (Job* job : fresh) {
    if (running_ + lent_ >= pool) break;
    offered = GiveTokenLocked(job) || offered;
  }
  std::stable_sort(taking.begin(), taking.end(), [preferred](const Job* a, const Job* b) {
    if (a->lent != b->lent) return a->lent < b->lent;
    return a == preferred && b != preferred;
  });
  bool gave_more = false;
  for (bool gave = true; gave && running_ + lent_ < pool;) {
    gave = false;
    for (Job* job : taking) {
      if (running_ + lent_ >= pool) break;
      gave = GiveTokenLocked(job) || gave;
    }
    gave_more = gave_more || gave;
  }
  // While slots are spare and an offer lies untaken, look again, to give the rest to a job
  // once it has taken its first (a make reads its Makefile before it wants a token): soon
  // after an offer or a job that took, then less and less often while nobody takes.
  lend_look_ = offered || gave_more
                   ? options_.jobserver_reclaim
                   : std::min(lend_look_ * 2, std::max(kLongestLook, options_.jobserver_reclaim));
  if ((offered || lying) && running_ + lent_ < pool && reclaim_timer_ == 0) {
    reclaim_timer_ = clock_->Schedule(clock_->Now() + lend_look_, [this] { OnReclaimTimer(); });
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

void Engine::OnTokensReturned(JobId id) {
  mu_.Lock();
  Deferred deferred;
  auto it = jobs_.find(id);
  Job* job = it != jobs_.end() ? it->second.get() : nullptr;
  // A job that has ended has no pipes, and its tokens were counted back with its end.
  // Tokens beyond what it was lent are read all the same, so that the watcher rests.
  if (job != nullptr && job->tokens != nullptr && CreditReturnsLocked(job) > 0) {
    if (ring_.empty()) {
      LendTokensLocked(job);
    } else {
      DispatchLocked(deferred);
    }
  }
  Unlock(deferred);
}

void Engine::OnReclaimTimer() {
  mu_.Lock();
  Deferred deferred;
  reclaim_timer_ = 0;
  DispatchLocked(deferred);
  Unlock(deferred);
}

}  // namespace distd::engine
