// A clock that moves only when the test says so. Timers fire inside Advance, on the test's
// thread, in deadline order, without the clock's lock held.
#ifndef DISTD_TESTS_ENGINE_FAKE_CLOCK_H_
#define DISTD_TESTS_ENGINE_FAKE_CLOCK_H_

#include <map>
#include <utility>

#include "absl/synchronization/mutex.h"
#include "server/spawn/clock.h"

namespace distd::engine {

// The spawn interface this test double stands behind.
using spawn::Clock;
using spawn::TimerId;

class FakeClock : public Clock {
 public:
  absl::Time Now() override;
  TimerId Schedule(absl::Time when, absl::AnyInvocable<void()> fn) override;
  void Cancel(TimerId id) override;

  // Moves time forward by `d`, running every timer that falls due, including timers that
  // those callbacks schedule within the new time.
  void Advance(absl::Duration d);
  // Runs the earliest timer that is due (deadline <= Now()), and only that one: a test can
  // stop between a task and the one it schedules for the same moment. False if none was due.
  bool RunOneDue();
  // Moves time forward by `d` without running the timers that fall due, as a real clock
  // thread that is late (busy, or not scheduled) would; the next Advance or RunOneDue runs
  // them, at the new time.
  void Lag(absl::Duration d);
  size_t pending();

 private:
  absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_) = absl::FromUnixSeconds(1'000'000'000);
  TimerId last_id_ ABSL_GUARDED_BY(mu_) = 0;
  // (deadline, id) -> callback; ids break ties in scheduling order.
  std::map<std::pair<absl::Time, TimerId>, absl::AnyInvocable<void()>> timers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace distd::engine

#endif  // DISTD_TESTS_ENGINE_FAKE_CLOCK_H_
