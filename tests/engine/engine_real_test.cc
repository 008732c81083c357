// The engine with the real POSIX spawner and the real clock: real shells, real signals.
#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/engine/engine.h"

namespace distd::engine {
namespace {

using ::testing::HasSubstr;

std::shared_ptr<const std::vector<std::string>> Env() {
  return std::make_shared<const std::vector<std::string>>(
      std::vector<std::string>{"PATH=/usr/local/bin:/usr/bin:/bin", "LC_ALL=C"});
}

JobSpec Shell(const std::string& script, bool check = true) {
  JobSpec spec;
  spec.argv = {"sh", "-c", script};
  spec.cwd = "/";
  spec.env = Env();
  spec.check = check;
  return spec;
}

// Processes (not zombies) whose process group is `pgid`, from /proc.
std::vector<int> LiveMembers(int pgid) {
  std::vector<int> live;
  DIR* dir = opendir("/proc");
  if (dir == nullptr) return live;
  while (dirent* entry = readdir(dir)) {
    int pid = 0;
    if (!absl::SimpleAtoi(entry->d_name, &pid)) continue;
    std::ifstream stat(absl::StrCat("/proc/", pid, "/stat"));
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    // pid (comm) state ppid pgrp ...: comm may hold spaces, so parse after the last ')'.
    size_t close = text.rfind(')');
    if (close == std::string::npos) continue;
    std::vector<std::string> fields = absl::StrSplit(text.substr(close + 2), ' ');
    int pgrp = 0;
    if (fields.size() < 3 || !absl::SimpleAtoi(fields[2], &pgrp)) continue;
    if (pgrp == pgid && fields[0] != "Z" && fields[0] != "X") live.push_back(pid);
  }
  closedir(dir);
  return live;
}

// Once SIGKILL has been sent, a process runs no more user code, but the kernel finishes its
// exit asynchronously; allow it a generous moment to disappear from /proc.
bool GroupGone(int pgid) {
  absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (!LiveMembers(pgid).empty()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(1));
  }
  return true;
}

class EngineRealTest : public ::testing::Test {
 protected:
  EngineRealTest() {
    EngineOptions options;
    options.jobs = 4;
    options.grace = absl::Seconds(2);
    options.output_head_bytes = 1024 * 1024;
    options.output_tail_bytes = 1024 * 1024;
    engine_ = std::make_unique<Engine>(options, spawn::NewPosixSpawner(), spawn::NewRealClock());
  }

  JobId Submit(const std::string& build, JobSpec spec, JobWatcher* watcher = nullptr) {
    auto ids = engine_->Submit(build, {std::move(spec)}, Caller{}, watcher);
    EXPECT_TRUE(ids.ok()) << ids.status();
    return ids.ok() ? ids->front() : 0;
  }

  JobInfo RunToEnd(JobSpec spec) {
    spec.check = false;
    JobId id = Submit("b", std::move(spec));
    auto build = engine_->Wait("b", "");
    EXPECT_TRUE(build.ok()) << build.status();
    return *engine_->GetJob(id);
  }

