// The jobserver's accounting in the engine (engine/jobserver.cc), with the fake spawner
// playing each job's make: it takes tokens from the job's pipe and puts them back. Every
// interleaving is forced: a step, then what the pool and the pipes hold.
#include <signal.h>

#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/engine/engine_test_util.h"

namespace distd::engine {
namespace {

constexpr absl::Duration kReclaim = absl::Milliseconds(2);

EngineOptions JobserverOptions(int jobs) {
  EngineOptions options;
  options.jobs = jobs;
  options.jobserver = spawn::JobserverStyle::kPipe;
  options.jobserver_reclaim = kReclaim;
  return options;
}

class JobserverTest : public ::testing::Test {
 protected:
  explicit JobserverTest(int jobs = 4) : fake_(JobserverOptions(jobs)) {}

  Engine& engine() { return *fake_.engine; }
  FakeSpawner& spawner() { return *fake_.spawner; }

  std::vector<JobId> Submit(const std::string& build, int n) {
    std::vector<JobSpec> specs;
    for (int i = 0; i < n; ++i) specs.push_back(Spec({"make"}));
    auto ids = engine().Submit(build, std::move(specs), Caller{0, "test"});
    EXPECT_TRUE(ids.ok()) << ids.status();
    return ids.ok() ? *ids : std::vector<JobId>();
  }

  // Takes tokens for `id` until there is none; how many it got.
  int TakeAll(JobId id) {
    int taken = 0;
    while (spawner().TakeToken(id)) ++taken;
    return taken;
  }

  // As a nested make that keeps taking: takes what lies there, lets the engine look again,
  // until nothing more comes; how many it got.
  int Ramp(JobId id) {
    int taken = 0;
    for (int got = TakeAll(id); got > 0; got = TakeAll(id)) {
      taken += got;
      fake_.clock->Advance(kReclaim);
    }
    return taken;
  }

