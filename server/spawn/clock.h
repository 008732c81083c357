// Time and timers, behind an interface so that tests can drive them by hand.
#ifndef DISTD_SERVER_SPAWN_CLOCK_H_
#define DISTD_SERVER_SPAWN_CLOCK_H_

#include <cstdint>
#include <memory>

#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"

namespace distd::spawn {

using TimerId = uint64_t;

class Clock {
 public:
  virtual ~Clock() = default;

  virtual absl::Time Now() = 0;

  // Runs `fn` once, at or after `when`, on a thread of the clock's choosing (never inside
  // Schedule itself). Callbacks run one at a time, in deadline order.
  virtual TimerId Schedule(absl::Time when, absl::AnyInvocable<void()> fn) = 0;

  // Forgets a timer that has not fired. Never blocks and never waits for a callback that is
  // already running: a callback must therefore check that what it was set for still holds.
  virtual void Cancel(TimerId id) = 0;
};

// The wall clock, with one thread that runs the callbacks. The destructor joins the thread;
// timers still pending then are dropped.
std::unique_ptr<Clock> NewRealClock();

}  // namespace distd::spawn

#endif  // DISTD_SERVER_SPAWN_CLOCK_H_
