// The engine against a fake spawner and a fake clock: every interleaving below is forced, not
// hoped for.
#include "server/engine/engine.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <map>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/engine/engine_test_util.h"

namespace distd::engine {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr absl::Duration kGrace = absl::Seconds(5);

class EngineTest : public ::testing::Test {
 protected:
  explicit EngineTest(int jobs = 2) : fake_(Options(jobs)) {}

  static EngineOptions Options(int jobs) {
    EngineOptions options;
    options.jobs = jobs;
    options.grace = kGrace;
    options.max_finished_jobs = 1'000'000;
    return options;
  }

  Engine& engine() { return *fake_.engine; }
  FakeSpawner& spawner() { return *fake_.spawner; }
  FakeClock& clock() { return *fake_.clock; }

  JobId Submit(const std::string& build, JobSpec spec) {
    std::vector<JobSpec> specs;
    specs.push_back(std::move(spec));
    auto ids = engine().Submit(build, std::move(specs), Caller{0, "test"});
    EXPECT_TRUE(ids.ok()) << ids.status();
    return ids.ok() ? ids->front() : 0;
  }

  std::vector<JobId> SubmitMany(const std::string& build, int n, bool check = true) {
    std::vector<JobSpec> specs;
    for (int i = 0; i < n; ++i) specs.push_back(Spec({"job" + std::to_string(i)}, check));
    auto ids = engine().Submit(build, std::move(specs), Caller{0, "test"});
    EXPECT_TRUE(ids.ok()) << ids.status();
    return ids.ok() ? *ids : std::vector<JobId>();
  }

  Outcome OutcomeOf(JobId id) {
    auto job = engine().GetJob(id);
    EXPECT_TRUE(job.ok()) << job.status();
    return job.ok() ? job->result.outcome : Outcome::kNone;
  }

