#include <memory>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/spawn/clock.h"

namespace distd::spawn {
namespace {

using ::testing::ElementsAre;

constexpr absl::Duration kTimeout = absl::Seconds(30);

// Records which callbacks ran, in order, and lets the test wait for a count.
class Log {
 public:
  void Add(int value) {
    absl::MutexLock lock(&mu_);
    values_.push_back(value);
  }
  bool AwaitSize(size_t n) {
    absl::MutexLock lock(&mu_);
    auto reached = [this, n]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return values_.size() >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&reached), kTimeout);
  }
  std::vector<int> values() {
    absl::MutexLock lock(&mu_);
    return values_;
  }

 private:
  absl::Mutex mu_;
  std::vector<int> values_ ABSL_GUARDED_BY(mu_);
};

TEST(RealClockTest, NowIsTheWallClock) {
  auto clock = NewRealClock();
  absl::Time before = absl::Now();
  absl::Time now = clock->Now();
  EXPECT_LE(before, now);
  EXPECT_LE(now, absl::Now());
}

TEST(RealClockTest, RunsCallbacksInDeadlineOrderAndTiesInScheduleOrder) {
  auto clock = NewRealClock();
  Log log;
  const absl::Time base = clock->Now() + absl::Milliseconds(200);
  clock->Schedule(base + absl::Milliseconds(200), [&] { log.Add(4); });
  clock->Schedule(base, [&] { log.Add(1); });
  clock->Schedule(base + absl::Milliseconds(100), [&] { log.Add(2); });
  clock->Schedule(base + absl::Milliseconds(100), [&] { log.Add(3); });
  clock->Schedule(base - absl::Milliseconds(100), [&] { log.Add(0); });
  ASSERT_TRUE(log.AwaitSize(5));
  EXPECT_THAT(log.values(), ElementsAre(0, 1, 2, 3, 4));
}

TEST(RealClockTest, NeverRunsBeforeTheDeadline) {
  auto clock = NewRealClock();
  absl::Mutex mu;
  absl::Time ran_at = absl::InfinitePast();
  const absl::Time when = clock->Now() + absl::Milliseconds(150);
  Log log;
  clock->Schedule(when, [&] {
    {
      absl::MutexLock lock(&mu);
      ran_at = absl::Now();
    }
    log.Add(1);
  });
  ASSERT_TRUE(log.AwaitSize(1));
  absl::MutexLock lock(&mu);
  EXPECT_GE(ran_at, when);
}

TEST(RealClockTest, CancelPreventsFiring) {
  auto clock = NewRealClock();
  Log log;
  const absl::Time now = clock->Now();
  TimerId cancelled = clock->Schedule(now + absl::Milliseconds(100), [&] { log.Add(1); });
  clock->Schedule(now + absl::Milliseconds(300), [&] { log.Add(2); });
  clock->Cancel(cancelled);
  clock->Cancel(cancelled);  // twice is harmless
  clock->Cancel(12345);      // so is an id that never existed
  // Callbacks run in deadline order, so once 2 has run, 1 would have run before it.
  ASSERT_TRUE(log.AwaitSize(1));
  EXPECT_THAT(log.values(), ElementsAre(2));
}

TEST(RealClockTest, CancelReleasesTheCallback) {
  auto clock = NewRealClock();
  auto token = std::make_shared<int>(0);
  TimerId id = clock->Schedule(clock->Now() + absl::Hours(1), [token] {});
  EXPECT_EQ(token.use_count(), 2);
  clock->Cancel(id);
  EXPECT_EQ(token.use_count(), 1);
}

TEST(RealClockTest, PastDeadlineRunsPromptlyOnTheClockThread) {
  auto clock = NewRealClock();
  Log log;
  std::thread::id ran_on;
  const absl::Time start = absl::Now();
  clock->Schedule(start - absl::Hours(1), [&] {
    ran_on = std::this_thread::get_id();
    log.Add(1);
  });
  ASSERT_TRUE(log.AwaitSize(1));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  // Schedule never runs the callback inline.
  EXPECT_NE(ran_on, std::this_thread::get_id());
}

TEST(RealClockTest, CallbackMayScheduleAndCancel) {
  auto clock = NewRealClock();
  Log log;
  clock->Schedule(clock->Now(), [&] {
    log.Add(1);
    TimerId doomed = clock->Schedule(clock->Now() + absl::Milliseconds(50), [&] { log.Add(99); });
    clock->Schedule(clock->Now() + absl::Milliseconds(100), [&] { log.Add(3); });
    clock->Schedule(clock->Now(), [&] { log.Add(2); });
    clock->Cancel(doomed);
  });
  ASSERT_TRUE(log.AwaitSize(3));
  EXPECT_THAT(log.values(), ElementsAre(1, 2, 3));
}

TEST(RealClockTest, CancelDoesNotWaitForARunningCallback) {
  auto clock = NewRealClock();
  absl::Notification entered;
  absl::Notification release;
  Log log;
  TimerId running = clock->Schedule(clock->Now(), [&] {
    entered.Notify();
    release.WaitForNotificationWithTimeout(kTimeout);
    log.Add(1);
  });
  TimerId later = clock->Schedule(clock->Now() + absl::Milliseconds(10), [&] { log.Add(2); });
  ASSERT_TRUE(entered.WaitForNotificationWithTimeout(kTimeout));
  // Both return while the callback is blocked; waiting for it would hang here until kTimeout.
  const absl::Time start = absl::Now();
  clock->Cancel(running);
  clock->Cancel(later);
  clock->Schedule(clock->Now(), [&] { log.Add(3); });
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_TRUE(log.values().empty());
  release.Notify();
  ASSERT_TRUE(log.AwaitSize(2));
  EXPECT_THAT(log.values(), ElementsAre(1, 3));
}

TEST(RealClockTest, EarlierTimerWakesASleepingClock) {
  auto clock = NewRealClock();
  Log log;
  // The clock thread is asleep until an hour from now; the new timer must wake it.
  clock->Schedule(clock->Now() + absl::Hours(1), [&] { log.Add(2); });
  clock->Schedule(clock->Now() + absl::Milliseconds(20), [&] { log.Add(1); });
  ASSERT_TRUE(log.AwaitSize(1));
  EXPECT_THAT(log.values(), ElementsAre(1));
}

TEST(RealClockTest, DestructorDropsPendingTimersPromptly) {
  auto clock = NewRealClock();
  auto token = std::make_shared<int>(0);
  bool ran = false;
  for (int i = 0; i < 10; ++i) {
    clock->Schedule(clock->Now() + absl::Hours(1 + i), [token, &ran] { ran = true; });
  }
  const absl::Time start = absl::Now();
  clock.reset();
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_FALSE(ran);
  EXPECT_EQ(token.use_count(), 1);  // the dropped callbacks were destroyed
}

}  // namespace
}  // namespace distd::spawn
