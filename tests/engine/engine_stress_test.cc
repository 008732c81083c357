// Randomised interleavings of submits, exits, failures, signals, timeouts, aborts, barriers,
// cancels, closes, lookups and watchers across several builds, with the clock (and so the sweep
// that finishes the records of a cancelled queue) run at random points, in whole or one task at
// a time. Seeded; the seed is printed, and DISTD_STRESS_SEED=N reproduces one run,
// DISTD_STRESS_SECONDS=S bounds the time.
//
// Half the seeds offer every job a jobserver, and jobs take and return tokens at random.
//
// Checked throughout: never more than the pool's size running, counting the tokens jobs hold; the
// counts of the pool and of every build add up; every job gets exactly one outcome; no lookup ever
// sees a job of a dying or dead build as queued; a watcher of a queued job hears of its
// cancellation in the step that cancels it, and never twice; a barrier that succeeds has seen every
// job it covers finish; an abort, or a barrier reporting a failure, answers only when no job of the
// build runs. Checked at the end: every barrier and abort answered exactly once, every watcher that
// stayed attached told once.
#include <signal.h>
#include <sys/eventfd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <map>
#include <memory>
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
  void OnJobsQueued(absl::Span<const JobInfo> jobs) override {
    absl::MutexLock lock(&mu_);
    for (const JobInfo& job : jobs) {
      auto& j = jobs_[job.id];
      ++j.queued;
      j.build = job.build;
      j.group = job.group;
    }
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
  // Barriers do not cover foreground jobs (their own client waits for them).
  void MarkForeground(JobId id) {
    absl::MutexLock lock(&mu_);
    jobs_[id].foreground = true;
  }
  // True when every background job of `build` (and `group`, if not empty) with an id up to
  // `target` has finished.
  bool AllFinished(const std::string& build, const std::string& group, JobId target) {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, j] : jobs_) {
      if (id > target) break;
      if (j.build == build && (group.empty() || j.group == group) && !j.foreground &&
          j.finished == 0) {
        return false;
      }
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
    bool foreground = false;
  };
  absl::Mutex mu_;
  std::map<JobId, Record> jobs_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> running_ ABSL_GUARDED_BY(mu_);
};

// What watchers attached to jobs heard, per job: a foreground `distctl run` (attached by
// Submit), `logs --follow` (WatchJob).
class WatchLedger : public JobWatcher {
 public:
  void OnJobStarted(const JobInfo& job) override {
    absl::MutexLock lock(&mu_);
    ++jobs_[job.id].started;
  }
  void OnJobFinished(const JobInfo& job) override {
    absl::MutexLock lock(&mu_);
    ++jobs_[job.id].finished;
    if (job.argv.size() < 2) return;
    if (auto it = targets_.find(job.argv[1]); it != targets_.end()) {
      if (!it->second.expired()) ++held_at_finish_;
      targets_.erase(it);
    }
  }
  // A foreground job's targets, found by the tag in its argv: the engine and the spawner
  // must have let go of them by the time the job's client hears that it ended.
  void ExpectReleased(const std::string& tag, std::weak_ptr<const OutputTargets> targets) {
    absl::MutexLock lock(&mu_);
    targets_.emplace(tag, std::move(targets));
  }
  int held_at_finish() {
    absl::MutexLock lock(&mu_);
    return held_at_finish_;
  }
  // Once every job has ended, whether its client heard of it or had left.
  void ExpectAllReleased() {
    absl::MutexLock lock(&mu_);
    for (const auto& [tag, targets] : targets_) {
      EXPECT_TRUE(targets.expired()) << "the targets of the job tagged " << tag;
    }
  }
  int started(JobId id) {
    absl::MutexLock lock(&mu_);
    return jobs_[id].started;
  }
  int finished(JobId id) {
    absl::MutexLock lock(&mu_);
    return jobs_[id].finished;
  }
  // Each job heard of at most once; those in `attached` (never detached) exactly once.
  void ExpectTold(const std::set<JobId>& attached) {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, j] : jobs_) {
      EXPECT_LE(j.started, 1) << "job " << id;
      EXPECT_LE(j.finished, 1) << "job " << id;
    }
    for (JobId id : attached) EXPECT_EQ(jobs_[id].finished, 1) << "job " << id;
  }

 private:
  struct Heard {
    int started = 0, finished = 0;
  };
  absl::Mutex mu_;
  std::map<JobId, Heard> jobs_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::weak_ptr<const OutputTargets>> targets_ ABSL_GUARDED_BY(mu_);
  int held_at_finish_ ABSL_GUARDED_BY(mu_) = 0;
};