  FakeEngine fake_;
};

class EngineTest1 : public EngineTest {
 protected:
  EngineTest1() : EngineTest(1) {}
};

TEST_F(EngineTest, RunsAtMostPoolSizeAndDispatchesOnExit) {
  std::vector<JobId> ids = SubmitMany("b", 5);
  EXPECT_THAT(spawner().Running(), ElementsAre(ids[0], ids[1]));
  EXPECT_EQ(engine().Pool().queued, 3u);
  ASSERT_TRUE(spawner().Exit(ids[1], 0));
  EXPECT_THAT(spawner().Running(), ElementsAre(ids[0], ids[2]));
  ASSERT_TRUE(spawner().Exit(ids[0], 0));
  ASSERT_TRUE(spawner().Exit(ids[2], 0));
  EXPECT_THAT(spawner().Running(), ElementsAre(ids[3], ids[4]));
  EXPECT_EQ(spawner().max_running(), 2u);
  EXPECT_EQ(OutcomeOf(ids[0]), Outcome::kSucceeded);
}

TEST_F(EngineTest, BarrierCoversOnlyJobsSubmittedBeforeIt) {
  std::vector<JobId> before = SubmitMany("b", 2);
  Answer wait;
  engine().WaitAsync("b", "", wait.Callback());
  JobId after = Submit("b", Spec({"later"}));
  ASSERT_TRUE(spawner().Exit(before[0], 0));
  EXPECT_FALSE(wait.done());
  ASSERT_TRUE(spawner().Exit(before[1], 0));
  ASSERT_TRUE(wait.done());
  ASSERT_TRUE(wait.result().ok());
  EXPECT_FALSE(wait.result()->failure.has_value());
  EXPECT_EQ(engine().GetJob(after)->state, JobState::kRunning);
}

TEST_F(EngineTest, BarrierIgnoresForegroundJobs) {
  JobSpec foreground = Spec({"fg"});
  foreground.background = false;
  JobId fg = Submit("b", foreground);
  JobId bg = Submit("b", Spec({"bg"}));
  Answer wait;
  engine().WaitAsync("b", "", wait.Callback());
  ASSERT_TRUE(spawner().Exit(bg, 0));
  EXPECT_TRUE(wait.done());
  EXPECT_EQ(engine().GetJob(fg)->state, JobState::kRunning);
}

TEST_F(EngineTest, DeadBuildIsNamedEvenWhenTheQueueIsFull) {
  EngineOptions options;
  options.jobs = 1;
  options.limits.max_queued_jobs = 1;
  FakeEngine fake(options);
  ASSERT_TRUE(fake.engine->Submit("dead", {Spec({"y"})}, Caller{}).ok());
  Answer abort;
  fake.engine->AbortAsync("dead", Reason("gone"), abort.Callback());
  fake.spawner->DeliverSignals();
  ASSERT_TRUE(abort.done());
  ASSERT_TRUE(fake.engine->Submit("full", {Spec({"x"})}, Caller{}).ok());  // runs
  ASSERT_TRUE(fake.engine->Submit("full", {Spec({"x"})}, Caller{}).ok());  // fills the queue
  auto refused = fake.engine->Submit("dead", {Spec({"z"})}, Caller{});
  EXPECT_TRUE(absl::IsFailedPrecondition(refused.status())) << refused.status();
  EXPECT_THAT(refused.status().message(), HasSubstr("aborted: gone"));
}

TEST_F(EngineTest, OneBuildCannotFillTheQueueAloneAndARefusedBatchQueuesNothing) {
  EngineOptions options;
  options.jobs = 1;
  options.limits.max_queued_per_build = 2;
  FakeEngine fake(options);
  ASSERT_TRUE(fake.engine->Submit("a", {Spec({"run"})}, Caller{}).ok());  // runs
  ASSERT_TRUE(fake.engine->Submit("a", {Spec({"q1"})}, Caller{}).ok());
  auto refused = fake.engine->Submit("a", {Spec({"q2"}), Spec({"q3"})}, Caller{});
  EXPECT_TRUE(absl::IsResourceExhausted(refused.status())) << refused.status();
  EXPECT_THAT(refused.status().message(), HasSubstr("build a has 1 jobs queued"));
  EXPECT_EQ(fake.engine->Pool().queued, 1u);  // nothing of the batch
  // Another build still has room, but not for more than the limit at once.
  auto too_many = fake.engine->Submit("b", {Spec({"x"}), Spec({"y"}), Spec({"z"})}, Caller{});
  EXPECT_TRUE(absl::IsResourceExhausted(too_many.status())) << too_many.status();
  EXPECT_FALSE(fake.engine->TakeSnapshot("b").ok());  // not opened
  EXPECT_TRUE(fake.engine->Submit("b", {Spec({"x"}), Spec({"y"})}, Caller{}).ok());
  EXPECT_EQ(fake.engine->Pool().queued, 3u);
}

TEST_F(EngineTest, ACallerOpensAtMostItsLimitOfBuildsWithWork) {
  EngineOptions options;
  options.jobs = 8;
  options.limits.max_builds_per_caller = 2;
  FakeEngine fake(options);
  Caller ci{0, "token:ci", 0};
  Caller other{0, "token:other", 0};
  auto b1 = fake.engine->Submit("b1", {Spec({"x"})}, ci);
  ASSERT_TRUE(b1.ok());
  ASSERT_TRUE(fake.engine->Submit("b2", {Spec({"x"})}, ci).ok());
  auto refused = fake.engine->Submit("b3", {Spec({"x"})}, ci);
  EXPECT_TRUE(absl::IsResourceExhausted(refused.status())) << refused.status();
  EXPECT_THAT(refused.status().message(),
              HasSubstr("token:ci has 2 builds with jobs queued or running"));
  EXPECT_FALSE(fake.engine->TakeSnapshot("b3").ok());  // not opened
  // Its open builds take more jobs; another caller opens its own.
  EXPECT_TRUE(fake.engine->Submit("b2", {Spec({"y"})}, ci).ok());
  EXPECT_TRUE(fake.engine->Submit("b3", {Spec({"x"})}, other).ok());
  // A build whose jobs have all ended does not count, though it is open.
  ASSERT_TRUE(fake.spawner->Exit(b1->at(0), 0));
  EXPECT_TRUE(fake.engine->Submit("b4", {Spec({"x"})}, ci).ok());
  EXPECT_FALSE(fake.engine->Submit("b5", {Spec({"x"})}, ci).ok());
  // Nor does a dead build.
  Answer abort;
  fake.engine->AbortAsync("b2", Reason("done"), abort.Callback());
  fake.spawner->DeliverSignals();
  ASSERT_TRUE(abort.done());
  EXPECT_TRUE(fake.engine->Submit("b5", {Spec({"x"})}, ci).ok());
}

TEST(EngineRestoreTest, BuildsOfAPreviousDistdAreKnownAgainAndIdsGoOn) {
  EngineOptions options;
  options.jobs = 1;
  options.last_job_id = 41;
  FakeEngine fake(options);
  BuildInfo idle;
  idle.name = "idle";
  idle.succeeded = idle.submitted = 3;
  ASSERT_TRUE(fake.engine->Restore(idle).ok());
  BuildInfo dead;
  dead.name = "dead";
  dead.state = BuildState::kDead;
  dead.failure.emplace();
  dead.failure->reason = "distd restarted while jobs were running";
  dead.failed = dead.submitted = 1;
  ASSERT_TRUE(fake.engine->Restore(dead).ok());
  EXPECT_TRUE(absl::IsAlreadyExists(fake.engine->Restore(dead)));

  // A barrier on the dead build answers with its failure; new work is refused naming it.
  auto waited = fake.engine->Wait("dead", "");
  ASSERT_TRUE(waited.ok()) << waited.status();
  ASSERT_TRUE(waited->failure.has_value());
  EXPECT_EQ(waited->failure->reason, dead.failure->reason);
  auto refused = fake.engine->Submit("dead", {Spec({"x"})}, Caller{});
  EXPECT_TRUE(absl::IsFailedPrecondition(refused.status())) << refused.status();
  EXPECT_THAT(refused.status().message(), HasSubstr("distd restarted"));

  // The idle one takes more, its counts going on; ids go on after the last one given.
  auto ids = fake.engine->Submit("idle", {Spec({"x"})}, Caller{});
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_EQ(ids->front(), 42u);
  EXPECT_EQ(fake.engine->GetBuild("idle")->submitted, 4u);
  EXPECT_TRUE(fake.engine->Close("dead").ok());

  // A build with work in flight, or dying, or dead without a reason, cannot be restored.
  BuildInfo busy;
  busy.name = "busy";
  busy.queued = 1;
  EXPECT_TRUE(absl::IsInvalidArgument(fake.engine->Restore(busy)));
  BuildInfo dying;
  dying.name = "dying";
  dying.state = BuildState::kDying;
  EXPECT_TRUE(absl::IsInvalidArgument(fake.engine->Restore(dying)));
  BuildInfo no_reason;
  no_reason.name = "no_reason";
  no_reason.state = BuildState::kDead;
  EXPECT_TRUE(absl::IsInvalidArgument(fake.engine->Restore(no_reason)));
}

TEST(EngineIdleTest, ABuildNoClientAttendsIsAbortedAndAnAttendedOneIsNot) {
  EngineOptions options;
  options.jobs = 2;
  options.idle_abort = absl::Minutes(10);
  FakeEngine fake(options);
  auto idle = fake.engine->Submit("idle", {Spec({"z"})}, Caller{});
  ASSERT_TRUE(idle.ok());
  ASSERT_TRUE(fake.spawner->Exit(idle->front(), 0));  // and then nothing to do
  // Both running, nobody waiting.
  ASSERT_TRUE(fake.engine->Submit("left", {Spec({"x"}), Spec({"w"})}, Caller{}).ok());
  // Queued behind them, with a client waiting.
  auto attended = fake.engine->Submit("attended", {Spec({"y"})}, Caller{});
  ASSERT_TRUE(attended.ok());
  Answer wait;
  const WaiterId waiter = fake.engine->WaitAsync("attended", "", wait.Callback());
  ASSERT_NE(waiter, 0u);

  fake.clock->Advance(absl::Minutes(9));
  EXPECT_EQ(fake.engine->GetBuild("left")->state, BuildState::kRunning);
  fake.clock->Advance(absl::Minutes(2));
  auto left = fake.engine->GetBuild("left");
  EXPECT_EQ(left->state, BuildState::kDying);
  ASSERT_TRUE(left->failure.has_value());
  EXPECT_THAT(left->failure->reason, HasSubstr("abandoned: no client attended it for 10m"));
  fake.spawner->DeliverSignals();
  EXPECT_EQ(fake.engine->GetBuild("left")->state, BuildState::kDead);
  EXPECT_EQ(fake.engine->GetBuild("attended")->state, BuildState::kRunning);
  EXPECT_FALSE(wait.done());

  // Its client goes away: ten minutes later it is aborted too.
  fake.engine->CancelWaiter(waiter);
  fake.clock->Advance(absl::Minutes(9));
  EXPECT_EQ(fake.engine->GetBuild("attended")->state, BuildState::kRunning);
  fake.clock->Advance(absl::Minutes(2));
  EXPECT_EQ(fake.engine->GetBuild("attended")->state, BuildState::kDying);
  // A build with nothing queued or running is never abandoned.
  fake.spawner->DeliverSignals();
  EXPECT_EQ(fake.engine->GetBuild("idle")->state, BuildState::kRunning);
}

TEST(EngineAdmissionTest, ARefusalQueuesNothingAndSaysWhy) {
  EngineOptions options;
  options.jobs = 1;
  bool refuse = true;
  options.admission = [&refuse] {
    return refuse ? absl::ResourceExhaustedError("the journal is full") : absl::OkStatus();
  };
  FakeEngine fake(options);
  auto refused = fake.engine->Submit("b", {Spec({"x"}), Spec({"y"})}, Caller{});
  EXPECT_TRUE(absl::IsResourceExhausted(refused.status())) << refused.status();
  EXPECT_THAT(refused.status().message(), HasSubstr("the journal is full"));
  EXPECT_TRUE(absl::IsNotFound(fake.engine->GetBuild("b").status()));  // not even the build
  refuse = false;
  EXPECT_TRUE(fake.engine->Submit("b", {Spec({"x"})}, Caller{}).ok());
}

TEST_F(EngineTest, SnapshotAddsUp) {
  SubmitMany("a", 3);
  SubmitMany("b", 2);
  absl::StatusOr<Snapshot> all = engine().TakeSnapshot("");
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->pool.running, 2u);
  EXPECT_EQ(all->pool.queued, 3u);
  ASSERT_EQ(all->builds.size(), 2u);
  EXPECT_EQ(all->builds[0].queued + all->builds[1].queued, all->pool.queued);
  EXPECT_EQ(all->running.size(), all->pool.running);
  absl::StatusOr<Snapshot> b = engine().TakeSnapshot("b");
  ASSERT_TRUE(b.ok());
  ASSERT_EQ(b->builds.size(), 1u);
  EXPECT_EQ(b->builds[0].name, "b");
  EXPECT_TRUE(b->running.empty());  // the pool is busy with a's jobs
  EXPECT_TRUE(absl::IsNotFound(engine().TakeSnapshot("c").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(engine().TakeSnapshot("a b").status()));
}

TEST_F(EngineTest, BarrierWithNothingPendingReturnsAtOnce) {
  JobId id = Submit("b", Spec({"x"}));
  ASSERT_TRUE(spawner().Exit(id, 0));
  Answer wait;
  EXPECT_EQ(engine().WaitAsync("b", "", wait.Callback()), 0u);
  EXPECT_TRUE(wait.done());
  Answer group_wait;
  engine().WaitAsync("b", "never-used", group_wait.Callback());
  EXPECT_TRUE(group_wait.done());
}

TEST_F(EngineTest, GroupBarrierWaitsForItsGroupOnly) {
  JobId a = Submit("b", Spec({"a"}, true, "g1"));
  JobId other = Submit("b", Spec({"o"}, true, "g2"));
  Answer g1;
  engine().WaitAsync("b", "g1", g1.Callback());
  Answer all;
  engine().WaitAsync("b", "", all.Callback());
  ASSERT_TRUE(spawner().Exit(a, 0));
  EXPECT_TRUE(g1.done());
  EXPECT_FALSE(all.done());
  ASSERT_TRUE(spawner().Exit(other, 0));
  EXPECT_TRUE(all.done());
}

TEST_F(EngineTest, UncheckedFailureDoesNotFailTheBuild) {
  JobId id = Submit("b", Spec({"false"}, /*check=*/false));
  Answer wait;
  engine().WaitAsync("b", "", wait.Callback());
  ASSERT_TRUE(spawner().Exit(id, 1));
  ASSERT_TRUE(wait.done());
  EXPECT_FALSE(wait.result()->failure.has_value());
  EXPECT_EQ(wait.result()->failed, 1u);
  EXPECT_EQ(engine().GetBuild("b")->state, BuildState::kRunning);
}

// The deadlock of Go's cmd/dist, fixed in "fix deadlock when compilation command fails": a
// checked command fails inside a worker while the barrier waits behind a long queue.
TEST_F(EngineTest, FailureWithHugeQueueReleasesBarrierWithoutSpawningTheQueue) {
  constexpr int kQueued = 100'000;
  std::vector<JobId> ids = SubmitMany("b", 2 + kQueued);
  Answer wait;
  engine().WaitAsync("b", "", wait.Callback());
  ASSERT_TRUE(spawner().Output(ids[0], OutputStream::kStderr, "x.c:1: error\n"));
  ASSERT_TRUE(spawner().Exit(ids[0], 1));

  // Dying: the queue is gone at once, the other worker was told to stop, and the barrier waits
  // only for that worker.
  EXPECT_EQ(engine().Pool().queued, 0u);
  EXPECT_THAT(spawner().Signals(ids[1]), ElementsAre(SIGTERM));
  EXPECT_FALSE(wait.done());
  Answer abort;
  engine().AbortAsync("b", Reason("ci cancelled"), abort.Callback());
  EXPECT_FALSE(abort.done());

  ASSERT_EQ(spawner().DeliverSignals(), 1);
  ASSERT_TRUE(wait.done());
  ASSERT_TRUE(abort.done());
  EXPECT_EQ(spawner().started(), 2u);
  absl::StatusOr<BuildInfo> result = wait.result();
  ASSERT_TRUE(result.ok()) << result.status();
  const BuildInfo& build = *result;
  EXPECT_EQ(build.state, BuildState::kDead);
  ASSERT_TRUE(build.failure.has_value());
  EXPECT_EQ(build.failure->job->id, ids[0]);
  EXPECT_THAT(build.failure->reason, HasSubstr("exit code 1: job0"));
  EXPECT_EQ(build.failure->stderr_text, "x.c:1: error\n");
  EXPECT_EQ(build.cancelled, static_cast<uint64_t>(kQueued) + 1);  // the queue, the one stopped
  EXPECT_EQ(build.failed, 1u);
  EXPECT_EQ(OutcomeOf(ids.back()), Outcome::kCancelled);
  EXPECT_EQ(OutcomeOf(ids[1]), Outcome::kKilled);
  EXPECT_TRUE(engine().GetJob(ids[1])->result.stopped);
  EXPECT_THAT(engine().GetJob(ids[1])->result.message, HasSubstr("stopped: build b"));
}

TEST_F(EngineTest, BarrierAfterFailureWaitsForRunningJobsThenReportsIt) {
  std::vector<JobId> ids = SubmitMany("b", 3);
  ASSERT_TRUE(spawner().Exit(ids[0], 2));
  Answer wait;
  engine().WaitAsync("b", "", wait.Callback());
  EXPECT_FALSE(wait.done());               // ids[1] still runs (SIGTERM sent)
  ASSERT_TRUE(spawner().Exit(ids[1], 0));  // it ignored SIGTERM and finished
  ASSERT_TRUE(wait.done());
  EXPECT_EQ(wait.result()->failure->job->id, ids[0]);
  // Waiting on a dead build answers at once with the same failure.
  Answer again;
  engine().WaitAsync("b", "", again.Callback());
  ASSERT_TRUE(again.done());
  EXPECT_EQ(again.result()->failure->job->id, ids[0]);
}

TEST_F(EngineTest, ConcurrentAbortsAllReturnOnlyWhenNothingRuns) {
  std::vector<JobId> ids = SubmitMany("b", 10);
  Answer wait;
  engine().WaitAsync("b", "", wait.Callback());
  std::vector<std::unique_ptr<Answer>> aborts;
  for (int i = 0; i < 8; ++i) {
    aborts.push_back(std::make_unique<Answer>());
    engine().AbortAsync("b", Reason("client " + std::to_string(i)), aborts.back()->Callback());
  }
  for (auto& a : aborts) EXPECT_FALSE(a->done());
  EXPECT_THAT(spawner().Signals(ids[0]), ElementsAre(SIGTERM));  // once, not eight times
  ASSERT_TRUE(spawner().Kill(ids[0], SIGTERM));
  for (auto& a : aborts) EXPECT_FALSE(a->done());
  ASSERT_TRUE(spawner().Kill(ids[1], SIGTERM));
  for (auto& a : aborts) {
    ASSERT_EQ(a->calls(), 1);
    EXPECT_EQ(a->result()->state, BuildState::kDead);
    EXPECT_EQ(a->result()->failure->reason, "aborted: client 0");  // the first one wins
  }
  EXPECT_TRUE(wait.done());
  // And again, on the dead build: at once.
  Answer late;
  engine().AbortAsync("b", Reason("late"), late.Callback());
  EXPECT_TRUE(late.done());
  EXPECT_EQ(late.result()->failure->reason, "aborted: client 0");
}

TEST_F(EngineTest, AbortThenFailureKeepsTheAbortAsFirstFailure) {
  std::vector<JobId> ids = SubmitMany("b", 2);
  Answer abort;
  engine().AbortAsync("b", Reason("stop"), abort.Callback());
  ASSERT_TRUE(spawner().Exit(ids[0], 1));
  ASSERT_TRUE(spawner().Exit(ids[1], 1));
  ASSERT_TRUE(abort.done());
  EXPECT_EQ(abort.result()->failure->reason, "aborted: stop");
  EXPECT_FALSE(abort.result()->failure->job.has_value());
}

TEST_F(EngineTest, FailureThenAbortKeepsTheFailure) {
  std::vector<JobId> ids = SubmitMany("b", 2);
  ASSERT_TRUE(spawner().Exit(ids[0], 3));
  Answer abort;
  engine().AbortAsync("b", Reason("stop"), abort.Callback());
  EXPECT_FALSE(abort.done());
  ASSERT_TRUE(spawner().Exit(ids[1], 0));
  ASSERT_TRUE(abort.done());
  EXPECT_THAT(abort.result()->failure->reason, HasSubstr("exit code 3"));
}

TEST_F(EngineTest, SubmitRacingAbortIsRefusedWithTheFailureUntilClosed) {
  std::vector<JobId> ids = SubmitMany("b", 1);
  Answer abort;
  engine().AbortAsync("b", Reason("ci cancelled"), abort.Callback());
  auto dying = engine().Submit("b", {Spec({"x"})}, Caller{});
  EXPECT_TRUE(absl::IsFailedPrecondition(dying.status()));
  EXPECT_THAT(dying.status().message(), HasSubstr("aborted: ci cancelled"));
  EXPECT_TRUE(absl::IsFailedPrecondition(engine().Close("b")));
  ASSERT_TRUE(spawner().Kill(ids[0], SIGTERM));
  auto dead = engine().Submit("b", {Spec({"x"})}, Caller{});
  EXPECT_TRUE(absl::IsFailedPrecondition(dead.status()));
  EXPECT_THAT(dead.status().message(), HasSubstr("close it"));
  ASSERT_TRUE(engine().Close("b").ok());
  auto fresh = engine().Submit("b", {Spec({"x"})}, Caller{});
  EXPECT_TRUE(fresh.ok()) << fresh.status();
  EXPECT_EQ(engine().GetBuild("b")->state, BuildState::kRunning);
  EXPECT_TRUE(absl::IsNotFound(engine().Close("nope")));
}

TEST_F(EngineTest, AbortOfIdleBuildIsImmediate) {
  JobId id = Submit("b", Spec({"x"}));
  ASSERT_TRUE(spawner().Exit(id, 0));
  Answer abort;
  engine().AbortAsync("b", AbortOptions{}, abort.Callback());
  ASSERT_TRUE(abort.done());
  EXPECT_EQ(abort.result()->state, BuildState::kDead);
  Answer unknown;
  engine().AbortAsync("nope", AbortOptions{}, unknown.Callback());
  EXPECT_TRUE(absl::IsNotFound(unknown.result().status()));
}

TEST_F(EngineTest, DrainLetsRunningJobsFinishAndKillEscalates) {
  std::vector<JobId> ids = SubmitMany("b", 3);
  AbortOptions drain = Reason("drain", AbortMode::kDrain);
  Answer abort;
  engine().AbortAsync("b", drain, abort.Callback());
  EXPECT_THAT(spawner().Signals(ids[0]), IsEmpty());
  EXPECT_EQ(OutcomeOf(ids[2]), Outcome::kCancelled);
  ASSERT_TRUE(spawner().Exit(ids[0], 0));
  EXPECT_FALSE(abort.done());
  Answer kill;
  engine().AbortAsync("b", Reason("now"), kill.Callback());
  EXPECT_THAT(spawner().Signals(ids[1]), ElementsAre(SIGTERM));
  ASSERT_EQ(spawner().DeliverSignals(), 1);
  EXPECT_TRUE(abort.done());
  EXPECT_TRUE(kill.done());
  EXPECT_EQ(OutcomeOf(ids[0]), Outcome::kSucceeded);
}

TEST_F(EngineTest, SigkillFollowsAfterTheGracePeriod) {
  std::vector<JobId> ids = SubmitMany("b", 2);
  Answer abort;
  engine().AbortAsync("b", AbortOptions{}, abort.Callback());
  ASSERT_TRUE(spawner().Exit(ids[1], 143));  // this one obeyed SIGTERM
  clock().Advance(kGrace - absl::Milliseconds(1));
  EXPECT_THAT(spawner().Signals(ids[0]), ElementsAre(SIGTERM));
  clock().Advance(absl::Milliseconds(1));
  EXPECT_THAT(spawner().Signals(ids[0]), ElementsAre(SIGTERM, SIGKILL));
  EXPECT_FALSE(abort.done());
  ASSERT_TRUE(spawner().Kill(ids[0], SIGKILL));
  EXPECT_TRUE(abort.done());
  EXPECT_EQ(clock().pending(), 0u);
}

TEST_F(EngineTest, AbortGraceOverridesTheDefault) {
  std::vector<JobId> ids = SubmitMany("b", 1);
  AbortOptions options = Reason("quick");
  options.grace = absl::Seconds(1);
  Answer abort;
  engine().AbortAsync("b", options, abort.Callback());
  clock().Advance(absl::Seconds(1));
  EXPECT_THAT(spawner().Signals(ids[0]), ElementsAre(SIGTERM, SIGKILL));
}

TEST_F(EngineTest, TimeoutStopsTheJobAndFailsTheBuildWith124) {
  JobSpec spec = Spec({"slow"});
  spec.timeout = absl::Seconds(10);
  JobId id = Submit("b", spec);
  JobId other = Submit("b", Spec({"other"}));
  clock().Advance(absl::Seconds(9));
  EXPECT_THAT(spawner().Signals(id), IsEmpty());
  clock().Advance(absl::Seconds(1));
  EXPECT_THAT(spawner().Signals(id), ElementsAre(SIGTERM));
  EXPECT_THAT(spawner().Signals(other), IsEmpty());
  ASSERT_TRUE(spawner().Kill(id, SIGTERM));
  auto job = engine().GetJob(id);
  EXPECT_EQ(job->result.outcome, Outcome::kTimedOut);
  EXPECT_EQ(job->result.signal, SIGTERM);
  EXPECT_EQ(job->result.exit_code, -1);
  EXPECT_FALSE(job->result.stopped);
  EXPECT_EQ(engine().GetBuild("b")->state, BuildState::kDying);
  EXPECT_THAT(spawner().Signals(other), ElementsAre(SIGTERM));
}

TEST_F(EngineTest, TimeoutTimerOfAFinishedJobDoesNothing) {
  JobSpec spec = Spec({"quick"});
  spec.timeout = absl::Seconds(10);
  JobId id = Submit("b", spec);
  ASSERT_TRUE(spawner().Exit(id, 0));
  JobId next = Submit("b", Spec({"next"}));
  clock().Advance(absl::Seconds(20));
  EXPECT_THAT(spawner().Signals(next), IsEmpty());
  EXPECT_EQ(OutcomeOf(id), Outcome::kSucceeded);
}

TEST_F(EngineTest, SpawnFailuresBecome127And126AndFailTheBuild) {
  spawner().FailStart("missing", absl::NotFoundError("program not found: missing"));
  spawner().FailStart("noexec", absl::PermissionDeniedError("permission denied"));
  JobId missing = Submit("b1", Spec({"missing"}));
  auto job = engine().GetJob(missing);
  EXPECT_EQ(job->result.outcome, Outcome::kCannotStart);
  EXPECT_TRUE(job->result.program_not_found);
  EXPECT_THAT(job->result.message, HasSubstr("program not found"));
  EXPECT_EQ(engine().GetBuild("b1")->state, BuildState::kDead);
  EXPECT_THAT(engine().GetBuild("b1")->failure->reason, HasSubstr("could not start"));

  JobId noexec = Submit("b2", Spec({"noexec"}, /*check=*/false));
  EXPECT_EQ(engine().GetJob(noexec)->result.outcome, Outcome::kCannotStart);
  EXPECT_FALSE(engine().GetJob(noexec)->result.program_not_found);
  EXPECT_EQ(engine().GetBuild("b2")->state, BuildState::kRunning);
}

TEST_F(EngineTest, CancelJobNeverFailsTheBuild) {
  std::vector<JobId> ids = SubmitMany("b", 3);
  ASSERT_TRUE(engine().CancelJob(ids[2]).ok());
  EXPECT_EQ(OutcomeOf(ids[2]), Outcome::kCancelled);
  ASSERT_TRUE(engine().CancelJob(ids[0]).ok());
  EXPECT_THAT(spawner().Signals(ids[0]), ElementsAre(SIGTERM));
  ASSERT_TRUE(spawner().Kill(ids[0], SIGTERM));
  EXPECT_EQ(OutcomeOf(ids[0]), Outcome::kKilled);
  EXPECT_EQ(engine().GetBuild("b")->state, BuildState::kRunning);
  EXPECT_TRUE(engine().CancelJob(ids[0]).ok());  // already finished: fine
  EXPECT_TRUE(absl::IsNotFound(engine().CancelJob(999999)));
  EXPECT_EQ(engine().Pool().queued, 0u);
}

TEST_F(EngineTest1, NewBuildIsNotStarvedByALongQueue) {
  std::vector<JobId> a = SubmitMany("a", 1000);
  JobId b = Submit("b", Spec({"b"}));
  ASSERT_TRUE(spawner().Exit(a[0], 0));
  EXPECT_THAT(spawner().Running(), ElementsAre(b));
  ASSERT_TRUE(spawner().Exit(b, 0));
  EXPECT_THAT(spawner().Running(), ElementsAre(a[1]));
}

TEST_F(EngineTest1, BuildsWithQueuesAlternate) {
  std::vector<JobId> a = SubmitMany("a", 3);
  std::vector<JobId> b = SubmitMany("b", 3);
  std::vector<JobId> order;
  while (!spawner().Running().empty()) {
    JobId id = spawner().Running().front();
    order.push_back(id);
    ASSERT_TRUE(spawner().Exit(id, 0));
  }
  EXPECT_THAT(order, ElementsAre(a[0], b[0], a[1], b[1], a[2], b[2]));
}

TEST_F(EngineTest, BadBatchQueuesNothing) {
  std::vector<JobSpec> specs = {Spec({"ok"}), Spec({}), Spec({"ok"})};
  auto ids = engine().Submit("b", specs, Caller{});
  EXPECT_TRUE(absl::IsInvalidArgument(ids.status()));
  EXPECT_THAT(ids.status().message(), HasSubstr("command 2: empty command"));
  // Which command, for a client that can name it better (a batch file's line).
  EXPECT_EQ(ids.status().GetPayload(kCommandPayload), absl::Cord("2"));
  EXPECT_EQ(spawner().started(), 0u);
  EXPECT_EQ(engine().Pool().queued, 0u);
  EXPECT_TRUE(absl::IsNotFound(engine().GetBuild("b").status()));
  EXPECT_TRUE(
      absl::IsInvalidArgument(engine().Submit("bad name", {Spec({"x"})}, Caller{}).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(engine().Submit("b", {}, Caller{}).status()));
}

TEST(EngineLimitsTest, FullQueueRefusesTheWholeRequest) {
  EngineOptions options;
  options.jobs = 1;
  options.limits.max_queued_jobs = 10;
  FakeEngine fake(options);
  std::vector<JobSpec> specs(8, Spec({"x"}));
  ASSERT_TRUE(fake.engine->Submit("b", specs, Caller{}).ok());  // one runs, seven queue
  auto refused = fake.engine->Submit("b", std::vector<JobSpec>(4, Spec({"x"})), Caller{});
  EXPECT_TRUE(absl::IsResourceExhausted(refused.status()));
  EXPECT_THAT(refused.status().message(), HasSubstr("queue is full"));
  EXPECT_EQ(fake.engine->Pool().queued, 7u);
  EXPECT_TRUE(fake.engine->Submit("b", std::vector<JobSpec>(3, Spec({"x"})), Caller{}).ok());
}

TEST(EngineLimitsTest, OldFinishedJobsAreForgotten) {
  EngineOptions options;
  options.jobs = 4;
  options.max_finished_jobs = 3;
  FakeEngine fake(options);
  std::vector<JobId> ids;
  for (int i = 0; i < 6; ++i) {
    ids.push_back(fake.engine->Submit("b", {Spec({"x"})}, Caller{})->front());
    ASSERT_TRUE(fake.spawner->Exit(ids.back(), 0));
  }
  EXPECT_TRUE(absl::IsNotFound(fake.engine->GetJob(ids[0]).status()));
  EXPECT_TRUE(fake.engine->GetJob(ids[5]).ok());
}

TEST(EngineLimitsTest, KeptOutputHasOneBudgetOldestFinishedDroppedFirst) {
  EngineOptions options;
  options.jobs = 4;
  options.output_head_bytes = 1000;
  options.output_tail_bytes = 0;
  options.max_output_bytes = 3500;  // three jobs' 1000 bytes, not four
  FakeEngine fake(options);
  const std::string kilo(1000, 'x');
  auto run = [&](const std::string& build, bool finish) {
    JobId id = fake.engine->Submit(build, {Spec({"x"})}, Caller{})->front();
    EXPECT_TRUE(fake.spawner->Output(id, OutputStream::kStdout, kilo));
    if (finish) {
      EXPECT_TRUE(fake.spawner->Exit(id, 0));
    }
    return id;
  };
  auto text = [&](JobId id) { return fake.engine->GetJobOutput(id)->stdout_text; };
  std::vector<JobId> ids;
  for (int i = 0; i < 4; ++i) ids.push_back(run("b", true));
  EXPECT_EQ(text(ids[0]), "[output dropped: over the memory budget]\n");
  EXPECT_EQ(fake.engine->GetJobOutput(ids[0])->stdout_bytes, 1000u);  // still counted
  for (int i = 1; i < 4; ++i) EXPECT_EQ(text(ids[i]), kilo) << i;
  // A running job keeps its output; the oldest finished one makes room.
  JobId running = run("b", false);
  EXPECT_EQ(text(running), kilo);
  EXPECT_EQ(text(ids[1]), "[output dropped: over the memory budget]\n");
  EXPECT_EQ(text(ids[2]), kilo);
  EXPECT_TRUE(fake.spawner->Exit(running, 0));
  // Closing a build frees its jobs' output at once, and says so; another build's stays.
  JobId other = run("c", true);
  ASSERT_TRUE(fake.engine->Close("b").ok());
  EXPECT_EQ(text(ids[3]), "[output dropped: its build was closed]\n");
  EXPECT_EQ(text(running), "[output dropped: its build was closed]\n");
  EXPECT_EQ(text(other), kilo);
  // With the room that gave, new output is kept again.
  JobId later = run("c", true);
  EXPECT_EQ(text(later), kilo);
  EXPECT_EQ(text(other), kilo);
}

TEST_F(EngineTest, WaitErrorsAndCancellation) {
  Answer unknown;
  EXPECT_EQ(engine().WaitAsync("nope", "", unknown.Callback()), 0u);
  EXPECT_TRUE(absl::IsNotFound(unknown.result().status()));
  Answer invalid;
  engine().WaitAsync(std::string(1 << 20, ' '), "", invalid.Callback());
  EXPECT_TRUE(absl::IsInvalidArgument(invalid.result().status()));
  EXPECT_LT(invalid.result().status().message().size(), 200u);  // not the name echoed whole
  SubmitMany("b", 1);
  Answer wait;
  WaiterId id = engine().WaitAsync("b", "", wait.Callback());
  ASSERT_NE(id, 0u);
  engine().CancelWaiter(id);
  ASSERT_EQ(wait.calls(), 1);
  EXPECT_TRUE(absl::IsCancelled(wait.result().status()));
  engine().CancelWaiter(id);  // twice: no second answer
  EXPECT_EQ(wait.calls(), 1);
}

class Recorder : public EngineObserver {
 public:
  void OnJobsQueued(absl::Span<const JobInfo> jobs) override {
    Add("queued:" + std::to_string(jobs.size()), jobs.front().id);
  }
  void OnJobStarted(const JobInfo& job) override { Add("started", job.id); }
  void OnJobOutput(JobId id, OutputStream, absl::string_view data) override {
    Add("output:" + std::string(data), id);
  }
  void OnJobFinished(const JobInfo& job) override {
    Add(std::string("finished:") + OutcomeName(job.result.outcome), job.id);
  }
  void OnJobsCancelled(absl::string_view, absl::Span<const JobId> ids) override {
    Add("cancelled:" + std::to_string(ids.size()), ids.front());
  }
  void OnBuildDying(const BuildInfo&) override { Add("dying", 0); }
  void OnBuildDead(const BuildInfo&) override { Add("dead", 0); }
  void OnBuildClosed(absl::string_view) override { Add("closed", 0); }

  std::vector<std::string> events;

 private:
  void Add(const std::string& what, JobId id) { events.push_back(what + "@" + std::to_string(id)); }
};

TEST_F(EngineTest1, ObserversSeeEveryChangeInOrder) {
  Recorder recorder;
  engine().AddObserver(&recorder);
  std::vector<JobId> ids = SubmitMany("b", 3);
  ASSERT_TRUE(spawner().Output(ids[0], OutputStream::kStdout, "hi"));
  ASSERT_TRUE(spawner().Exit(ids[0], 0));
  ASSERT_TRUE(spawner().Exit(ids[1], 1));
  // The queued job's record is finished by the sweep, a task on the clock: after the dying
  // step, here even after the build is dead.
  clock().Advance(absl::ZeroDuration());
  EXPECT_THAT(recorder.events,
              ElementsAre("queued:3@1", "started@1", "output:hi@1", "finished:succeeded@1",
                          "started@2", "finished:failed@2", "dying@0", "dead@0",
                          "cancelled:1@3"));  // by the sweep, not by a Close
  ASSERT_TRUE(engine().Close("b").ok());
  engine().RemoveObserver(&recorder);
  EXPECT_EQ(recorder.events.back(), "closed@0");
}

class OutputCollector : public JobWatcher {
 public:
  void OnJobStarted(const JobInfo&) override { started = true; }
  void OnJobOutput(JobId, OutputStream stream, absl::string_view data) override {
    (stream == OutputStream::kStdout ? out : err) += std::string(data);
  }
  void OnJobFinished(const JobInfo& job) override {
    outcome = job.result.outcome;
    ++finished;
  }
  bool started = false;
  std::string out, err;
  Outcome outcome = Outcome::kNone;
  int finished = 0;
};

TEST_F(EngineTest, ViewsWithoutOutputKeepTheFailureButNotWhatItPrinted) {
  JobId id = Submit("b", Spec({"cc"}));
  ASSERT_TRUE(spawner().Output(id, OutputStream::kStderr, "x.c: error\n"));
  ASSERT_TRUE(spawner().Exit(id, 1));
  std::vector<BuildInfo> full = engine().ListBuilds();
  std::vector<BuildInfo> bare = engine().ListBuilds(/*with_output=*/false);
  ASSERT_EQ(full.size(), 1u);
  ASSERT_EQ(bare.size(), 1u);
  ASSERT_TRUE(full[0].failure.has_value());
  ASSERT_TRUE(bare[0].failure.has_value());
  EXPECT_EQ(full[0].failure->stderr_text, "x.c: error\n");
  EXPECT_EQ(bare[0].failure->stderr_text, "");
  EXPECT_EQ(bare[0].failure->reason, full[0].failure->reason);
  ASSERT_TRUE(bare[0].failure->job.has_value());
  EXPECT_EQ(bare[0].failure->job->id, id);
  absl::StatusOr<Snapshot> snapshot = engine().TakeSnapshot("", /*with_output=*/false);
  ASSERT_TRUE(snapshot.ok());
  EXPECT_EQ(snapshot->builds[0].failure->stderr_text, "");
  EXPECT_EQ(engine().TakeSnapshot("b")->builds[0].failure->stderr_text, "x.c: error\n");
}

TEST_F(EngineTest, WatchersGetLiveOutputAndLateWatchersMissNothing) {
  OutputCollector first;
  auto ids = engine().Submit("b", {Spec({"x"})}, Caller{}, &first);
  ASSERT_TRUE(ids.ok());
  JobId id = ids->front();
  EXPECT_TRUE(first.started);
  ASSERT_TRUE(spawner().Output(id, OutputStream::kStdout, "one "));
  ASSERT_TRUE(spawner().Output(id, OutputStream::kStderr, "warn"));
  OutputCollector late;
  auto snapshot = engine().WatchJob(id, &late);
  ASSERT_TRUE(snapshot.ok());
  EXPECT_EQ(snapshot->stdout_text, "one ");
  EXPECT_EQ(snapshot->stderr_text, "warn");
  ASSERT_TRUE(spawner().Output(id, OutputStream::kStdout, "two"));
  ASSERT_TRUE(spawner().Exit(id, 0));
  EXPECT_EQ(first.out, "one two");
  EXPECT_EQ(first.err, "warn");
  EXPECT_EQ(snapshot->stdout_text + late.out, "one two");
  EXPECT_EQ(late.outcome, Outcome::kSucceeded);
  auto output = engine().GetJobOutput(id);
  EXPECT_EQ(output->stdout_text, "one two");
  EXPECT_EQ(output->stdout_bytes, 7u);
}

class SlowWatcher : public JobWatcher {
 public:
  bool Backlogged() override { return full; }
  bool full = false;
};

TEST_F(EngineTest, BackloggedWatchersHoldTheOutputBackUntilAllCaughtUp) {
  SlowWatcher slow, slower;
  JobId id = Submit("b", Spec({"x"}));
  ASSERT_TRUE(engine().WatchJob(id, &slow).ok());
  ASSERT_TRUE(engine().WatchJob(id, &slower).ok());
  ASSERT_TRUE(spawner().Output(id, OutputStream::kStdout, "a"));
  EXPECT_FALSE(spawner().OutputPaused(id));
  slow.full = slower.full = true;
  ASSERT_TRUE(spawner().Output(id, OutputStream::kStdout, "b"));
  EXPECT_TRUE(spawner().OutputPaused(id));
  engine().ResumeOutput(id, &slow);
  EXPECT_TRUE(spawner().OutputPaused(id));  // `slower` still holds it
  engine().Unwatch(id, &slower);            // a watcher that leaves lets go too
  EXPECT_FALSE(spawner().OutputPaused(id));
  ASSERT_TRUE(spawner().Exit(id, 0));
  engine().ResumeOutput(id, &slow);  // after the end: harmless
  EXPECT_EQ(engine().GetJobOutput(id)->stdout_text, "ab");
}

TEST_F(EngineTest, QueuedWatcherHearsOfItsCancellation) {
  std::vector<JobId> ids = SubmitMany("b", 2);
  OutputCollector watcher;
  auto queued = engine().Submit("b", {Spec({"q"})}, Caller{}, &watcher);
  ASSERT_TRUE(queued.ok());
  ASSERT_TRUE(spawner().Exit(ids[0], 1));
  EXPECT_EQ(watcher.outcome, Outcome::kCancelled);
  EXPECT_FALSE(watcher.started);
}

// A pipe whose write end a job's OutputTargets own, so that the test can tell whether anyone
// still holds that end.
class TargetEnd {
 public:
  TargetEnd() {
    int fds[2];
    EXPECT_EQ(pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
    read_fd_ = fds[0];
    write_fd_ = fds[1];
  }
  ~TargetEnd() {
    close(read_fd_);
    if (write_fd_ >= 0) close(write_fd_);
  }
  std::shared_ptr<const OutputTargets> StdoutTarget() {
    return std::make_shared<OutputTargets>(std::exchange(write_fd_, -1), -1);
  }
  // EOF: no write end is open anywhere (nothing is written to it in these tests).
  bool Closed() const {
    char c;
    return read(read_fd_, &c, 1) == 0;
  }

 private:
  int read_fd_ = -1;
  int write_fd_ = -1;
};

// A foreground job's client: notes whether the job's targets were closed by the time it
// hears that the job ended (a reader of them must see EOF before the client exits).
class ClientWatcher : public OutputCollector {
 public:
  explicit ClientWatcher(const TargetEnd* target) : target_(target) {}
  void OnJobFinished(const JobInfo& job) override {
    closed_when_finished = target_->Closed();
    OutputCollector::OnJobFinished(job);
  }
  bool closed_when_finished = false;

 private:
  const TargetEnd* target_;
};

class ForwardingTest : public EngineTest {
 protected:
  // A foreground job whose stdout goes to `target`, submitted by `client`.
  JobId SubmitForwarded(TargetEnd& target, ClientWatcher& client) {
    JobSpec spec = Spec({"fg"});
    spec.background = false;
    spec.targets = target.StdoutTarget();
    std::vector<JobSpec> specs;
    specs.push_back(std::move(spec));
    auto ids = engine().Submit("b", std::move(specs), Caller{}, &client);
    EXPECT_TRUE(ids.ok()) << ids.status();
    return ids.ok() ? ids->front() : 0;
  }
};

TEST_F(ForwardingTest, ForwardedOutputSkipsOnlyItsClientAndIsStillKept) {
  TargetEnd target;
  ClientWatcher client(&target);
  const JobId id = SubmitForwarded(target, client);
  EXPECT_TRUE(spawner().Forwarding(id));
  EXPECT_FALSE(target.Closed());  // the spawner holds it while the job runs
  OutputCollector follower;       // `distctl logs --follow`
  ASSERT_TRUE(engine().WatchJob(id, &follower).ok());
  ASSERT_TRUE(spawner().Output(id, OutputStream::kStdout, "forwarded"));
  ASSERT_TRUE(spawner().Output(id, OutputStream::kStderr, "sent"));
  ASSERT_TRUE(spawner().Exit(id, 0));
  EXPECT_EQ(client.out, "");  // it has that output already, from the target
  EXPECT_EQ(client.err, "sent");
  EXPECT_EQ(follower.out, "forwarded");
  EXPECT_EQ(follower.err, "sent");
  EXPECT_EQ(engine().GetJobOutput(id)->stdout_text, "forwarded");
  EXPECT_EQ(client.outcome, Outcome::kSucceeded);
  EXPECT_TRUE(client.closed_when_finished);
}

TEST_F(ForwardingTest, ACtrlCKeepsForwardingWhatTheStoppingJobPrintsUntilTheKill) {
  TargetEnd target;
  ClientWatcher client(&target);
  const JobId id = SubmitForwarded(target, client);
  ASSERT_TRUE(engine().CancelJob(id).ok());  // distctl's Ctrl-C: it reads on to the result
  EXPECT_THAT(spawner().Signals(id), ElementsAre(SIGTERM));
  EXPECT_TRUE(spawner().Forwarding(id));  // "Interrupted" still reaches the terminal
  // A job that outlives the grace is killed, and a target that nobody reads (which may be
  // what keeps it from ending) is given up: the end of a killed job is always reported.
  clock().Advance(kGrace);
  EXPECT_THAT(spawner().Signals(id), ElementsAre(SIGTERM, SIGKILL));
  EXPECT_FALSE(spawner().Forwarding(id));
  EXPECT_TRUE(target.Closed());
  EXPECT_EQ(spawner().DeliverSignals(), 1);
  EXPECT_EQ(client.outcome, Outcome::kKilled);
}

TEST_F(ForwardingTest, AClientThatIsGoneGetsNothingMoreWritten) {
  TargetEnd target;
  ClientWatcher client(&target);
  const JobId id = SubmitForwarded(target, client);
  ASSERT_TRUE(engine().CancelJob(id, /*client_gone=*/true).ok());
  EXPECT_FALSE(spawner().Forwarding(id));
  EXPECT_TRUE(target.Closed());
  EXPECT_EQ(spawner().DeliverSignals(), 1);
}

TEST_F(ForwardingTest, AnAbortGivesUpTheTargetsOfTheJobsItKills) {
  TargetEnd target;
  ClientWatcher client(&target);
  const JobId id = SubmitForwarded(target, client);
  Answer abort;
  engine().AbortAsync("b", Reason("stop"), abort.Callback());
  EXPECT_TRUE(spawner().Forwarding(id));
  clock().Advance(kGrace);
  EXPECT_FALSE(spawner().Forwarding(id));  // so that the abort can come back
  EXPECT_EQ(spawner().DeliverSignals(), 1);
  EXPECT_TRUE(abort.done());
}

TEST_F(ForwardingTest, AClientThatLeavesStopsTheForwarding) {
  TargetEnd target;
  ClientWatcher client(&target);
  const JobId id = SubmitForwarded(target, client);
  engine().Unwatch(id, &client);
  EXPECT_FALSE(spawner().Forwarding(id));
  ASSERT_TRUE(spawner().Exit(id, 0));
}

TEST_F(ForwardingTest, AQueuedJobLetsGoOfItsTargetsWhenItEnds) {
  std::vector<JobId> ids = SubmitMany("b", 2);  // the pool is full
  TargetEnd cancelled_target, doomed_target;
  ClientWatcher cancelled(&cancelled_target), doomed(&doomed_target);
  const JobId first = SubmitForwarded(cancelled_target, cancelled);
  SubmitForwarded(doomed_target, doomed);
  EXPECT_FALSE(cancelled_target.Closed());  // held while queued
  ASSERT_TRUE(engine().CancelJob(first).ok());
  EXPECT_EQ(cancelled.outcome, Outcome::kCancelled);
  EXPECT_TRUE(cancelled.closed_when_finished);
  ASSERT_TRUE(spawner().Exit(ids[0], 1));  // the build dies with the other one queued
  EXPECT_EQ(doomed.outcome, Outcome::kCancelled);
  EXPECT_TRUE(doomed.closed_when_finished);
}

TEST_F(EngineTest, ShutdownStopsEverythingAndRefusesNewJobs) {
  std::vector<JobId> ids = SubmitMany("a", 1);
  SubmitMany("b", 3);
  std::thread stopper([&] { engine().Shutdown("bye"); });
  // Shutdown blocks until the processes die; deliver their signals as they arrive.
  while (engine().Pool().running > 0) {
    spawner().DeliverSignals();
    absl::SleepFor(absl::Milliseconds(1));
  }
  stopper.join();
  EXPECT_EQ(engine().GetBuild("a")->state, BuildState::kDead);
  EXPECT_EQ(engine().GetBuild("b")->state, BuildState::kDead);
  EXPECT_TRUE(absl::IsUnavailable(engine().Submit("c", {Spec({"x"})}, Caller{}).status()));
}

// Lazy cancellation (the notes in sweep.cc): the dying step detaches the queue, and the sweep
// finishes its records later. Each test below forces one order of the sweep and something else.

// Collects what OnJobsCancelled reported, to check that each job is reported exactly once.
class CancelLedger : public EngineObserver {
 public:
  void OnJobsCancelled(absl::string_view build, absl::Span<const JobId> ids) override {
    chunks.push_back(ids.size());
    for (JobId id : ids) ++reports[id];
    builds.insert(std::string(build));
  }
  void OnBuildDying(const BuildInfo&) override { order.push_back("dying"); }
  void OnBuildClosed(absl::string_view) override {
    order.push_back("closed after " + std::to_string(chunks.size()) + " reports");
  }
  // True if every id in `ids` was reported exactly once, and nothing else.
  bool EachOnce(const std::vector<JobId>& ids) const {
    if (reports.size() != ids.size()) return false;
    for (JobId id : ids) {
      auto it = reports.find(id);
      if (it == reports.end() || it->second != 1) return false;
    }
    return true;
  }
  size_t reported() const { return reports.size(); }

  std::vector<size_t> chunks;
  std::map<JobId, int> reports;
  std::set<std::string> builds;
  std::vector<std::string> order;
};

class LazyCancelTest : public EngineTest {
 protected:
  // Two running, `n` queued behind them, then an abort, while the clock's thread lags: the
  // sweep is due but has not run. Returns the queued ids.
  std::vector<JobId> AbortWithQueue(int n) {
    engine().AddObserver(&ledger_);
    std::vector<JobId> ids = SubmitMany("b", 2 + n);
    died_at_ = clock().Now();
    Answer abort;
    engine().AbortAsync("b", Reason("stop"), abort.Callback());
    EXPECT_EQ(spawner().DeliverSignals(), 2);
    EXPECT_TRUE(abort.done());
    EXPECT_EQ(abort.result()->state, BuildState::kDead);
    clock().Lag(absl::Seconds(7));  // a sweep that used Now() would be seen
    EXPECT_EQ(ledger_.reported(), 0u);
    return std::vector<JobId>(ids.begin() + 2, ids.end());
  }
  void TearDown() override { engine().RemoveObserver(&ledger_); }

  void ExpectCancelledByTheBuild(const JobInfo& job) {
    EXPECT_EQ(job.state, JobState::kFinished);
    EXPECT_EQ(job.result.outcome, Outcome::kCancelled);
    EXPECT_EQ(job.result.exit_code, -1);
    EXPECT_FALSE(job.result.stopped);
    EXPECT_EQ(job.result.message, "cancelled: the build was stopped before the job started");
    EXPECT_EQ(job.started_at, absl::InfinitePast());
    EXPECT_EQ(job.ended_at, died_at_);  // the dying time, not the time of the lookup or sweep
    EXPECT_EQ(job.build, "b");
  }

  CancelLedger ledger_;
  absl::Time died_at_;
};

// The daemon delays the sweep (EngineOptions::sweep_delay) so that it does not compete with
// the abort's own answer: nothing is swept before the delay, everything after it, and a
// lookup meanwhile still sees the job cancelled.
TEST(SweepDelayTest, TheSweepWaitsForTheDelayAndLookupsDoNot) {
  EngineOptions options;
  options.jobs = 1;
  options.sweep_delay = absl::Milliseconds(100);
  FakeEngine fake(options);
  CancelLedger ledger;
  fake.engine->AddObserver(&ledger);
  std::vector<JobSpec> specs(5, Spec({"x"}));
  auto ids = fake.engine->Submit("b", std::move(specs), Caller{});
  ASSERT_TRUE(ids.ok()) << ids.status();
  Answer abort;
  fake.engine->AbortAsync("b", Reason("stop"), abort.Callback());
  fake.spawner->DeliverSignals();
  ASSERT_TRUE(abort.done());
  fake.clock->Advance(absl::Milliseconds(99));
  EXPECT_TRUE(ledger.reports.empty());
  EXPECT_EQ(fake.engine->GetJob((*ids)[1])->result.outcome, Outcome::kCancelled);
  EXPECT_EQ(ledger.reports.size(), 1u);  // the lookup finished that one
  fake.clock->Advance(absl::Milliseconds(1));
  EXPECT_TRUE(ledger.EachOnce({(*ids)[1], (*ids)[2], (*ids)[3], (*ids)[4]}));
  fake.engine->RemoveObserver(&ledger);
}

TEST_F(LazyCancelTest, TheDyingStepCountsTheWholeQueueAtOnce) {
  std::vector<JobId> queued = AbortWithQueue(100);
  EXPECT_EQ(engine().Pool().queued, 0u);
  BuildInfo build = *engine().GetBuild("b");
  EXPECT_EQ(build.queued, 0u);
  EXPECT_EQ(build.cancelled, 102u);  // the queue and the two stopped
  EXPECT_EQ(build.submitted, 102u);
  EXPECT_EQ(spawner().started(), 2u);
  clock().Advance(absl::ZeroDuration());
  EXPECT_TRUE(ledger_.EachOnce(queued));
  EXPECT_EQ(engine().GetBuild("b")->cancelled, 102u);
  EXPECT_EQ(spawner().started(), 2u);
  ExpectCancelledByTheBuild(*engine().GetJob(queued.back()));
}

TEST_F(LazyCancelTest, GetJobOfADoomedJobBeforeTheSweepSeesItCancelled) {
  std::vector<JobId> queued = AbortWithQueue(10);
  absl::StatusOr<JobInfo> job = engine().GetJob(queued[4]);
  ASSERT_TRUE(job.ok()) << job.status();
  ExpectCancelledByTheBuild(*job);
  // Resolved on the spot, and reported then: once.
  EXPECT_THAT(ledger_.chunks, ElementsAre(1u));
  EXPECT_EQ(ledger_.reports[queued[4]], 1);
  absl::StatusOr<JobOutput> output = engine().GetJobOutput(queued[5]);
  ASSERT_TRUE(output.ok()) << output.status();
  ExpectCancelledByTheBuild(output->job);
  EXPECT_EQ(output->stdout_text, "");
  clock().Advance(absl::ZeroDuration());  // the sweep skips both
  EXPECT_THAT(ledger_.chunks, ElementsAre(1u, 1u, 8u));
  EXPECT_TRUE(ledger_.EachOnce(queued));
  for (JobId id : queued) ExpectCancelledByTheBuild(*engine().GetJob(id));
  EXPECT_EQ(engine().GetBuild("b")->cancelled, 12u);
}

TEST_F(LazyCancelTest, CancelJobOfADoomedJobBeforeTheSweepIsOkAndCountsItOnce) {
  std::vector<JobId> queued = AbortWithQueue(10);
  EXPECT_TRUE(engine().CancelJob(queued[0]).ok());  // already cancelled by the build: fine
  ExpectCancelledByTheBuild(*engine().GetJob(queued[0]));
  EXPECT_EQ(engine().GetBuild("b")->cancelled, 12u);
  clock().Advance(absl::ZeroDuration());
  EXPECT_TRUE(ledger_.EachOnce(queued));
  EXPECT_EQ(engine().GetBuild("b")->cancelled, 12u);
  EXPECT_EQ(engine().Pool().queued, 0u);
}

TEST_F(LazyCancelTest, WatchJobOfADoomedJobAnswersItFinishedWithoutAttaching) {
  std::vector<JobId> queued = AbortWithQueue(10);
  OutputCollector watcher;
  absl::StatusOr<JobOutput> snapshot = engine().WatchJob(queued[9], &watcher);
  ASSERT_TRUE(snapshot.ok()) << snapshot.status();
  ExpectCancelledByTheBuild(snapshot->job);
  clock().Advance(absl::ZeroDuration());
  // Finished before the call, so never attached: the sweep does not call it either.
  EXPECT_EQ(watcher.outcome, Outcome::kNone);
  EXPECT_TRUE(ledger_.EachOnce(queued));
  engine().Unwatch(queued[9], &watcher);  // harmless
}

TEST_F(LazyCancelTest, QueuedWatchersAreToldInTheDyingStep) {
  engine().AddObserver(&ledger_);
  std::vector<JobId> ids = SubmitMany("b", 2 + 100);  // 2 run, 100 queue
  OutputCollector foreground, follower, gone;
  JobSpec spec = Spec({"fg"});
  spec.background = false;
  auto fg = engine().Submit("b", {spec}, Caller{}, &foreground);  // a `distctl run` waiting
  ASSERT_TRUE(fg.ok());
  ASSERT_TRUE(engine().WatchJob(ids[50], &follower).ok());  // `logs --follow` of a queued job
  ASSERT_TRUE(engine().WatchJob(ids[60], &gone).ok());
  engine().Unwatch(ids[60], &gone);  // its client went away
  // A watched job that starts before the abort is stopped, not cancelled.
  OutputCollector runner;
  ASSERT_TRUE(engine().WatchJob(ids[2], &runner).ok());
  ASSERT_TRUE(spawner().Exit(ids[0], 0));
  EXPECT_TRUE(runner.started);
  const absl::Time died_at = clock().Now();

  Answer abort;
  engine().AbortAsync("b", Reason("stop"), abort.Callback());
  // Told now, with no help from the clock.
  EXPECT_EQ(foreground.outcome, Outcome::kCancelled);
  EXPECT_FALSE(foreground.started);
  EXPECT_EQ(follower.outcome, Outcome::kCancelled);
  EXPECT_EQ(gone.outcome, Outcome::kNone);
  EXPECT_EQ(runner.outcome, Outcome::kNone);
  EXPECT_THAT(spawner().Signals(ids[2]), ElementsAre(SIGTERM));
  // And reported to observers in the same step, before the build's dying event.
  EXPECT_THAT(ledger_.chunks, ElementsAre(2u));
  EXPECT_EQ(ledger_.reports[fg->front()], 1);
  EXPECT_EQ(ledger_.reports[ids[50]], 1);
  EXPECT_THAT(ledger_.order, ElementsAre("dying"));
  EXPECT_EQ(engine().GetJob(fg->front())->ended_at, died_at);

  ASSERT_EQ(spawner().DeliverSignals(), 2);
  EXPECT_TRUE(abort.done());
  EXPECT_EQ(runner.outcome, Outcome::kKilled);
  clock().Lag(absl::Milliseconds(5));  // the sweep runs late: its records keep the dying time
  clock().Advance(absl::Seconds(1));
  std::vector<JobId> cancelled(ids.begin() + 3, ids.end());
  cancelled.push_back(fg->front());
  EXPECT_TRUE(ledger_.EachOnce(cancelled));
  EXPECT_EQ(foreground.finished, 1);  // not again by the sweep
  EXPECT_EQ(follower.finished, 1);
  EXPECT_EQ(engine().GetJob(ids[60])->ended_at, died_at);
  EXPECT_EQ(engine().GetBuild("b")->cancelled, 99u + 1 + 2);  // the queue, fg, the two stopped
}

TEST_F(LazyCancelTest, CloseBeforeTheSweepFinishesEveryRecordFirst) {
  std::vector<JobId> queued = AbortWithQueue(5000);
  ASSERT_TRUE(clock().RunOneDue());  // one chunk swept, the rest not yet
  ASSERT_LT(ledger_.reported(), queued.size());
  ASSERT_TRUE(engine().Close("b").ok());
  EXPECT_TRUE(ledger_.EachOnce(queued));
  ASSERT_EQ(ledger_.order.size(), 2u);
  EXPECT_EQ(ledger_.order[1], "closed after " + std::to_string(ledger_.chunks.size()) + " reports");
  // The name is free, the records stay (for logs), each finished and still naming the build.
  EXPECT_TRUE(absl::IsNotFound(engine().GetBuild("b").status()));
  ExpectCancelledByTheBuild(*engine().GetJob(queued.back()));
  // The sweep that was due finds nothing left to do.
  const size_t chunks = ledger_.chunks.size();
  clock().Advance(absl::Seconds(1));
  EXPECT_EQ(ledger_.chunks.size(), chunks);
  EXPECT_EQ(clock().pending(), 0u);
}

// Nothing queued, but the barrier holds the ids of jobs that finished behind a long one: the
// sweep has the barrier to free, and Close must take the build off the sweep's list.
TEST_F(LazyCancelTest, CloseBeforeTheSweepOfABuildWithoutAQueue) {
  engine().AddObserver(&ledger_);
  std::vector<JobId> ids = SubmitMany("b", 200);
  for (size_t i = 1; i < ids.size(); ++i) ASSERT_TRUE(spawner().Exit(ids[i], 0));
  EXPECT_EQ(engine().GetBuild("b")->queued, 0u);
  Answer abort;
  engine().AbortAsync("b", Reason("stop"), abort.Callback());
  ASSERT_EQ(spawner().DeliverSignals(), 1);
  ASSERT_TRUE(abort.done());
  EXPECT_EQ(clock().pending(), 1u);  // the sweep, for the barrier
  ASSERT_TRUE(engine().Close("b").ok());
  std::vector<JobId> fresh = SubmitMany("b", 3);
  clock().Advance(absl::ZeroDuration());  // under ASan, a freed Build here would be caught
  EXPECT_EQ(clock().pending(), 0u);
  EXPECT_EQ(ledger_.reported(), 0u);
  EXPECT_EQ(engine().GetBuild("b")->queued, 1u);
  EXPECT_EQ(engine().GetBuild("b")->state, BuildState::kRunning);
}

TEST_F(LazyCancelTest, SweepRacingANewBuildOfTheSameNameAfterClose) {
  std::vector<JobId> old_queue = AbortWithQueue(5000);
  ASSERT_TRUE(clock().RunOneDue());  // partly swept
  ASSERT_TRUE(engine().Close("b").ok());
  // A new build "b": two run, three queue. The old sweep, still due, must not touch it.
  std::vector<JobId> fresh = SubmitMany("b", 5);
  clock().Advance(absl::ZeroDuration());
  BuildInfo build = *engine().GetBuild("b");
  EXPECT_EQ(build.state, BuildState::kRunning);
  EXPECT_EQ(build.queued, 3u);
  EXPECT_EQ(build.cancelled, 0u);
  EXPECT_EQ(engine().GetJob(fresh.back())->state, JobState::kQueued);
  EXPECT_EQ(engine().Pool().queued, 3u);
  EXPECT_TRUE(ledger_.EachOnce(old_queue));

  // The new build dies too; its own sweep runs while a third one is being made.
  Answer abort;
  engine().AbortAsync("b", Reason("again"), abort.Callback());
  ASSERT_EQ(spawner().DeliverSignals(), 2);
  ASSERT_TRUE(abort.done());
  ASSERT_TRUE(engine().Close("b").ok());
  std::vector<JobId> third = SubmitMany("b", 3);
  clock().Advance(absl::ZeroDuration());
  std::vector<JobId> all = old_queue;
  all.insert(all.end(), fresh.begin() + 2, fresh.end());
  EXPECT_TRUE(ledger_.EachOnce(all));
  EXPECT_EQ(engine().GetBuild("b")->queued, 1u);
  EXPECT_EQ(engine().GetJob(third.back())->state, JobState::kQueued);
  EXPECT_EQ(engine().GetJob(fresh.back())->result.outcome, Outcome::kCancelled);
}

TEST_F(LazyCancelTest, SweepGoesInChunksAndReportsEveryJobOnce) {
  constexpr int kQueued = 10'000;
  std::vector<JobId> queued = AbortWithQueue(kQueued);
  // A lookup ahead of the sweep: finished now, skipped by the sweep.
  ExpectCancelledByTheBuild(*engine().GetJob(queued[kQueued - 1]));
  int steps = 0;
  while (clock().RunOneDue()) {
    ++steps;
    // Between chunks the counts add up, whatever has been swept.
    PoolInfo pool = engine().Pool();
    EXPECT_EQ(pool.queued, 0u);
    EXPECT_EQ(pool.running, 0u);
    BuildInfo build = *engine().GetBuild("b");
    EXPECT_EQ(build.cancelled, kQueued + 2u);
    EXPECT_EQ(build.queued + build.running + build.succeeded + build.failed + build.cancelled,
              build.submitted);
    ASSERT_LT(steps, 100) << "the sweep does not end";
  }
  EXPECT_GT(steps, 1);  // more than one hold of the lock
  ASSERT_GT(ledger_.chunks.size(), 2u);
  EXPECT_EQ(ledger_.chunks.front(), 1u);  // the lookup
  for (size_t chunk : ledger_.chunks) EXPECT_LE(chunk, 4096u);
  EXPECT_TRUE(ledger_.EachOnce(queued));
  EXPECT_THAT(ledger_.builds, ElementsAre("b"));
  EXPECT_EQ(clock().pending(), 0u);
  for (JobId id : {queued[0], queued[4095], queued[4096], queued[kQueued - 2]}) {
    ExpectCancelledByTheBuild(*engine().GetJob(id));
  }
}

// Past max_finished_jobs, the sweep also forgets the records it finished, chunk by chunk,
// rather than leave them to be forgotten 256 per later request; and a Close that finishes the
// records itself leaves that work to the sweep too.
TEST(SweepEvictionTest, TheSweepForgetsWhatIsBeyondTheCap) {
  for (bool close_first : {false, true}) {
    SCOPED_TRACE(close_first ? "closed before the sweep" : "swept");
    EngineOptions options;
    options.jobs = 1;
    options.max_finished_jobs = 10;
    FakeEngine fake(options);
    constexpr int kQueued = 20'000;
    auto ids = fake.engine->Submit("b", std::vector<JobSpec>(kQueued, Spec({"x"})), Caller{});
    ASSERT_TRUE(ids.ok()) << ids.status();
    Answer abort;
    fake.engine->AbortAsync("b", Reason("stop"), abort.Callback());
    fake.spawner->DeliverSignals();
    ASSERT_TRUE(abort.done());
    if (close_first) {
      ASSERT_TRUE(fake.engine->Close("b").ok());
    }
    int steps = 0;
    while (fake.clock->RunOneDue()) {
      ASSERT_LT(++steps, 100) << "the sweep does not end";
    }
    EXPECT_EQ(fake.clock->pending(), 0u);
    int remembered = 0;
    for (JobId id : *ids) remembered += fake.engine->GetJob(id).ok() ? 1 : 0;
    EXPECT_EQ(remembered, 10);
    EXPECT_TRUE(fake.engine->GetJob(ids->back()).ok());  // the newest are the ones kept
  }
}

TEST_F(LazyCancelTest, DoomedJobsAreNeverSpawnedWhateverFreesASlot) {
  std::vector<JobId> ids = SubmitMany("b", 2 + 10);
  std::vector<JobId> other = SubmitMany("o", 3);
  Answer abort;
  engine().AbortAsync("b", Reason("stop", AbortMode::kDrain), abort.Callback());
  // Slots free up before the sweep: they go to the other build only.
  ASSERT_TRUE(spawner().Exit(ids[0], 0));
  ASSERT_TRUE(spawner().Exit(ids[1], 0));
  EXPECT_TRUE(abort.done());
  EXPECT_THAT(spawner().Running(), ElementsAre(other[0], other[1]));
  clock().Advance(absl::ZeroDuration());
  ASSERT_TRUE(spawner().Exit(other[0], 0));
  EXPECT_THAT(spawner().Running(), ElementsAre(other[1], other[2]));
  EXPECT_EQ(spawner().started(), 5u);
}

TEST_F(LazyCancelTest, ShutdownFinishesEveryRecordBeforeReturning) {
  engine().AddObserver(&ledger_);
  SubmitMany("a", 2);
  std::vector<JobId> queued = SubmitMany("b", 2 * 4096 + 10);
  std::thread stopper([&] { engine().Shutdown("bye"); });
  while (engine().Pool().running > 0) {
    spawner().DeliverSignals();
    absl::SleepFor(absl::Milliseconds(1));
  }
  stopper.join();
  EXPECT_TRUE(ledger_.EachOnce(queued));  // without the clock's help
}

// An executor whose jobs run elsewhere hears of a build being stopped (the Slurm one then
// cancels what is left of it on the cluster): when a failure or a kill abort stops it, not
// when a drain lets its jobs finish.
TEST_F(EngineTest, TheSpawnerHearsWhenABuildIsStopped) {
  const std::vector<JobId> failing = SubmitMany("failing", 2);
  ASSERT_TRUE(spawner().Exit(failing[0], 1));  // the other one is stopped
  EXPECT_THAT(spawner().StoppedBuilds(), ElementsAre("failing"));
  spawner().DeliverSignals();
  Submit("drained", Spec({"cc"}));
  engine().AbortAsync("drained", Reason("test", AbortMode::kDrain),
                      [](absl::StatusOr<BuildInfo>) {});
  EXPECT_THAT(spawner().StoppedBuilds(), ElementsAre("failing"));
  engine().AbortAsync("drained", Reason("now"), [](absl::StatusOr<BuildInfo>) {});  // escalates
  EXPECT_THAT(spawner().StoppedBuilds(), ElementsAre("failing", "drained"));
  spawner().DeliverSignals();
  // A build with nothing running has nothing on a cluster either.
  ASSERT_TRUE(spawner().Exit(Submit("idle", Spec({"cc"})), 0));
  engine().AbortAsync("idle", Reason("now"), [](absl::StatusOr<BuildInfo>) {});
  ASSERT_TRUE(spawner().Exit(Submit("alone", Spec({"cc"})), 1));  // its only job failed
  EXPECT_THAT(spawner().StoppedBuilds(), ElementsAre("failing", "drained"));
}

}  // namespace
}  // namespace distd::engine
