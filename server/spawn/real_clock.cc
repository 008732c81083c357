// The wall clock: one thread that sleeps until the earliest timer and runs callbacks in
// deadline order.
//
// Callbacks run outside the clock's lock, so a callback may Schedule or Cancel freely and
// Cancel never waits for one that is running (the engine cancels timers while holding its
// own lock, and a running callback is usually waiting for that same lock). The price, stated
// in clock.h, is that a callback must re-check what it was set for.

#include <map>
#include <memory>
#include <thread>
#include <unordered_map>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/spawn/clock.h"

namespace distd::spawn {
namespace {

class RealClock final : public Clock {
 public:
  RealClock() : thread_([this] { Run(); }) {}

  ~RealClock() override {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    thread_.join();
    // Pending callbacks are destroyed here, outside the lock: destroying what they captured
    // may well call back into code that takes other locks, or even into this clock.
    Timers dropped;
    {
      absl::MutexLock lock(&mu_);
      dropped.swap(timers_);
      deadlines_.clear();
    }
  }

  absl::Time Now() override { return absl::Now(); }

  TimerId Schedule(absl::Time when, absl::AnyInvocable<void()> fn) override {
    absl::MutexLock lock(&mu_);
    const TimerId id = next_id_++;
    // Ids grow with every Schedule, so (when, id) orders equal deadlines by schedule order.
    timers_.emplace(Key{when, id}, std::move(fn));
    deadlines_.emplace(id, when);
    // No explicit notify: the clock thread waits on a condition over timers_, which abseil
    // re-evaluates when this lock is released.
    return id;
  }

  void Cancel(TimerId id) override {
    absl::AnyInvocable<void()> fn;  // destroyed after the lock is released (see ~RealClock)
    absl::MutexLock lock(&mu_);
    auto it = deadlines_.find(id);
    if (it == deadlines_.end()) return;  // fired, running, cancelled, or never existed
    auto timer = timers_.find(Key{it->second, id});
    fn = std::move(timer->second);
    timers_.erase(timer);
    deadlines_.erase(it);
  }

 private:
  using Key = std::pair<absl::Time, TimerId>;
  using Timers = std::map<Key, absl::AnyInvocable<void()>>;

  void Run() {
    mu_.Lock();
    while (true) {
      mu_.Await(absl::Condition(this, &RealClock::HasWork));
      if (stopping_) break;
      const Key first = timers_.begin()->first;
      if (absl::Now() < first.first) {
        // Sleep until that deadline, or until the earliest timer changes (an earlier one
        // was scheduled, this one was cancelled) or we are asked to stop.
        waiting_for_ = first;
        mu_.AwaitWithDeadline(absl::Condition(this, &RealClock::FrontChanged), first.first);
        continue;
      }
      auto node = timers_.extract(timers_.begin());
      deadlines_.erase(first.second);
      absl::AnyInvocable<void()> fn = std::move(node.mapped());
      // Run without the lock: the callback may Schedule or Cancel, and Cancel from other
      // threads must not wait for it.
      mu_.Unlock();
      fn();
      fn = nullptr;  // release captured state outside the lock too
      mu_.Lock();
    }
    mu_.Unlock();
  }

  bool HasWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || !timers_.empty(); }

  bool FrontChanged() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stopping_ || timers_.empty() || timers_.begin()->first != waiting_for_;
  }

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  TimerId next_id_ ABSL_GUARDED_BY(mu_) = 1;
  Key waiting_for_ ABSL_GUARDED_BY(mu_);  // the timer the clock thread sleeps for
  Timers timers_ ABSL_GUARDED_BY(mu_);
  // Cancel gets only an id; this finds the timer's key without a scan.
  std::unordered_map<TimerId, absl::Time> deadlines_ ABSL_GUARDED_BY(mu_);
  // Last member: the thread starts in the constructor and uses everything above.
  std::thread thread_;
};

}  // namespace

std::unique_ptr<Clock> NewRealClock() { return std::make_unique<RealClock>(); }

}  // namespace distd::spawn