  FakeEngine fake_;
};

TEST_F(JobserverTest, AJobAloneThatTakesIsLentEverySpareSlot) {
  const JobId a = Submit("b", 1)[0];
  ASSERT_TRUE(spawner().HasJobserver(a));
  EXPECT_EQ(spawner().JobserverSlots(a), 4);
  // Offered one; once it has taken it, the rest, within one look.
  EXPECT_EQ(engine().Pool().lent, 1u);
  EXPECT_EQ(TakeAll(a), 1);
  fake_.clock->Advance(kReclaim);
  EXPECT_EQ(engine().Pool().lent, 3u);
  // Its own slot is its implicit token: three more, and no fourth.
  EXPECT_EQ(TakeAll(a), 2);
  EXPECT_EQ(fake_.clock->pending(), 0u);  // nothing left to lend: no more looks
}

// A make reads its Makefile before it wants a token: one that takes its offer late still gets
// the rest, within the longest wait between looks.
TEST_F(JobserverTest, AJobThatTakesItsOfferLateGetsTheRest) {
  const JobId a = Submit("b", 1)[0];
  EXPECT_EQ(engine().Pool().lent, 1u);
  for (int ms = 0; ms < 1000; ++ms) {  // it does not take it yet
    ASSERT_EQ(fake_.clock->pending(), 1u);
    fake_.clock->Advance(absl::Milliseconds(1));
  }
  EXPECT_EQ(engine().Pool().lent, 1u);
  ASSERT_TRUE(spawner().TakeToken(a));
  fake_.clock->Advance(absl::Milliseconds(128));
  EXPECT_EQ(engine().Pool().lent, 3u);
  EXPECT_EQ(TakeAll(a), 2);
  EXPECT_EQ(fake_.clock->pending(), 0u);  // the pool is full: no more looks
}

TEST_F(JobserverTest, AQueuedJobTakesBackTheTokensNotTaken) {
  const JobId a = Submit("b", 1)[0];
  ASSERT_TRUE(spawner().TakeToken(a));  // a's make runs a second process
  const std::vector<JobId> more = Submit("c", 3);
  // Two slots were still in a's pipe: two of the three start, the third waits for the token
  // a holds, and a cannot take another meanwhile.
  EXPECT_THAT(spawner().Running(), ::testing::ElementsAre(a, more[0], more[1]));
  EXPECT_EQ(engine().Pool().queued, 1u);
  EXPECT_EQ(engine().Pool().lent, 1u);
  EXPECT_FALSE(spawner().TakeToken(a));
  // a's process ends and its make puts the token back: the waiting job gets the slot when
  // the engine next looks, within one reclaim period.
  ASSERT_TRUE(spawner().ReturnToken(a));
  EXPECT_EQ(engine().Pool().queued, 1u);
  fake_.clock->Advance(kReclaim);
  EXPECT_EQ(engine().Pool().queued, 0u);
  EXPECT_EQ(engine().Pool().lent, 0u);
  EXPECT_EQ(spawner().Running().size(), 4u);
}

TEST_F(JobserverTest, TheEngineLooksAgainOnlyWhileAJobWaitsForTokens) {
  const JobId a = Submit("b", 1)[0];
  EXPECT_EQ(Ramp(a), 3);
  Submit("c", 1);
  EXPECT_EQ(engine().Pool().queued, 1u);
  // Nothing comes back: the engine keeps looking, and nothing starts.
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(fake_.clock->pending(), 1u);
    fake_.clock->Advance(kReclaim);
    EXPECT_EQ(engine().Pool().queued, 1u);
  }
  ASSERT_TRUE(spawner().ReturnToken(a));
  fake_.clock->Advance(kReclaim);
  EXPECT_EQ(engine().Pool().queued, 0u);
  EXPECT_EQ(fake_.clock->pending(), 0u);  // nothing waits, so no timer
}

TEST_F(JobserverTest, AKilledJobsTokensComeBackWithIt) {
  const JobId a = Submit("b", 1)[0];
  EXPECT_EQ(Ramp(a), 3);  // a killed make never writes these back
  ASSERT_TRUE(spawner().Kill(a, SIGKILL));
  EXPECT_EQ(engine().Pool().lent, 0u);
  EXPECT_EQ(engine().Pool().running, 0u);
  Submit("c", 4);
  EXPECT_EQ(spawner().Running().size(), 4u);
  EXPECT_EQ(engine().Pool().queued, 0u);
}

TEST_F(JobserverTest, AnEndedJobsSlotIsLentToTheOthersInTurn) {
  const std::vector<JobId> ids = Submit("b", 4);  // the pool is full: nothing lent
  EXPECT_EQ(engine().Pool().lent, 0u);
  for (JobId id : ids) EXPECT_FALSE(spawner().TakeToken(id));
  ASSERT_TRUE(spawner().Exit(ids[0], 0));
  ASSERT_TRUE(spawner().Exit(ids[1], 0));
  // Two spare slots, one to each of two of the remaining jobs in turn, not both to one.
  EXPECT_EQ(engine().Pool().lent, 2u);
  EXPECT_EQ(TakeAll(ids[2]), 1);
  EXPECT_EQ(TakeAll(ids[3]), 1);
}

TEST_F(JobserverTest, AJobBeingStoppedIsLentNothing) {
  std::vector<JobId> ids = Submit("b", 2);
  const JobId c = Submit("c", 1)[0];
  EXPECT_EQ(engine().Pool().lent, 1u);  // in ids[1]'s pipe
  // Build b is aborted: its jobs get SIGTERM and linger in their grace period. The slots that
  // come back as they end go to c alone.
  engine().AbortAsync("b", Reason("test"), [](absl::StatusOr<BuildInfo>) {});
  ASSERT_TRUE(spawner().Kill(ids[0], SIGTERM));
  EXPECT_EQ(TakeAll(c), 1);
  EXPECT_EQ(engine().Pool().lent, 2u);
  ASSERT_TRUE(spawner().Kill(ids[1], SIGTERM));
  EXPECT_EQ(engine().Pool().running, 1u);
  EXPECT_EQ(engine().Pool().lent, 3u);
  EXPECT_EQ(TakeAll(c), 2);
}

TEST_F(JobserverTest, AReturnedTokenGoesToAQueuedJobBeforeTheNestedBuildCanTakeItAgain) {
  const JobId a = Submit("b", 1)[0];
  EXPECT_EQ(Ramp(a), 3);
  const JobId queued = Submit("c", 1)[0];
  EXPECT_EQ(engine().Pool().queued, 1u);
  // a's make puts a token back, and (having another target) tries to take one at once.
  ASSERT_TRUE(spawner().ReturnToken(a));
  engine().OnTokensReturned(a);  // the watcher's call
  EXPECT_FALSE(spawner().TakeToken(a));
  EXPECT_THAT(spawner().Running(), ::testing::ElementsAre(a, queued));
  EXPECT_EQ(engine().Pool().lent, 2u);
}

TEST_F(JobserverTest, ATokenReturnedWhileNothingIsQueuedIsThereAgainAtOnce) {
  const JobId a = Submit("b", 1)[0];
  EXPECT_EQ(Ramp(a), 3);
  ASSERT_TRUE(spawner().ReturnToken(a));
  EXPECT_FALSE(spawner().TakeToken(a));  // returns go to distd, not into the job's pipe
  engine().OnTokensReturned(a);
  EXPECT_TRUE(spawner().TakeToken(a));
  EXPECT_EQ(engine().Pool().lent, 3u);
}

TEST_F(JobserverTest, AReturnedTokenGoesToTheJobHoldingFewest) {
  const JobId a = Submit("b", 1)[0];
  EXPECT_EQ(Ramp(a), 3);
  const JobId b = Submit("c", 1)[0];  // queued; it starts on the first token a gives back
  ASSERT_TRUE(spawner().ReturnToken(a));
  engine().OnTokensReturned(a);
  EXPECT_THAT(spawner().Running(), ::testing::ElementsAre(a, b));
  // a holds 2, b none: the next that a gives back goes to b, which may want it.
  ASSERT_TRUE(spawner().ReturnToken(a));
  engine().OnTokensReturned(a);
  EXPECT_FALSE(spawner().TakeToken(a));
  EXPECT_TRUE(spawner().TakeToken(b));
}

TEST_F(JobserverTest, AJobThatLeavesItsTokenUntakenIsGivenNoMore) {
  const std::vector<JobId> ids = Submit("b", 2);  // one token each; ids[1] never reads its own
  EXPECT_EQ(TakeAll(ids[0]), 1);
  ASSERT_TRUE(spawner().ReturnToken(ids[0]));
  engine().OnTokensReturned(ids[0]);
  EXPECT_EQ(TakeAll(ids[0]), 1);  // back to the job that reads, not piled on ids[1]
  EXPECT_EQ(TakeAll(ids[1]), 1);
}

TEST_F(JobserverTest, TokensWrittenBackBeyondWhatWasTakenGainNothing) {
  const JobId a = Submit("b", 1)[0];
  ASSERT_TRUE(spawner().TakeToken(a));
  fake_.clock->Advance(kReclaim);  // it took one: it is lent the other two
  EXPECT_EQ(engine().Pool().lent, 3u);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(spawner().ReturnToken(a));
  engine().OnTokensReturned(a);
  // Credited for the one it took; the two still in its pipe are still counted.
  EXPECT_EQ(engine().Pool().lent, 2u);
  Submit("c", 4);
  EXPECT_EQ(engine().Pool().running + engine().Pool().lent, 4u);
  EXPECT_EQ(engine().Pool().running, 4u);  // the two were taken back for queued jobs
  EXPECT_EQ(engine().Pool().queued, 1u);
}

// The watcher's call may come just after the job ended (its pipe was readable when it looked),
// or for a job it never had: nothing changes.
TEST_F(JobserverTest, AReturnHeardAfterTheJobEndedChangesNothing) {
  const JobId a = Submit("b", 1)[0];
  EXPECT_EQ(Ramp(a), 3);
  ASSERT_TRUE(spawner().ReturnToken(a));
  ASSERT_TRUE(spawner().Exit(a, 0));
  EXPECT_EQ(engine().Pool().lent, 0u);
  engine().OnTokensReturned(a);
  engine().OnTokensReturned(12345);
  EXPECT_EQ(engine().Pool().lent, 0u);
  EXPECT_EQ(engine().Pool().running, 0u);
  EXPECT_EQ(Submit("c", 4).size(), 4u);
  EXPECT_EQ(engine().Pool().running, 4u);
}

class WideJobserverTest : public JobserverTest {
 protected:
  WideJobserverTest() : JobserverTest(8) {}
};

// A nested make beside a compiler that never reads its jobserver: the make gets the pool's
// spare slots, not half of them.
TEST_F(WideJobserverTest, TheSpareSlotsGoToTheJobThatTakesThem) {
  const std::vector<JobId> ids = Submit("b", 2);  // ids[0] a make, ids[1] a compiler
  EXPECT_EQ(engine().Pool().lent, 2u);            // one offered to each
  EXPECT_EQ(Ramp(ids[0]), 5);
  EXPECT_EQ(engine().Pool().lent, 6u);  // 5 taken by the make, 1 lying with the compiler
  EXPECT_EQ(TakeAll(ids[1]), 1);
}

TEST_F(JobserverTest, JobsThatCannotStartLeaveNoTokensBehind) {
  spawner().FailStart("missing", absl::NotFoundError("program not found: missing"));
  std::vector<JobSpec> specs;
  for (int i = 0; i < 3; ++i) specs.push_back(Spec({"missing"}, /*check=*/false));
  ASSERT_TRUE(engine().Submit("b", std::move(specs), Caller{0, "test"}).ok());
  EXPECT_EQ(engine().Pool().running, 0u);
  EXPECT_EQ(engine().Pool().lent, 0u);
}

TEST(JobserverOffTest, NoJobGetsOne) {
  EngineOptions options = JobserverOptions(4);
  options.jobserver = spawn::JobserverStyle::kOff;
  FakeEngine fake(options);
  auto ids = fake.engine->Submit("b", {Spec({"make"})}, Caller{0, "test"});
  ASSERT_TRUE(ids.ok());
  EXPECT_FALSE(fake.spawner->HasJobserver(ids->front()));
  EXPECT_EQ(fake.engine->Pool().lent, 0u);
}

}  // namespace
}  // namespace distd::engine