  std::unique_ptr<Engine> engine_;
};

TEST_F(EngineRealTest, ExitCodesAndSignals) {
  EXPECT_EQ(RunToEnd(Shell("exit 0")).result.outcome, Outcome::kSucceeded);
  JobInfo failed = RunToEnd(Shell("exit 3"));
  EXPECT_EQ(failed.result.outcome, Outcome::kFailed);
  EXPECT_EQ(failed.result.exit_code, 3);
  JobInfo killed = RunToEnd(Shell("kill -TERM $$"));
  EXPECT_EQ(killed.result.outcome, Outcome::kKilled);
  EXPECT_EQ(killed.result.signal, SIGTERM);
  EXPECT_EQ(killed.result.exit_code, -1);
}

TEST_F(EngineRealTest, AMissingProgramAndAMissingDirectoryCannotStart) {
  JobSpec missing;
  missing.argv = {"distd-no-such-program"};
  missing.cwd = "/";
  missing.env = Env();
  JobInfo job = RunToEnd(missing);
  EXPECT_EQ(job.result.outcome, Outcome::kCannotStart);
  EXPECT_TRUE(job.result.program_not_found);
  EXPECT_THAT(job.result.message, HasSubstr("distd-no-such-program"));

  JobSpec no_dir = Shell("true");
  no_dir.cwd = "/distd/no/such/directory";
  job = RunToEnd(no_dir);
  EXPECT_EQ(job.result.outcome, Outcome::kCannotStart);
  EXPECT_FALSE(job.result.program_not_found);
  EXPECT_THAT(job.result.message, HasSubstr("/distd/no/such/directory"));
}

TEST_F(EngineRealTest, ATimeoutStopsTheJob) {
  JobSpec spec = Shell("sleep 30");
  spec.timeout = absl::Milliseconds(200);
  JobInfo job = RunToEnd(spec);
  EXPECT_EQ(job.result.outcome, Outcome::kTimedOut);
  EXPECT_EQ(job.result.signal, SIGTERM);
}

TEST_F(EngineRealTest, TimeoutEscalatesToSigkill) {
  JobSpec spec = Shell("trap '' TERM; while :; do sleep 0.05; done");
  spec.timeout = absl::Milliseconds(100);
  JobInfo job = RunToEnd(spec);
  EXPECT_EQ(job.result.outcome, Outcome::kTimedOut);
  EXPECT_EQ(job.result.signal, SIGKILL);
}

class Collector : public JobWatcher {
 public:
  void OnJobOutput(JobId, OutputStream stream, absl::string_view data) override {
    absl::MutexLock lock(&mu_);
    if (stream == OutputStream::kStdout) {
      stdout_bytes_ += data.size();
      if (stdout_text_.size() < 4096) stdout_text_.append(data.data(), data.size());
      for (char c : data) checksum_ = checksum_ * 31 + static_cast<unsigned char>(c);
    }
  }
  uint64_t stdout_bytes() {
    absl::MutexLock lock(&mu_);
    return stdout_bytes_;
  }
  uint64_t checksum() {
    absl::MutexLock lock(&mu_);
    return checksum_;
  }
  std::string stdout_text() {
    absl::MutexLock lock(&mu_);
    return stdout_text_;
  }
  // Waits (up to `timeout`) until a whole line has arrived on stdout.
  bool AwaitLine(absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(
        absl::Condition(
            +[](std::string* text) { return text->find('\n') != std::string::npos; },
            &stdout_text_),
        timeout);
  }

