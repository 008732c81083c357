#include "tests/engine/fake_clock.h"

namespace distd::engine {

absl::Time FakeClock::Now() {
  absl::MutexLock lock(&mu_);
  return now_;
}

TimerId FakeClock::Schedule(absl::Time when, absl::AnyInvocable<void()> fn) {
  absl::MutexLock lock(&mu_);
  TimerId id = ++last_id_;
  timers_.emplace(std::make_pair(when, id), std::move(fn));
  return id;
}

void FakeClock::Cancel(TimerId id) {
  absl::MutexLock lock(&mu_);
  for (auto it = timers_.begin(); it != timers_.end(); ++it) {
    if (it->first.second == id) {
      timers_.erase(it);
      return;
    }
  }
}

void FakeClock::Advance(absl::Duration d) {
  mu_.Lock();
  const absl::Time target = now_ + d;
  while (!timers_.empty() && timers_.begin()->first.first <= target) {
    auto node = timers_.extract(timers_.begin());
    now_ = std::max(now_, node.key().first);
    mu_.Unlock();
    node.mapped()();
    mu_.Lock();
  }
  now_ = target;
  mu_.Unlock();
}

bool FakeClock::RunOneDue() {
  mu_.Lock();
  if (timers_.empty() || timers_.begin()->first.first > now_) {
    mu_.Unlock();
    return false;
  }
  auto node = timers_.extract(timers_.begin());
  mu_.Unlock();
  node.mapped()();
  return true;
}

void FakeClock::Lag(absl::Duration d) {
  absl::MutexLock lock(&mu_);
  now_ += d;
}

size_t FakeClock::pending() {
  absl::MutexLock lock(&mu_);
  return timers_.size();
}

}  // namespace distd::engine
