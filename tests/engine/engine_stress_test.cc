// Randomised interleavings of submits, exits, failures, signals, timeouts, aborts, barriers,
// cancels and closes across several builds. Seeded; the seed is printed, and
// DISTD_STRESS_SEED=N reproduces one run, DISTD_STRESS_SECONDS=S bounds the time.
//
// Checked throughout: never more than the pool's size running; every job gets exactly one
// outcome; a barrier that succeeds has seen every job it covers finish; an abort, or a barrier
// reporting a failure, answers only when no job of the build runs. Checked at the end: every
// barrier and abort answered exactly once.
#include <signal.h>

#include <atomic>
#include <cstdlib>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/engine/engine_test_util.h"

namespace distd::engine {
namespace {

uint64_t EnvOr(const char* name, uint64_t fallback) {
  const char* value = std::getenv(name);
  return value != nullptr ? std::strtoull(value, nullptr, 10) : fallback;
}

// Tracks what every job went through, as the engine reports it.
class Ledger : public EngineObserver {
 public:
  void OnJobQueued(const JobInfo& job) override {
    absl::MutexLock lock(&mu_);
    auto& j = jobs_[job.id];
    ++j.queued;
    j.build = job.build;
    j.group = job.group;
  }
  void OnJobStarted(const JobInfo& job) override {
    absl::MutexLock lock(&mu_);
    ++jobs_[job.id].started;
    ++running_[job.build];
  }
  void OnJobFinished(const JobInfo& job) override {
    absl::MutexLock lock(&mu_);
    auto& j = jobs_[job.id];
    ++j.finished;
    if (job.started_at != absl::InfinitePast() && job.pid != 0) --running_[job.build];
  }
  void OnJobsCancelled(absl::string_view, absl::Span<const JobId> ids) override {
    absl::MutexLock lock(&mu_);
    for (JobId id : ids) ++jobs_[id].finished;
  }

  int RunningIn(const std::string& build) {
    absl::MutexLock lock(&mu_);
    return running_[build];
  }
  // True when every job of `build` (and `group`, if not empty) with an id up to `target`
  // has finished.
  bool AllFinished(const std::string& build, const std::string& group, JobId target) {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, j] : jobs_) {
      if (id > target) break;
      if (j.build == build && (group.empty() || j.group == group) && j.finished == 0) return false;
    }
    return true;
  }
  void ExpectEachJobOnce(uint64_t submitted) {
    absl::MutexLock lock(&mu_);
    EXPECT_EQ(jobs_.size(), submitted);
    for (const auto& [id, j] : jobs_) {
      EXPECT_EQ(j.queued, 1) << "job " << id;
      EXPECT_EQ(j.finished, 1) << "job " << id;
      EXPECT_LE(j.started, 1) << "job " << id;
    }
  }

 private:
  struct Record {
    std::string build, group;
    int queued = 0, started = 0, finished = 0;
  };
  absl::Mutex mu_;
  std::map<JobId, Record> jobs_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> running_ ABSL_GUARDED_BY(mu_);
};

BuildCallback answer_counter(std::atomic<uint64_t>& answers) {
  return [&answers](absl::StatusOr<BuildInfo>) { answers.fetch_add(1); };
}

struct Expectation {
  std::string build, group;
  JobId target = 0;
  bool abort = false;
  bool checked = false;
  int running_at_answer = -1;  // the build's running jobs, by the ledger, when it answered
  Answer answer;
};

class Driver {
 public:
  Driver(uint64_t seed, int pool) : rng_(seed), pool_(pool), fake_(Options(pool)) {
    fake_.engine->AddObserver(&ledger_);
    fake_.spawner->FailStart("missing", absl::NotFoundError("program not found: missing"));
  }
  ~Driver() { fake_.engine->RemoveObserver(&ledger_); }

  static EngineOptions Options(int pool) {
    EngineOptions options;
    options.jobs = pool;
    options.grace = absl::Seconds(2);
    options.max_finished_jobs = 1'000'000;
    return options;
  }