// The counts of the pool and of each build add up, wherever the sweep has got to.
void ExpectCountsAddUp(Engine& engine) {
  absl::StatusOr<Snapshot> snapshot = engine.TakeSnapshot("");
  ASSERT_TRUE(snapshot.ok()) << snapshot.status();
  uint64_t queued = 0, running = 0;
  for (const BuildInfo& b : snapshot->builds) {
    ASSERT_EQ(b.queued + b.running + b.succeeded + b.failed + b.cancelled, b.submitted)
        << "build " << b.name;
    if (b.state != BuildState::kRunning) {
      ASSERT_EQ(b.queued, 0u) << "build " << b.name;
    }
    queued += b.queued;
    running += b.running;
  }
  ASSERT_EQ(queued, snapshot->pool.queued);
  ASSERT_EQ(running, snapshot->pool.running);
}

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
  Driver(uint64_t seed, int pool)
      : rng_(seed), pool_(pool), fake_(Options(pool, /*jobserver=*/seed % 2 == 0)) {
    fake_.engine->AddObserver(&ledger_);
    fake_.spawner->FailStart("missing", absl::NotFoundError("program not found: missing"));
  }
  ~Driver() { fake_.engine->RemoveObserver(&ledger_); }

  static EngineOptions Options(int pool, bool jobserver = false) {
    EngineOptions options;
    options.jobs = pool;
    if (jobserver) options.jobserver = spawn::JobserverStyle::kPipe;
    options.grace = absl::Seconds(2);
    options.max_finished_jobs = 1'000'000;
    return options;
  }

  void Step() {
    Engine& engine = *fake_.engine;
    switch (Pick(15)) {
      case 0:
      case 1:
      case 2: {
        std::vector<JobSpec> specs;
        // Now and then a queue long enough for the sweep to take several chunks.
        int n = Pick(100) == 0 ? 4000 + Pick(6000) : 1 + Pick(6);
        const bool foreground = Pick(4) == 0;  // a `distctl run` waiting on its job
        for (int i = 0; i < n; ++i) {
          JobSpec spec = Spec({Pick(20) == 0 ? "missing" : "cc"}, Pick(4) != 0, Group());
          if (Pick(5) == 0) spec.timeout = absl::Seconds(1 + Pick(5));
          spec.background = !foreground;
          if (foreground && n <= 6 && Pick(2) == 0) {  // a client whose stdout distd writes to
            const std::string tag = absl::StrCat("t", ++tags_);
            spec.argv.push_back(tag);
            // Any fd will do: the fake spawner writes nothing. Its stdout, or both streams.
            const int fd = eventfd(0, EFD_CLOEXEC);
            spec.targets = std::make_shared<const OutputTargets>(fd, Pick(2) == 0 ? fd : -1);
            watchers_.ExpectReleased(tag, spec.targets);
          }
          specs.push_back(std::move(spec));
        }
        const std::string build = Build();
        auto ids =
            engine.Submit(build, std::move(specs), Caller{}, foreground ? &watchers_ : nullptr);
        if (ids.ok()) {
          submitted_ += ids->size();
          if (foreground) {
            for (JobId id : *ids) {
              watched_[id] = Watch{build, true};
              ledger_.MarkForeground(id);
            }
          }
        }
        break;
      }
      case 3:
      case 4:
      case 5:
        EndOneRunningJob(
            *fake_.spawner, [this](int n) { return Pick(n); }, SIGSEGV, 8);
        break;
      case 6:
        fake_.spawner->DeliverSignals();
        break;
      case 7:
        // The sweep is a clock task: run it whole, one chunk of it, or with time passing.
        switch (Pick(4)) {
          case 0:
            fake_.clock->RunOneDue();
            break;
          case 1:
            fake_.clock->Advance(absl::ZeroDuration());
            break;
          default:
            fake_.clock->Advance(absl::Milliseconds(Pick(3000)));
        }
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
        // Half the time the client of a recent foreground job (perhaps still queued) gives up.
        if (Pick(2) == 0 && !watched_.empty()) {
          const int recent = std::min<int>(16, static_cast<int>(watched_.size()));
          (void)engine.CancelJob(std::next(watched_.rbegin(), Pick(recent))->first);
        } else if (LastId() > 0) {
          (void)engine.CancelJob(RandomId());
        }
        break;
      case 12: {
        // A lookup, perhaps of a doomed job the sweep has not reached.
        if (LastId() == 0) break;
        absl::StatusOr<JobInfo> job =
            Pick(2) == 0 ? engine.GetJob(RandomId()) : engine.GetJobOutput(RandomId())->job;
        ASSERT_TRUE(job.ok()) << job.status();
        if (job->state == JobState::kQueued) {
          ASSERT_EQ(engine.GetBuild(job->build)->state, BuildState::kRunning)
              << "job " << job->id << " of a stopped build seen queued";
        }
        if (job->result.outcome == Outcome::kCancelled) {
          ASSERT_FALSE(job->result.message.empty()) << "job " << job->id;
          ASSERT_NE(job->ended_at, absl::InfinitePast()) << "job " << job->id;
        }
        break;
      }
      case 13: {
        // `logs --follow` attaching to a job, or a client going away.
        if (LastId() == 0) break;
        JobId id = RandomId();
        auto it = watched_.find(id);
        if (it == watched_.end()) {
          absl::StatusOr<JobOutput> out = engine.WatchJob(id, &watchers_);
          ASSERT_TRUE(out.ok()) << out.status();
          watched_[id] = Watch{out->job.build, out->job.state != JobState::kFinished,
                               out->job.state == JobState::kRunning};
        } else if (it->second.attached && Pick(3) == 0) {
          engine.Unwatch(id, &watchers_);
          it->second.attached = false;
          it->second.finished_at_detach = watchers_.finished(id);
        }
        break;
      }
      case 14: {
        // A running job's make takes a token, or puts one back.
        std::vector<JobId> running = fake_.spawner->Running();
        if (running.empty()) break;
        const JobId id = running[Pick(static_cast<int>(running.size()))];
        if (Pick(2) == 0) {
          if (fake_.spawner->TakeToken(id)) ++held_[id];
        } else if (held_[id] > 0 && fake_.spawner->ReturnToken(id)) {
          --held_[id];
          // Heard at once (the watcher), or at the engine's next look.
          if (Pick(2) == 0) engine.OnTokensReturned(id);
        } else if (Pick(8) == 0 && fake_.spawner->ReturnToken(id)) {
          engine.OnTokensReturned(id);  // one it never took: it must gain nothing
        }
        break;
      }
    }
    // Never more processes of work than the pool: each job's own, and one per token held.
    const std::vector<JobId> running = fake_.spawner->Running();
    size_t work = running.size();
    for (JobId id : running) work += held_[id];
    ASSERT_LE(work, static_cast<size_t>(pool_));
    const PoolInfo pool = engine.Pool();
    ASSERT_LE(pool.running + pool.lent, static_cast<uint64_t>(pool_));
    ASSERT_EQ(pool.running, running.size());
    ExpectCountsAddUp(engine);
    CheckWatchers();
  }

  // A watcher of a job still queued is told in the very step that cancels it: as long as it
  // has heard nothing, the job's build still runs. A detached watcher hears nothing more.
  void CheckWatchers() {
    ASSERT_EQ(watchers_.held_at_finish(), 0) << "a job's client heard of its end before its "
                                                "targets were let go of";
    for (const auto& [id, w] : watched_) {
      const int finished = watchers_.finished(id);
      ASSERT_LE(finished, 1) << "job " << id;
      if (!w.attached) {
        ASSERT_EQ(finished, w.finished_at_detach) << "job " << id << " told after Unwatch";
        continue;
      }
      if (finished == 0 && !w.running_at_attach && watchers_.started(id) == 0) {
        absl::StatusOr<BuildInfo> build = fake_.engine->GetBuild(w.build);
        ASSERT_TRUE(build.ok()) << "job " << id << ": " << build.status();
        ASSERT_EQ(build->state, BuildState::kRunning)
            << "job " << id << " cancelled without telling its watcher";
      }
    }
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
    ASSERT_EQ(fake_.engine->Pool().lent, 0u);    // every token back, killed makes' too
    fake_.clock->Advance(absl::ZeroDuration());  // the sweep of the queues just cancelled
    ledger_.ExpectEachJobOnce(submitted_);
    std::set<JobId> attached;
    for (const auto& [id, w] : watched_) {
      if (w.attached) attached.insert(id);
    }
    watchers_.ExpectTold(attached);
    watchers_.ExpectAllReleased();
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
  // Biased to recent jobs, where the doomed ones are.
  JobId RandomId() {
    const JobId last = LastId();
    if (Pick(2) == 0 || last <= 20) return 1 + Pick(static_cast<int>(last));
    return last - Pick(20);
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
  struct Watch {
    std::string build;
    bool attached = false;
    bool running_at_attach = false;  // then it never hears OnJobStarted
    int finished_at_detach = 0;
  };

  // Declared before the engine, so that they outlive any answer it gives while torn down.
  Ledger ledger_;
  WatchLedger watchers_;
  std::map<JobId, Watch> watched_;
  std::map<JobId, int> held_;  // tokens each job's make has taken and not put back
  std::vector<std::unique_ptr<Expectation>> expectations_;
  FakeEngine fake_;
  uint64_t submitted_ = 0;
  uint64_t tags_ = 0;
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
  // Attached by Submit to foreground jobs, never detached: each must be told exactly once.
  WatchLedger foreground;
  absl::Mutex foreground_mu;
  std::set<JobId> foreground_ids;  // under foreground_mu
  std::atomic<uint64_t> answers{0};
  std::atomic<uint64_t> asked{0};
  std::atomic<uint64_t> submitted{0};
  {
    FakeEngine fake(Driver::Options(kPool, /*jobserver=*/true));
    fake.engine->AddObserver(&ledger);
    std::atomic<bool> stop{false};
    auto client = [&](uint64_t client_seed) {
      std::mt19937_64 rng(client_seed);
      auto pick = [&](int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng); };
      WatchLedger follower;  // attached and detached again within one step
      auto answer = [&answers](absl::StatusOr<BuildInfo> r) {
        if (r.ok() && r->failure.has_value()) {
          EXPECT_EQ(r->running, 0u);
        }
        answers.fetch_add(1);
      };
      while (!stop.load()) {
        std::string build = absl::StrCat("b", pick(3));
        switch (pick(8)) {
          case 0:
          case 1: {
            std::vector<JobSpec> specs(1 + pick(20), Spec({"cc"}, pick(10) != 0));
            const bool fg = pick(4) == 0;
            for (JobSpec& spec : specs) spec.background = !fg;
            if (pick(50) == 0) specs.resize(4000 + pick(6000), specs.front());  // a long queue
            if (auto ids = fake.engine->Submit(build, specs, Caller{}, fg ? &foreground : nullptr);
                ids.ok()) {
              submitted.fetch_add(ids->size());
              if (fg) {
                absl::MutexLock lock(&foreground_mu);
                foreground_ids.insert(ids->begin(), ids->end());
              }
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
          case 6: {
            // A lookup racing the sweep (the single-threaded test checks what it sees).
            const JobId last = submitted.load();
            if (last == 0) break;
            absl::StatusOr<JobInfo> job = fake.engine->GetJob(last - pick(std::min<int>(last, 50)));
            if (job.ok() && job->result.outcome == Outcome::kCancelled) {
              EXPECT_FALSE(job->result.message.empty());
            }
            break;
          }
          case 7: {
            const JobId last = submitted.load();
            if (last == 0) break;
            const JobId id = last - pick(std::min<int>(last, 50));
            if (fake.engine->WatchJob(id, &follower).ok()) fake.engine->Unwatch(id, &follower);
            break;
          }
        }
      }
      follower.ExpectTold({});
    };
    std::vector<std::thread> threads;
    for (int i = 0; i < 4; ++i) threads.emplace_back(client, seed + i);
    threads.emplace_back([&] {
      std::mt19937_64 rng(seed ^ 0x5eed);
      while (!stop.load()) {
        std::vector<JobId> running = fake.spawner->Running();
        EXPECT_LE(running.size(), static_cast<size_t>(kPool));
        // Some take a token, which they never put back: their ends return it.
        for (JobId id : running) {
          if (rng() % 3 == 0) fake.spawner->TakeToken(id);
          // What the watcher's thread does, racing the job's end and the clients.
          if (rng() % 5 == 0 && fake.spawner->ReturnToken(id)) fake.engine->OnTokensReturned(id);
        }
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
    EXPECT_EQ(fake.engine->Pool().lent, 0u);
    fake.clock->Advance(absl::ZeroDuration());  // the sweep of the queues just cancelled
    ExpectCountsAddUp(*fake.engine);
    fake.engine->RemoveObserver(&ledger);
  }
  EXPECT_EQ(answers.load(), asked.load());
  ledger.ExpectEachJobOnce(submitted.load());
  {
    absl::MutexLock lock(&foreground_mu);
    foreground.ExpectTold(foreground_ids);
  }
  std::printf("stress: %llu jobs, %llu answers\n",
              static_cast<unsigned long long>(submitted.load()),
              static_cast<unsigned long long>(answers.load()));
}

}  // namespace
}  // namespace distd::engine
