// The recorder under random interleavings: the engine's changes (made on this thread, over a
// fake spawner and clock) race the recorder's writer thread, flushes, and a disk that fills
// and empties. Afterwards the journal must say of every job and build what the engine says.
// Seeded; DISTD_STRESS_SEED=N reproduces one run, DISTD_STRESS_SECONDS=S bounds the time.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "server/journal/journal.h"
#include "server/journal/recorder.h"
#include "tests/engine/engine_test_util.h"
#include "tests/journal/journal_test_util.h"

namespace distd::journal {
namespace {

using engine::EndOneRunningJob;
using engine::JobId;
using engine::JobSpec;
using engine::JobState;
using engine::Spec;

uint64_t EnvOr(const char* name, uint64_t fallback) {
  const char* value = std::getenv(name);
  return value != nullptr ? std::strtoull(value, nullptr, 10) : fallback;
}

class Driver {
 public:
  Driver(uint64_t seed, const std::string& dir) : rng_(seed), fake_(Options()) {
    auto journal = Journal::Open(dir);
    EXPECT_TRUE(journal.ok()) << journal.status();
    journal_ = *std::move(journal);
    recorder_ =
        std::make_unique<Recorder>(journal_.get(), /*outputs=*/nullptr, fake_.clock,
                                   QuickRetries(absl::Microseconds(100), absl::Milliseconds(2)));
    fake_.engine->AddObserver(recorder_.get());
  }
  ~Driver() {
    fake_.engine->RemoveObserver(recorder_.get());
    recorder_.reset();
  }

  static engine::EngineOptions Options() {
    engine::EngineOptions options;
    options.jobs = 3;
    options.max_finished_jobs = 1'000'000;
    return options;
  }

  void Step() {
    engine::Engine& engine = *fake_.engine;
    switch (Pick(12)) {
      case 0:
      case 1:
      case 2: {
        std::vector<JobSpec> specs;
        const int n = Pick(50) == 0 ? 500 + Pick(2000) : 1 + Pick(8);
        for (int i = 0; i < n; ++i) specs.push_back(Spec({"cc", std::to_string(i)}, Pick(4) != 0));
        auto ids = engine.Submit(Build(), std::move(specs), engine::Caller{0, "stress"});
        if (ids.ok()) last_ = ids->back();
        break;
      }
      case 3:
      case 4:
        EndOneRunningJob(
            *fake_.spawner, [this](int n) { return Pick(n); }, SIGKILL, 6);
        break;
      case 5:
        fake_.spawner->DeliverSignals();
        break;
      case 6:
        fake_.clock->Advance(absl::Milliseconds(Pick(500)));
        break;
      case 7:
        engine.AbortAsync(Build(), engine::Reason("stress"), [](auto) {});
        break;
      case 8:
        (void)engine.Close(Build());
        break;
      case 9:
        if (last_ > 0) (void)engine.CancelJob(1 + Pick(static_cast<int>(last_)));
        break;
      case 10:
        // The disk fills, or has room again; a flush then fails or catches up.
        if (Pick(4) == 0) {
          full_ = !full_;
          ASSERT_TRUE(journal_->CapPagesForTesting(full_ ? 1 : 1 << 20).ok());
        }
        break;
      case 11:
        if (absl::Status s = recorder_->Flush(); !full_) {
          ASSERT_TRUE(s.ok()) << s;
        }
        break;
    }
  }

