// Abandoned builds: a build with jobs queued or running that no client attends (no barrier
// waits on it, no foreground run or `logs --follow` watches a job of it) for
// EngineOptions::idle_abort is aborted, so that a CI agent that died does not hold the
// host's pool forever. Part of Engine (engine.h).
//
// A build is attended while it has a waiter or a watched job; each check that finds it so,
// and each submission to it, notes the time. A check runs every tenth of idle_abort (at
// most every 30 s), so a build is aborted between idle_abort and 1.1 x idle_abort after its
// last client went away.
#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/engine/engine.h"
#include "server/engine/records.h"
#include "spdlog/spdlog.h"

namespace distd::engine {

absl::Duration Engine::IdleCheckInterval() const {
  return std::clamp(options_.idle_abort / 10, absl::Milliseconds(10), absl::Seconds(30));
}

void Engine::ScheduleIdleCheck() {
  clock_->Schedule(clock_->Now() + IdleCheckInterval(), [this] { CheckIdleBuilds(); });
}

bool Engine::AttendedLocked(const Build& build) const {
  if (!build.barrier.waiters.empty() || !build.death_waiters.empty() ||
      !build.watched_queued.empty()) {
    return true;
  }
  for (const auto& [name, barrier] : build.groups) {
    if (!barrier.waiters.empty()) return true;
  }
  for (const Job* job : build.running) {
    if (!job->watchers.empty()) return true;
  }
  return false;
}

void Engine::CheckIdleBuilds() {
  mu_.Lock();
  Deferred deferred;
  if (shutting_down_) {
    Unlock(deferred);
    return;
  }
  const absl::Time now = clock_->Now();
  for (auto& [name, build] : builds_) {
    if (build->state != BuildState::kRunning) continue;
    if (build->queue.empty() && build->running.empty()) continue;
    if (AttendedLocked(*build)) {
      build->attended_at = now;
      continue;
    }
    if (now - build->attended_at < options_.idle_abort) continue;
    Failure failure;
    failure.reason =
        absl::StrCat("aborted: abandoned: no client attended it for ",
                     absl::FormatDuration(options_.idle_abort), " (distd --idle-abort)");
    spdlog::warn("build {} {}", *build->name, failure.reason);
    StartDyingLocked(build.get(), std::move(failure));
    StopRunningLocked(build.get(), options_.grace);
    MaybeDeadLocked(build.get(), deferred);
  }
  ScheduleIdleCheck();
  Unlock(deferred);
}

}  // namespace distd::engine
