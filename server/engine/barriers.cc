// Barriers and waiters: `distctl wait` (WaitAsync, Wait) and the waiters of an abort. Part of
// Engine (engine.h); how the dying step releases the barriers is in dying.cc.
//
// A barrier scope (the build's, or one group's) keeps the ids of its unfinished background
// jobs in submission order, and its waiters in the order of their targets: a waiter covers
// the jobs with ids up to the last id handed out when it came. Finished ids are dropped from
// the front lazily, when a job of the scope finishes, so a finished job costs O(1) however
// many jobs and waiters there are, and releasing the waiters whose jobs are all done takes
// them from the front. A foreground job is on no barrier: its own client waits for it.
//
// A waiter of a dying build waits on the build's death waiters instead (dying.cc), which the
// step dying -> dead completes at once. Callbacks are deferred until mu_ is released
// (Engine::Unlock); a blocking waiter (Wait) is completed in place and read by the thread
// that waits on mu_ for it.

#include <algorithm>
#include <string>
#include <utility>

#include "server/engine/engine.h"
#include "server/engine/records.h"

namespace distd::engine {

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
}  // namespace distd::engine