  void Step() {
    Engine& engine = *fake_.engine;
    switch (Pick(12)) {
      case 0:
      case 1:
      case 2: {
        std::vector<JobSpec> specs;
        int n = 1 + Pick(6);
        for (int i = 0; i < n; ++i) {
          JobSpec spec = Spec({Pick(20) == 0 ? "missing" : "cc"}, Pick(4) != 0, Group());
          if (Pick(5) == 0) spec.timeout = absl::Seconds(1 + Pick(5));
          specs.push_back(std::move(spec));
        }
        auto ids = engine.Submit(Build(), std::move(specs), Caller{});
        if (ids.ok()) submitted_ += ids->size();
        break;
      }
      case 3:
      case 4:
      case 5: {
        std::vector<JobId> running = fake_.spawner->Running();
        if (running.empty()) break;
        JobId id = running[Pick(static_cast<int>(running.size()))];
        if (Pick(6) == 0) {
          fake_.spawner->Kill(id, SIGSEGV);
        } else {
          fake_.spawner->Exit(id, Pick(8) == 0 ? 1 : 0);
        }
        break;
      }
      case 6:
        fake_.spawner->DeliverSignals();
        break;
      case 7:
        fake_.clock->Advance(absl::Milliseconds(Pick(3000)));
        break;
      case 8: {
        auto& e = Expect(Build(), Group(), false);
        e.target = LastId();
        engine.WaitAsync(e.build, e.group, e.answer.Callback());
        break;
      }
      case 9: {
        auto& e = Expect(Build(), "", true);
        AbortOptions options =
            Reason("stress", Pick(3) == 0 ? AbortMode::kDrain : AbortMode::kKill);
        engine.AbortAsync(e.build, options,
                          [this, &e, done = e.answer.Callback()](auto result) mutable {
                            e.running_at_answer = ledger_.RunningIn(e.build);
                            done(std::move(result));
                          });
        break;
      }
      case 10:
        (void)engine.Close(Build());
        break;
      case 11:
        if (LastId() > 0) (void)engine.CancelJob(1 + Pick(static_cast<int>(LastId())));
        break;
    }
    ASSERT_LE(fake_.spawner->Running().size(), static_cast<size_t>(pool_));
    ASSERT_EQ(engine.Pool().running, fake_.spawner->Running().size());
  }

  // Ends everything, then checks that nothing was lost.
  void Finish() {
    for (const BuildInfo& build : fake_.engine->ListBuilds()) {
      fake_.engine->AbortAsync(build.name, AbortOptions{}, [](absl::StatusOr<BuildInfo>) {});
    }
    while (fake_.spawner->DeliverSignals() > 0) {
    }
    ASSERT_EQ(fake_.engine->Pool().running, 0u);
    ASSERT_EQ(fake_.engine->Pool().queued, 0u);
    ledger_.ExpectEachJobOnce(submitted_);
    for (const auto& e : expectations_) {
      EXPECT_EQ(e->answer.calls(), 1) << (e->abort ? "abort" : "wait") << " of " << e->build;
    }
  }

  uint64_t submitted() const { return submitted_; }

 private:
  int Pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }
  std::string Build() { return absl::StrCat("b", Pick(3)); }
  std::string Group() {
    int g = Pick(3);
    return g == 0 ? "" : absl::StrCat("g", g);
  }
  JobId LastId() {
    // Ids are dense and start at 1, so the last id handed out is the number of jobs made,
    // counting refused submissions as none.
    return submitted_;
  }

  // Registers an answer for CheckAnswers.
  Expectation& Expect(std::string build, std::string group, bool abort) {
    expectations_.push_back(std::make_unique<Expectation>());
    Expectation& e = *expectations_.back();
    e.build = std::move(build);
    e.group = std::move(group);
    e.abort = abort;
    return e;
  }

 public:
  // Checks every answer that arrived since the last call. Called after every step, so an answer
  // is judged against the ledger as it was when the answer came.
  void CheckAnswers() {
    for (auto& e : expectations_) {
      if (e->checked || !e->answer.done()) continue;
      e->checked = true;
      absl::StatusOr<BuildInfo> result = e->answer.result();
      if (!result.ok()) {
        EXPECT_TRUE(absl::IsNotFound(result.status())) << result.status();
        continue;
      }
      if (e->abort || result->failure.has_value()) {
        EXPECT_EQ(result->state, BuildState::kDead);
        EXPECT_EQ(result->running, 0u);
        if (e->abort) {
          EXPECT_EQ(e->running_at_answer, 0) << "abort of " << e->build;
        }
      } else {
        EXPECT_TRUE(ledger_.AllFinished(e->build, e->group, e->target))
            << "barrier of " << e->build << "/" << e->group << " returned early";
      }
    }
  }

 private:
  std::mt19937_64 rng_;
  int pool_;
  // Declared before the engine, so that they outlive any answer it gives while torn down.
  Ledger ledger_;
  std::vector<std::unique_ptr<Expectation>> expectations_;
  FakeEngine fake_;
  uint64_t submitted_ = 0;
};