  // Everything ends; the journal catches up and agrees with the engine.
  void Finish() {
    engine::Engine& engine = *fake_.engine;
    for (const engine::BuildInfo& b : engine.ListBuilds()) {
      engine.AbortAsync(b.name, engine::Reason("the end"), [](auto) {});
    }
    while (fake_.spawner->DeliverSignals() > 0) {
    }
    fake_.clock->Advance(absl::Seconds(10));  // the sweeps
    ASSERT_TRUE(journal_->CapPagesForTesting(1 << 20).ok());
    ASSERT_TRUE(recorder_->Flush().ok());
    EXPECT_TRUE(recorder_->healthy().ok());
    const JobId last = last_;
    for (JobId id = 1; id <= last; ++id) {
      absl::StatusOr<engine::JobInfo> job = engine.GetJob(id);
      ASSERT_TRUE(job.ok()) << job.status();
      auto record = journal_->FindJob(id);
      ASSERT_TRUE(record.ok()) << record.status();
      ASSERT_TRUE(record->has_value()) << "job " << id << " is not in the journal";
      const engine::JobInfo& kept = (*record)->job;
      ASSERT_EQ(kept.state, job->state) << "job " << id;
      ASSERT_EQ(kept.result.outcome, job->result.outcome) << "job " << id;
      ASSERT_EQ(kept.result.exit_code, job->result.exit_code) << "job " << id;
      ASSERT_EQ(kept.result.signal, job->result.signal) << "job " << id;
      ASSERT_EQ(kept.build, job->build) << "job " << id;
      ASSERT_EQ(kept.argv, job->argv) << "job " << id;
    }
    // The open builds are the engine's, in the same state.
    auto builds = journal_->RecentBuilds(-1);
    ASSERT_TRUE(builds.ok()) << builds.status();
    size_t open = 0;
    for (const BuildRecord& b : *builds) {
      if (!b.open) continue;
      ++open;
      absl::StatusOr<engine::BuildInfo> known = engine.GetBuild(b.name);
      ASSERT_TRUE(known.ok()) << "build " << b.name << ": " << known.status();
      ASSERT_EQ(b.state, known->state) << "build " << b.name;
      ExpectSameCounts(b, *known);
    }
    ASSERT_EQ(open, engine.ListBuilds().size());
    // Closed, they are recounted from their jobs: the same counts again.
    std::vector<engine::BuildInfo> before_close = engine.ListBuilds();
    for (const engine::BuildInfo& b : before_close) ASSERT_TRUE(engine.Close(b.name).ok());
    ASSERT_TRUE(recorder_->Flush().ok());
    for (const engine::BuildInfo& b : before_close) {
      auto found = journal_->FindBuild(b.name);
      ASSERT_TRUE(found.ok() && found->has_value()) << "build " << b.name;
      ASSERT_FALSE((*found)->open) << "build " << b.name;
      ExpectSameCounts(**found, b);
    }
    jobs_ = last;
  }

  uint64_t jobs() const { return jobs_; }

  static void ExpectSameCounts(const BuildRecord& kept, const engine::BuildInfo& known) {
    EXPECT_EQ(kept.succeeded, known.succeeded) << "build " << known.name;
    EXPECT_EQ(kept.failed, known.failed) << "build " << known.name;
    EXPECT_EQ(kept.cancelled, known.cancelled) << "build " << known.name;
    EXPECT_EQ(kept.submitted, known.submitted) << "build " << known.name;
  }

 private:
  int Pick(int n) { return static_cast<int>(rng_() % static_cast<uint64_t>(n)); }
  std::string Build() { return absl::StrCat("b", Pick(4)); }

  std::mt19937_64 rng_;
  engine::FakeEngine fake_;
  std::unique_ptr<Journal> journal_;
  std::unique_ptr<Recorder> recorder_;
  bool full_ = false;
  JobId last_ = 0;
  uint64_t jobs_ = 0;
};

TEST(RecorderStressTest, TheJournalAgreesWithTheEngineWhateverTheInterleaving) {
  const uint64_t first_seed = EnvOr("DISTD_STRESS_SEED", std::random_device{}());
  const bool one_seed = std::getenv("DISTD_STRESS_SEED") != nullptr;
  const absl::Time deadline = absl::Now() + absl::Seconds(EnvOr("DISTD_STRESS_SECONDS", 5));
  uint64_t runs = 0, jobs = 0;
  for (uint64_t seed = first_seed; absl::Now() < deadline; ++seed) {
    SCOPED_TRACE(absl::StrCat("DISTD_STRESS_SEED=", seed));
    std::string dir = ::testing::TempDir() + "recorder_stress.XXXXXX";
    ASSERT_NE(mkdtemp(dir.data()), nullptr);
    {
      Driver run(seed, dir);
      for (int i = 0; i < 1500 && !::testing::Test::HasFatalFailure(); ++i) run.Step();
      if (!::testing::Test::HasFatalFailure()) run.Finish();
      jobs += run.jobs();
    }
    std::system(("rm -rf '" + dir + "'").c_str());
    ++runs;
    if (::testing::Test::HasFailure() || one_seed) break;
  }
  std::printf("stress: seeds %llu..%llu, %llu runs, %llu jobs\n",
              static_cast<unsigned long long>(first_seed),
              static_cast<unsigned long long>(first_seed + runs - 1),
              static_cast<unsigned long long>(runs), static_cast<unsigned long long>(jobs));
  EXPECT_GT(runs, 0u);
}

}  // namespace
}  // namespace distd::journal