 private:
  absl::Mutex mu_;
  uint64_t stdout_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t checksum_ ABSL_GUARDED_BY(mu_) = 0;
  std::string stdout_text_ ABSL_GUARDED_BY(mu_);
};

TEST_F(EngineRealTest, HundredMegabytesOfOutputArriveIntactAndMemoryStaysBounded) {
  constexpr int kLines = 13'107'200;
  constexpr uint64_t kBytes = uint64_t{kLines} * 9;  // 112.5 MiB
  Collector collector;
  // Lines "00000000\n", "00000001\n", ...: any lost or reordered chunk changes the checksum.
  JobId id = Submit("b", Shell("seq -w 0 13107199"), &collector);
  auto build = engine_->Wait("b", "");
  ASSERT_TRUE(build.ok());
  EXPECT_FALSE(build->failure.has_value()) << build->failure->reason;
  EXPECT_EQ(collector.stdout_bytes(), kBytes);
  uint64_t expected = 0;
  char line[16];
  for (int i = 0; i < kLines; ++i) {
    snprintf(line, sizeof(line), "%08d\n", i);
    for (int j = 0; j < 9; ++j) expected = expected * 31 + static_cast<unsigned char>(line[j]);
  }
  EXPECT_EQ(collector.checksum(), expected);
  auto output = engine_->GetJobOutput(id);
  ASSERT_TRUE(output.ok());
  EXPECT_EQ(output->stdout_bytes, kBytes);
  // What is kept is bounded, and says so.
  EXPECT_LT(output->stdout_text.size(), 2 * 1024 * 1024 + 100);
  EXPECT_THAT(output->stdout_text, HasSubstr("bytes of output omitted]"));
  EXPECT_EQ(output->stdout_text.substr(0, 18), "00000000\n00000001\n");
  EXPECT_EQ(output->stdout_text.substr(output->stdout_text.size() - 9), "13107199\n");
}

// The group kill: an abort must leave no process of the job behind, including children
// the shell is waiting for.
TEST_F(EngineRealTest, AbortKillsTheWholeProcessGroup) {
  Collector collector;
  JobId id = Submit("b", Shell("sleep 30 & echo $!; wait"), &collector);
  ASSERT_TRUE(collector.AwaitLine(absl::Seconds(30)));  // the job printed its child's pid
  int child = 0;
  ASSERT_TRUE(absl::SimpleAtoi(absl::StripSuffix(collector.stdout_text(), "\n"), &child))
      << collector.stdout_text();
  int leader = engine_->GetJob(id)->pid;
  ASSERT_EQ(LiveMembers(leader).size(), 2u);  // the shell and its sleep

  auto aborted = engine_->Abort("b", AbortOptions{"test", AbortMode::kKill, std::nullopt});
  ASSERT_TRUE(aborted.ok());
  EXPECT_EQ(aborted->state, BuildState::kDead);
  EXPECT_EQ(aborted->running, 0u);
  // When Abort returns, the leader has been reaped and nothing of its group is left.
  EXPECT_TRUE(GroupGone(leader)) << "the job's child " << child << " survived the abort";
}

TEST_F(EngineRealTest, FailureStopsTheRestOfTheBuild) {
  std::vector<JobSpec> specs;
  specs.push_back(Shell("sleep 30"));
  specs.push_back(Shell("echo broken >&2; exit 2"));
  for (int i = 0; i < 1000; ++i) specs.push_back(Shell("true"));
  ASSERT_TRUE(engine_->Submit("b", specs, Caller{}).ok());
  absl::Time start = absl::Now();
  auto build = engine_->Wait("b", "");
  ASSERT_TRUE(build.ok());
  ASSERT_TRUE(build->failure.has_value());
  EXPECT_THAT(build->failure->reason, HasSubstr("exit code 2"));
  EXPECT_EQ(build->failure->stderr_text, "broken\n");
  EXPECT_EQ(build->running, 0u);
  EXPECT_LT(absl::Now() - start, absl::Seconds(20));  // the sleep 30 was stopped
}

TEST_F(EngineRealTest, ManyShortJobsAllSucceed) {
  std::vector<JobSpec> specs(200, Shell("exit 0"));
  ASSERT_TRUE(engine_->Submit("b", specs, Caller{}).ok());
  auto build = engine_->Wait("b", "");
  ASSERT_TRUE(build.ok());
  EXPECT_FALSE(build->failure.has_value());
  EXPECT_EQ(build->succeeded, 200u);
}

// After an abort of a large queue, the sweep forgets the records beyond max_finished_jobs in
// a chain of tasks on the clock's thread. Destroying the engine in the middle of that chain
// must end it cleanly: no task may schedule the next one once the engine is shutting down,
// when its clock is about to go.
TEST(EngineRealShutdownTest, DestroyedWhileTheSweepForgetsRecords) {
  for (int round = 0; round < 3; ++round) {
    EngineOptions options;
    options.jobs = 1;
    options.max_finished_jobs = 10;
    auto engine =
        std::make_unique<Engine>(options, spawn::NewPosixSpawner(), spawn::NewRealClock());
    ASSERT_TRUE(
        engine->Submit("b", std::vector<JobSpec>(200'000, Shell("sleep 60")), Caller{}).ok());
    ASSERT_TRUE(engine->Abort("b", AbortOptions{"stop", AbortMode::kKill, std::nullopt}).ok());
    engine.reset();  // the sweep's chain is still running on the clock's thread
  }
}

}  // namespace
}  // namespace distd::engine