TEST(EngineStressTest, RandomInterleavingsKeepEveryPromise) {
  const uint64_t first_seed = EnvOr("DISTD_STRESS_SEED", std::random_device{}());
  const bool one_seed = std::getenv("DISTD_STRESS_SEED") != nullptr;
  const absl::Duration budget = absl::Seconds(EnvOr("DISTD_STRESS_SECONDS", 5));
  const absl::Time deadline = absl::Now() + budget;
  uint64_t runs = 0;
  uint64_t jobs = 0;
  for (uint64_t seed = first_seed; absl::Now() < deadline; ++seed) {
    SCOPED_TRACE(absl::StrCat("DISTD_STRESS_SEED=", seed));
    Driver driver(seed, 1 + static_cast<int>(seed % 4));
    for (int i = 0; i < 2000; ++i) {
      driver.Step();
      if (::testing::Test::HasFatalFailure()) return;
      driver.CheckAnswers();
    }
    driver.Finish();
    driver.CheckAnswers();
    ++runs;
    jobs += driver.submitted();
    if (::testing::Test::HasFailure() || one_seed) break;
  }
  std::printf("stress: seeds %llu..%llu, %llu runs, %llu jobs\n",
              static_cast<unsigned long long>(first_seed),
              static_cast<unsigned long long>(first_seed + runs - 1),
              static_cast<unsigned long long>(runs), static_cast<unsigned long long>(jobs));
  EXPECT_GT(runs, 0u);
}

// Real threads against one engine: clients submitting, waiting, aborting, cancelling and
// closing, a "kernel" thread ending processes and delivering signals, and a clock thread firing
// timers, all at once. Run under ASan+UBSan this finds what the forced interleavings cannot.
TEST(EngineStressTest, ConcurrentClientsKeepEveryPromise) {
  const uint64_t seed = EnvOr("DISTD_STRESS_SEED", std::random_device{}());
  std::printf("stress: DISTD_STRESS_SEED=%llu\n", static_cast<unsigned long long>(seed));
  constexpr int kPool = 3;
  Ledger ledger;
  std::atomic<uint64_t> answers{0};
  std::atomic<uint64_t> asked{0};
  std::atomic<uint64_t> submitted{0};
  {
    FakeEngine fake(Driver::Options(kPool));
    fake.engine->AddObserver(&ledger);
    std::atomic<bool> stop{false};
    auto client = [&](uint64_t client_seed) {
      std::mt19937_64 rng(client_seed);
      auto pick = [&](int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng); };
      auto answer = [&answers](absl::StatusOr<BuildInfo> r) {
        if (r.ok() && r->failure.has_value()) {
          EXPECT_EQ(r->running, 0u);
        }
        answers.fetch_add(1);
      };
      while (!stop.load()) {
        std::string build = absl::StrCat("b", pick(3));
        switch (pick(6)) {
          case 0:
          case 1: {
            std::vector<JobSpec> specs(1 + pick(20), Spec({"cc"}, pick(10) != 0));
            if (auto ids = fake.engine->Submit(build, specs, Caller{}); ids.ok()) {
              submitted.fetch_add(ids->size());
            }
            break;
          }
          case 2:
            asked.fetch_add(1);
            fake.engine->WaitAsync(build, "", answer);
            break;
          case 3:
            asked.fetch_add(1);
            fake.engine->AbortAsync(build, Reason("stress"), answer);
            break;
          case 4:
            (void)fake.engine->Close(build);
            break;
          case 5:
            (void)fake.engine->CancelJob(1 + pick(1000));
            break;
        }
      }
    };
    std::vector<std::thread> threads;
    for (int i = 0; i < 4; ++i) threads.emplace_back(client, seed + i);
    threads.emplace_back([&] {
      std::mt19937_64 rng(seed ^ 0x5eed);
      while (!stop.load()) {
        std::vector<JobId> running = fake.spawner->Running();
        EXPECT_LE(running.size(), static_cast<size_t>(kPool));
        for (JobId id : running) fake.spawner->Exit(id, rng() % 10 == 0 ? 1 : 0);
        fake.spawner->DeliverSignals();
      }
    });
    threads.emplace_back([&] {
      while (!stop.load()) fake.clock->Advance(absl::Milliseconds(100));
    });
    absl::SleepFor(absl::Seconds(EnvOr("DISTD_STRESS_SECONDS", 3)));  // the test's duration
    stop.store(true);
    for (auto& t : threads) t.join();
    EXPECT_LE(fake.spawner->max_running(), static_cast<size_t>(kPool));
    for (const BuildInfo& build : fake.engine->ListBuilds()) {
      asked.fetch_add(1);
      fake.engine->AbortAsync(build.name, AbortOptions{}, answer_counter(answers));
    }
    while (fake.spawner->DeliverSignals() > 0) {
    }
    EXPECT_EQ(fake.engine->Pool().running, 0u);
    fake.engine->RemoveObserver(&ledger);
  }
  EXPECT_EQ(answers.load(), asked.load());
  ledger.ExpectEachJobOnce(submitted.load());
  std::printf("stress: %llu jobs, %llu answers\n",
              static_cast<unsigned long long>(submitted.load()),
              static_cast<unsigned long long>(answers.load()));
}

}  // namespace
}  // namespace distd::engine
