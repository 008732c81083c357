// The real spawner against real shells. Every wait is bounded (kTimeout) and waits for an
// event, never for time to pass.
//
// The test process makes itself a child subreaper: a job's background `sleep` is re-parented
// here instead of to init, so after the job ends it stays our zombie until ReapOrphan. Its
// pid cannot be recycled meanwhile, and "did the group kill reach it" becomes a wait status.

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
// glibc 2.36 (Debian 12) ships <sys/pidfd.h> without __BEGIN_DECLS: in C++ its functions
// would get C++ linkage and fail to link.
extern "C" {
#include <sys/pidfd.h>
}

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/spawn/cgroups.h"
#include "server/spawn/jobserver.h"
#include "server/spawn/orphans.h"
#include "server/spawn/process.h"
#include "server/spawn/spawner.h"

namespace distd::spawn {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

constexpr absl::Duration kTimeout = absl::Seconds(30);
const std::vector<std::string> kEnv = {"PATH=/usr/bin:/bin"};

thread_local bool t_in_start = false;

struct JobRecord {
  std::string out;
  std::string err;
  std::string both;  // stdout and stderr in the order they were delivered
  std::optional<ExitStatus> exit;
};

// Collects each job's output per stream and its exit, and every broken promise of the
// ProcessEvents contract as a violation.
class Recorder : public ProcessEvents {
 public:
  void OnProcessOutput(JobId id, OutputStream stream, absl::string_view data) override {
    absl::MutexLock lock(&mu_);
    JobRecord& job = Check(id, "output");
    if (data.empty()) violations_.push_back("empty output");
    (stream == OutputStream::kStdout ? job.out : job.err).append(data.data(), data.size());
    job.both.append(data.data(), data.size());
  }
  void OnProcessExit(JobId id, ExitStatus status) override {
    absl::MutexLock lock(&mu_);
    Check(id, "exit").exit = status;
  }

  // Waits until `pred` holds for the job's record.
  template <typename Pred>
  bool AwaitJob(JobId id, Pred pred) {
    absl::MutexLock lock(&mu_);
    auto done = [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return bool(pred(jobs_[id])); };
    return mu_.AwaitWithTimeout(absl::Condition(&done), kTimeout);
  }
  bool AwaitExit(JobId id) {
    return AwaitJob(id, [](const JobRecord& j) { return j.exit; });
  }
  // Waits for anything on stdout.
  bool AwaitOutput(JobId id) {
    return AwaitJob(id, [](const JobRecord& j) { return !j.out.empty(); });
  }
  // Waits for a full first line on stdout.
  bool AwaitLine(JobId id) {
    return AwaitJob(id, [](const JobRecord& j) { return absl::StrContains(j.out, "\n"); });
  }
  JobRecord Get(JobId id) {
    absl::MutexLock lock(&mu_);
    return jobs_[id];
  }
  // From now on any event is a violation (the spawner's destructor has begun).
  void Close() {
    absl::MutexLock lock(&mu_);
    closed_ = true;
  }
  std::vector<std::string> violations() {
    absl::MutexLock lock(&mu_);
    return violations_;
  }

 private:
  JobRecord& Check(JobId id, const char* what) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    JobRecord& job = jobs_[id];
    if (t_in_start) violations_.push_back(absl::StrCat(what, " from inside Start"));
    if (closed_) violations_.push_back(absl::StrCat(what, " after destruction began"));
    if (job.exit) violations_.push_back(absl::StrCat(what, " after exit of job ", id));
    return job;
  }

  absl::Mutex mu_;
  std::map<JobId, JobRecord> jobs_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> violations_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

std::vector<std::string> Sh(const std::string& script) { return {"/bin/sh", "-c", script}; }

int CountOpenFds() {
  int n = 0;
  for ([[maybe_unused]] auto& e : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

std::set<std::string> FdsOf(pid_t pid) {
  std::set<std::string> fds;
  for (auto& e : std::filesystem::directory_iterator(absl::StrCat("/proc/", pid, "/fd"))) {
    fds.insert(e.path().filename().string());
  }
  return fds;
}

bool IsGone(pid_t pid_or_negative_pgid) {
  return kill(pid_or_negative_pgid, 0) == -1 && errno == ESRCH;
}

// Waits for `pid`, an orphan of a finished job and therefore our child, to die and reaps it.
// Returns its wait status, or nullopt if it is still alive after kTimeout.
std::optional<int> ReapOrphan(pid_t pid) {
  int pidfd = pidfd_open(pid, 0);
  if (pidfd < 0) return std::nullopt;
  pollfd p = {pidfd, POLLIN, 0};
  int ready = poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(kTimeout)));
  close(pidfd);
  int status = 0;
  if (ready != 1 || waitpid(pid, &status, 0) != pid) return std::nullopt;
  return status;
}

// Whether `pid` exists and is not a zombie.
bool StillRuns(pid_t pid) {
  std::string stat;
  std::getline(std::ifstream(absl::StrCat("/proc/", pid, "/stat")), stat);
  return !stat.empty() && !absl::StrContains(stat, ") Z ");
}

pid_t ParsePid(absl::string_view text) {
  int pid = 0;
  EXPECT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(text), &pid)) << text;
  return pid;
}

class PosixSpawnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    char tmpl[] = "/tmp/posix_spawner_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    spawner_.reset();
    EXPECT_THAT(events_.violations(), IsEmpty());
    std::filesystem::remove_all(dir_);
  }

  absl::StatusOr<std::unique_ptr<Process>> Start(JobId id, const std::vector<std::string>& argv,
                                                 const std::string& cwd = "/",
                                                 const std::vector<std::string>& env = kEnv) {
    SpawnRequest request{id, &argv, &cwd, &env, targets_for_next_, settings_for_next_.get()};
    request.tokens = tokens_for_next_;
    request.jobserver_slots = 4;
    targets_for_next_.reset();  // the test keeps no copy of the fds
    tokens_for_next_ = nullptr;
    t_in_start = true;
    auto process = spawner_->Start(request, &events_);
    t_in_start = false;
    return process;
  }

  // Runs a job to its end and returns what it did.
  JobRecord Run(const std::vector<std::string>& argv, const std::string& cwd = "/",
                const std::vector<std::string>& env = kEnv) {
    const JobId id = next_id_++;
    auto process = Start(id, argv, cwd, env);
    EXPECT_TRUE(process.ok()) << process.status();
    if (!process.ok()) return {};
    JobRecord job = events_.AwaitExit(id) ? events_.Get(id) : JobRecord{};
    EXPECT_TRUE(job.exit.has_value()) << "job " << id << " did not end within " << kTimeout;
    if (!job.exit) job.exit = ExitStatus{.exit_code = -1000, .signal = -1000};  // fails checks
    return job;
  }

  absl::Status StartError(const std::vector<std::string>& argv, const std::string& cwd = "/",
                          const std::vector<std::string>& env = kEnv) {
    auto process = Start(next_id_++, argv, cwd, env);
    return process.ok() ? absl::OkStatus() : process.status();
  }

  std::string WriteFile(const std::string& name, const std::string& content, int mode) {
    std::string path = absl::StrCat(dir_, "/", name);
    std::filesystem::create_directories(std::filesystem::path(path).parent_path());
    std::ofstream(path) << content;
    chmod(path.c_str(), mode);
    return path;
  }

  std::string dir_;
  JobId next_id_ = 1;
  std::shared_ptr<const OutputTargets> targets_for_next_;     // for the next Start
  const TokenPipe* tokens_for_next_ = nullptr;                // for the next Start
  std::shared_ptr<const ProcessSettings> settings_for_next_;  // for every Start
  Recorder events_;  // declared before spawner_: it must outlive it
  std::unique_ptr<Spawner> spawner_ = NewPosixSpawner(WithHelper());

  static PosixSpawnerOptions WithHelper() {
    PosixSpawnerOptions options;
    options.exec_helper = DISTD_EXEC_HELPER;
    return options;
  }
};

TEST_F(PosixSpawnerTest, ReportsExitCodeAndReapsTheLeader) {
  auto process = Start(1, Sh("exit 3"));
  ASSERT_TRUE(process.ok()) << process.status();
  ASSERT_TRUE(events_.AwaitExit(1));
  JobRecord job = events_.Get(1);
  EXPECT_EQ(job.exit->exit_code, 3);
  EXPECT_EQ(job.exit->signal, 0);
  // Reaped, not a zombie: the group no longer exists, and Signal is now a no-op.
  EXPECT_TRUE(IsGone(-(*process)->pid()));
  (*process)->Signal(SIGKILL);
}

TEST_F(PosixSpawnerTest, GivesTheJobItsClientsUmaskAndSoftLimits) {
  rlimit files;
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &files), 0);
  ASSERT_GT(files.rlim_cur, 100u);
  const mode_t own = umask(022);
  umask(own);
  const uint32_t other_mask = own == 077 ? 027 : 077;
  auto settings = std::make_shared<ProcessSettings>();
  settings->umask = other_mask;
  settings->limits.push_back({.resource = RLIMIT_NOFILE, .soft = 100});
  // Above the hard limit: lowered to it, not refused.
  settings->limits.push_back({.resource = RLIMIT_CORE, .soft = RLIM_INFINITY});
  settings_for_next_ = settings;
  JobRecord job = Run(Sh("umask; ulimit -n; touch made; stat -c %a made"), dir_);
  rlimit core;
  ASSERT_EQ(getrlimit(RLIMIT_CORE, &core), 0);
  EXPECT_EQ(job.exit->exit_code, 0) << job.err;
  EXPECT_EQ(job.out, absl::StrFormat("%04o\n100\n%o\n", other_mask, 0666 & ~other_mask));
  EXPECT_EQ(job.err, "");
}

TEST_F(PosixSpawnerTest, NeedsTheHelperOnlyForSettingsOtherThanItsOwn) {
  PosixSpawnerOptions options;
  options.exec_helper = dir_ + "/no-such-helper";
  spawner_ = NewPosixSpawner(options);
  rlimit files;
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &files), 0);
  const mode_t own = umask(022);
  umask(own);
  auto same = std::make_shared<ProcessSettings>();
  same->umask = own;
  same->limits.push_back({.resource = RLIMIT_NOFILE, .soft = files.rlim_cur});
  settings_for_next_ = same;
  JobRecord job = Run(Sh("umask"));
  EXPECT_EQ(job.exit->exit_code, 0);
  EXPECT_EQ(job.out, absl::StrFormat("%04o\n", own));

  auto other = std::make_shared<ProcessSettings>(*same);
  other->umask = own == 077 ? 027 : 077;
  settings_for_next_ = other;
  absl::Status status = StartError(Sh("true"));
  EXPECT_TRUE(absl::IsFailedPrecondition(status)) << status;
  EXPECT_THAT(status.message(), HasSubstr("no-such-helper"));
}

// The job finds its jobserver where MAKEFLAGS says, takes a token, puts one back, and has
// nothing else open but its standard streams.
TEST_F(PosixSpawnerTest, GivesTheJobItsJobserverAtFds3And4) {
  auto tokens = TokenPipe::Open(JobserverStyle::kPipe);
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  ASSERT_EQ((*tokens)->Put(2), 2);
  tokens_for_next_ = tokens->get();
  JobRecord job =
      Run(Sh("echo \"[$MAKEFLAGS]\"; head -c 1 <&3; echo; printf + >&4; printf ++ >&4; "
             "for n in 0 1 2 3 4 5 6 7 8 9 10 11 12; do [ -e /proc/$$/fd/$n ] && printf '%s ' $n; "
             "done; true"),
          "/", {"PATH=/usr/bin:/bin", "MAKEFLAGS=k -j8 --jobserver-auth=8,9 -- X=1"});
  EXPECT_EQ(job.exit->exit_code, 0) << job.err;
  EXPECT_EQ(job.out, "[k -j4 --jobserver-auth=3,4 -- X=1]\n+\n0 1 2 3 4 ");
  EXPECT_EQ((*tokens)->Take(10), 1);       // one left
  EXPECT_EQ((*tokens)->Returned(100), 3);  // three put back
}

TEST_F(PosixSpawnerTest, AJobWithoutAJobserverKeepsNoneOfItsClients) {
  JobRecord job = Run(
      Sh("echo \"[${MAKEFLAGS-unset}] [${MFLAGS-unset}]\"; [ -e /proc/$$/fd/3 ] || echo closed"),
      "/", {"PATH=/usr/bin:/bin", "MAKEFLAGS= -j8 --jobserver-auth=3,4", "MFLAGS=-k -j8"});
  EXPECT_EQ(job.out, "[unset] [-k]\nclosed\n");
}

TEST_F(PosixSpawnerTest, GivesTheJobItsJobserverAsAFifo) {
  auto tokens = TokenPipe::Open(JobserverStyle::kFifo, dir_ + "/js-1");
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  ASSERT_EQ((*tokens)->Put(1), 1);
  tokens_for_next_ = tokens->get();
  JobRecord job =
      Run(Sh("echo \"[$MAKEFLAGS]\"; f=${MAKEFLAGS##*fifo:}; head -c 1 <\"$f\"; echo; "
             "[ -e /proc/$$/fd/3 ] || echo closed"));
  EXPECT_EQ(job.out, absl::StrCat("[ -j4 --jobserver-auth=fifo:", dir_, "/js-1]\n+\nclosed\n"));
}

TEST_F(PosixSpawnerTest, ReportsDeathBySignal) {
  JobRecord job = Run(Sh("kill -TERM $$"));
  EXPECT_EQ(job.exit->signal, SIGTERM);
}

TEST_F(PosixSpawnerTest, KeepsStdoutAndStderrApart) {
  JobRecord job = Run(Sh("echo out1; echo err1 >&2; echo out2; echo err2 >&2"));
  EXPECT_EQ(job.out, "out1\nout2\n");
  EXPECT_EQ(job.err, "err1\nerr2\n");
  EXPECT_EQ(job.exit->exit_code, 0);
}

TEST_F(PosixSpawnerTest, SignalReachesTheWholeGroup) {
  auto process = Start(1, Sh("sleep 30 & echo $!; wait"));
  ASSERT_TRUE(process.ok()) << process.status();
  ASSERT_TRUE(events_.AwaitLine(1));
  const pid_t sleep_pid = ParsePid(events_.Get(1).out);
  (*process)->Signal(SIGTERM);
  ASSERT_TRUE(events_.AwaitExit(1));
  EXPECT_EQ(events_.Get(1).exit->signal, SIGTERM);
  std::optional<int> sleep_status = ReapOrphan(sleep_pid);
  ASSERT_TRUE(sleep_status.has_value()) << "the background sleep survived";
  EXPECT_TRUE(WIFSIGNALED(*sleep_status));
  EXPECT_TRUE(IsGone(sleep_pid));
  EXPECT_TRUE(IsGone(-(*process)->pid()));
}

TEST_F(PosixSpawnerTest, PausedOutputHoldsTheJobBackAndLosesNothing) {
  constexpr size_t kBytes = 4 << 20;  // far more than the pipe holds
  auto process = Start(1, Sh("head -c 4194304 /dev/zero"));
  ASSERT_TRUE(process.ok()) << process.status();
  (*process)->SetOutputPaused(true);
  // A negative check, so bounded by time: paused, the job cannot write 4 MiB into a 64 KiB
  // pipe, and must still be running half a second later.
  absl::SleepFor(absl::Milliseconds(500));
  EXPECT_FALSE(events_.Get(1).exit.has_value()) << "the job finished while its output was paused";
  EXPECT_LT(events_.Get(1).out.size(), kBytes);
  (*process)->SetOutputPaused(false);
  ASSERT_TRUE(events_.AwaitExit(1));
  EXPECT_EQ(events_.Get(1).out.size(), kBytes);
  EXPECT_EQ(events_.Get(1).exit->exit_code, 0);
}

TEST_F(PosixSpawnerTest, PausedJobThatExitsIsStillDrainedAndReported) {
  auto process = Start(1, Sh("echo before; exec >&-; echo gone >&2"));
  ASSERT_TRUE(process.ok()) << process.status();
  (*process)->SetOutputPaused(true);
  ASSERT_TRUE(events_.AwaitExit(1));
  EXPECT_EQ(events_.Get(1).out, "before\n");
  EXPECT_EQ(events_.Get(1).err, "gone\n");
}

TEST_F(PosixSpawnerTest, LeaderExitKillsItsChildrenAndReportsPromptly) {
  const absl::Time start = absl::Now();
  JobRecord job = Run(Sh("sleep 30 & echo $! >&2; echo hi"));
  // The sleep holds the pipes; without the group kill this would take 30 s.
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  EXPECT_EQ(job.out, "hi\n");
  EXPECT_EQ(job.exit->exit_code, 0);
  std::optional<int> sleep_status = ReapOrphan(ParsePid(job.err));
  ASSERT_TRUE(sleep_status.has_value()) << "the background sleep survived";
  EXPECT_TRUE(WIFSIGNALED(*sleep_status));
  EXPECT_EQ(WTERMSIG(*sleep_status), SIGKILL);
}

TEST_F(PosixSpawnerTest, StopsWaitingForAnEscapedDescendantAfterOrphanDrain) {
  PosixSpawnerOptions options = WithHelper();
  options.orphan_drain = absl::Milliseconds(300);
  spawner_ = NewPosixSpawner(options);
  // The escapee leaves the group with setsid and holds both pipes; the leader waits until
  // it has (the pid file appears only after setsid), then exits.
  const absl::Time start = absl::Now();
  JobRecord job = Run(Sh("setsid sh -c 'echo $$ > pid.tmp && mv pid.tmp pid; exec sleep 30' & "
                         "while [ ! -e pid ]; do sleep 0.01; done; cat pid >&2; echo hi"),
                      dir_);
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  EXPECT_EQ(job.out, "hi\n");
  EXPECT_EQ(job.exit->exit_code, 0);
  const pid_t escapee = ParsePid(job.err);
  ASSERT_GT(escapee, 0);
  EXPECT_TRUE(StillRuns(escapee)) << "the escapee should still run";
  kill(escapee, SIGKILL);
  EXPECT_TRUE(ReapOrphan(escapee).has_value());
}

// The parent of `pid`, from /proc/PID/stat (0 if it cannot be read).
pid_t ParentOf(pid_t pid) {
  std::string stat;
  std::getline(std::ifstream(absl::StrCat("/proc/", pid, "/stat")), stat);
  const size_t paren = stat.rfind(')');
  int parent = 0;
  if (paren == std::string::npos) return 0;
  std::vector<std::string> fields = absl::StrSplit(stat.substr(paren + 2), ' ');
  return fields.size() > 1 && absl::SimpleAtoi(fields[1], &parent) ? parent : 0;
}

// Waits until `pid`, reaped by someone else (the spawner), no longer exists at all: not
// even as a zombie. False if it still does after kTimeout.
bool AwaitGone(pid_t pid) {
  const absl::Time end = absl::Now() + kTimeout;
  while (!IsGone(pid)) {
    if (absl::Now() >= end) return false;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return true;
}

class OrphanReapingTest : public PosixSpawnerTest {
 protected:
  void SetUp() override {
    PosixSpawnerTest::SetUp();
    PosixSpawnerOptions options = WithHelper();
    options.orphan_drain = absl::Milliseconds(300);
    options.reap_orphans = true;
    options.instance = "test-instance";
    spawner_ = NewPosixSpawner(options);
  }
};

TEST_F(OrphanReapingTest, AnEscapeeOfASignalledJobIsKilledAndReaped) {
  // setsid: its own session and group, out of reach of the group kill; its parent waits, so
  // the escapee comes to us only when the leader is killed.
  auto process = Start(1, Sh("setsid sleep 971.25 & echo $!; wait"));
  ASSERT_TRUE(process.ok()) << process.status();
  ASSERT_TRUE(events_.AwaitLine(1));
  const pid_t escapee = ParsePid(events_.Get(1).out);
  ASSERT_GT(escapee, 0);
  // It has left the group by the time its pid is printed only if setsid has run: wait.
  const absl::Time end = absl::Now() + kTimeout;
  while (getpgid(escapee) != escapee && absl::Now() < end) absl::SleepFor(absl::Milliseconds(5));
  ASSERT_EQ(getpgid(escapee), escapee) << "the escapee did not leave the job's group";
  (*process)->Signal(SIGTERM);
  ASSERT_TRUE(events_.AwaitExit(1));
  EXPECT_TRUE(AwaitGone(escapee)) << "the escapee of a signalled job survived, or is unreaped";
}

TEST_F(OrphanReapingTest, AnEscapeeOfAJobThatEndedByItselfIsLeftAloneAndReapedWhenItExits) {
  // The leader ends once the escapee is out of its group (else the group kill takes it).
  JobRecord job = Run(Sh("setsid sh -c 'echo $$ > pid.tmp && mv pid.tmp pid; exec sleep 971.5' "
                         ">/dev/null 2>&1 & while [ ! -e pid ]; do sleep 0.01; done; cat pid"),
                      dir_);
  EXPECT_EQ(job.exit->exit_code, 0);
  const pid_t escapee = ParsePid(job.out);
  ASSERT_GT(escapee, 0);
  // A server a job started (a compiler cache's) goes on after its job; it is ours now.
  EXPECT_TRUE(StillRuns(escapee)) << "the escapee should still run";
  EXPECT_EQ(ParentOf(escapee), getpid());
  kill(escapee, SIGKILL);
  EXPECT_TRUE(AwaitGone(escapee)) << "the spawner did not reap the orphan";
}

TEST_F(OrphanReapingTest, EachJobIsToldItsIdAndDistdInItsEnvironmentInsteadOfTheClients) {
  const std::vector<std::string> env = {"DISTD_JOB_ID=999", "DISTD_INSTANCE=forged", "A=1"};
  EXPECT_EQ(Run({"/bin/sh", "-c",
                 "echo $DISTD_JOB_ID $DISTD_INSTANCE $A; env | grep -c "
                 "'^DISTD_JOB_ID=\\|^DISTD_INSTANCE='"},
                "/", env)
                .out,
            "1 test-instance 1\n2\n");
}

// Jobs in cgroups of their own, where this host lets the test make a cgroup v2 directory
// (as distd does in the one delegated to it).
class CgroupTest : public PosixSpawnerTest {
 protected:
  void SetUp() override {
    PosixSpawnerTest::SetUp();
    const std::optional<std::string> mount = Cgroup2Mount();
    if (!mount.has_value()) GTEST_SKIP() << "no cgroup v2 hierarchy is mounted";
    static int made = 0;  // each test a cgroup of its own: one left by another fails no other
    base_ = absl::StrCat(*mount, "/distd-spawner-test.", getpid(), ".", ++made);
    if (mkdir(base_.c_str(), 0755) != 0) {
      const int error = errno;
      base_.clear();
      GTEST_SKIP() << "cannot make a cgroup here: " << strerror(error);
    }
    PosixSpawnerOptions options = WithHelper();
    options.orphan_drain = absl::Milliseconds(300);
    options.reap_orphans = true;
    options.cgroup_dir = base_;
    spawner_ = NewPosixSpawner(options);
  }
  void TearDown() override {
    spawner_.reset();
    if (!base_.empty()) {
      EXPECT_EQ(rmdir(base_.c_str()), 0) << "a job's cgroup was left";
    }
    PosixSpawnerTest::TearDown();
  }
  // Polls until `path` is gone.
  static bool AwaitNoFile(const std::string& path) {
    const absl::Time end = absl::Now() + kTimeout;
    while (access(path.c_str(), F_OK) == 0) {
      if (absl::Now() > end) return false;
      absl::SleepFor(absl::Milliseconds(10));
    }
    return true;
  }
  std::string base_;
};

TEST_F(CgroupTest, EachJobRunsInACgroupOfItsOwn) {
  JobRecord job = Run({"/bin/sh", "-c", "cat /proc/self/cgroup | grep '^0::'"});
  EXPECT_EQ(job.exit->exit_code, 0);
  EXPECT_THAT(job.out, ::testing::EndsWith(absl::StrCat(base_.substr(Cgroup2Mount()->size()),
                                                        "/job-", next_id_ - 1, "\n")));
  EXPECT_TRUE(AwaitNoFile(JobCgroup(base_, next_id_ - 1))) << "its cgroup stayed";
}

TEST_F(CgroupTest, AStoppedJobIsKilledWithWhatLeftItsGroupAndReplacedItsEnvironment) {
  // Out of reach of the group kill (setsid) and of the orphan rule (no DISTD_JOB_ID left):
  // only the cgroup knows it is the job's.
  auto process = Start(1,
                       Sh("env -i setsid sh -c 'echo $$ > escapee.tmp && mv escapee.tmp "
                          "escapee; exec sleep 971.9' & wait"),
                       dir_);
  ASSERT_TRUE(process.ok()) << process.status();
  const std::string file = absl::StrCat(dir_, "/escapee");
  const absl::Time end = absl::Now() + kTimeout;
  while (access(file.c_str(), F_OK) != 0 && absl::Now() < end) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  std::ifstream in(file);
  pid_t escapee = 0;
  ASSERT_TRUE(in >> escapee) << "the escapee did not start";
  ASSERT_EQ(getpgid(escapee), escapee);
  EXPECT_EQ(ReadJobMark(escapee).job, 0u) << "the escapee kept its job's mark";
  (*process)->Signal(SIGTERM);
  ASSERT_TRUE(events_.AwaitExit(1));
  EXPECT_TRUE(AwaitGone(escapee)) << "the escapee of a stopped job survived";
  EXPECT_TRUE(AwaitNoFile(JobCgroup(base_, 1))) << "its cgroup stayed";
}

TEST_F(CgroupTest, TheCgroupOfAJobThatLeftAServerGoesWhenTheServerEnds) {
  JobRecord job = Run(Sh("env -i setsid sh -c 'echo $$ > pid.tmp && mv pid.tmp pid; exec sleep "
                         "971.95' >/dev/null 2>&1 & while [ ! -e pid ]; do sleep 0.01; done; "
                         "cat pid"),
                      dir_);
  EXPECT_EQ(job.exit->exit_code, 0);
  const pid_t server = ParsePid(job.out);
  ASSERT_GT(server, 0);
  const std::string cgroup = JobCgroup(base_, next_id_ - 1);
  EXPECT_TRUE(StillRuns(server)) << "a job that ended by itself keeps its server";
  EXPECT_EQ(access(cgroup.c_str(), F_OK), 0) << "a cgroup with a process in it was removed";
  kill(server, SIGKILL);
  EXPECT_TRUE(AwaitGone(server));
  EXPECT_TRUE(AwaitNoFile(cgroup)) << "the empty cgroup stayed";
}

TEST_F(CgroupTest, ARestartKillsThePreviousDistdsUnfinishedJobsCgroupsAndNoOtherDistds) {
  // As a killed distd of instance "prev" left them: job 5 unfinished, job 6 finished with a
  // server still running, job 7 empty; and a live distd's ("other") jobs.
  const auto join = [](const std::string& cgroup) {
    mkdir(cgroup.c_str(), 0755);
    const pid_t pid = fork();
    if (pid == 0) {
      std::ofstream(cgroup + "/cgroup.procs") << 0 << std::flush;
      execl("/bin/sleep", "sleep", "971.99", static_cast<char*>(nullptr));
      _exit(127);
    }
    // In its cgroup once its cgroup.procs lists it.
    const absl::Time end = absl::Now() + kTimeout;
    for (std::string procs; absl::Now() < end; absl::SleepFor(absl::Milliseconds(5))) {
      std::ifstream in(cgroup + "/cgroup.procs");
      if (std::getline(in, procs) && procs == std::to_string(pid)) break;
    }
    return pid;
  };
  const std::string prev = InstanceCgroup(base_, "prev"), other = InstanceCgroup(base_, "other");
  mkdir(prev.c_str(), 0755);
  mkdir(other.c_str(), 0755);
  const pid_t unfinished = join(JobCgroup(prev, 5));
  const pid_t server = join(JobCgroup(prev, 6));
  mkdir(JobCgroup(prev, 7).c_str(), 0755);
  mkdir(JobCgroup(other, 5).c_str(), 0755);
  const pid_t others = join(JobCgroup(other, 8));
  const absl::flat_hash_map<JobId, int> killed =
      KillLeftoverCgroups(base_, "prev", [](JobId id) { return id == 5 || id == 7; });
  EXPECT_EQ(killed.size(), 1u);
  EXPECT_EQ(killed.contains(5) ? killed.at(5) : 0, 1);
  int status = 0;
  ASSERT_EQ(waitpid(unfinished, &status, 0), unfinished);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  EXPECT_NE(access(JobCgroup(prev, 5).c_str(), F_OK), 0) << "the killed job's cgroup stayed";
  EXPECT_NE(access(JobCgroup(prev, 7).c_str(), F_OK), 0) << "an empty cgroup stayed";
  EXPECT_TRUE(StillRuns(server)) << "a finished job's server was killed";
  EXPECT_EQ(access(JobCgroup(prev, 6).c_str(), F_OK), 0);
  EXPECT_TRUE(StillRuns(others)) << "another distd's job was killed";
  EXPECT_EQ(access(JobCgroup(other, 5).c_str(), F_OK), 0) << "another distd's cgroup went";
  for (pid_t pid : {server, others}) {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  }
  // What is left goes once it is empty (and TearDown checks that nothing is).
  const absl::Time end = absl::Now() + kTimeout;
  while (!(RemoveCgroup(prev) && RemoveCgroup(other)) && absl::Now() < end) {
    absl::SleepFor(absl::Milliseconds(5));
  }
}

TEST_F(OrphanReapingTest, ManyJobsWithEscapeesFromFourThreadsLoseNoExitAndLeaveNothing) {
  // Leaders spawned on several threads while passes list the children: none may be taken
  // for an orphan (reaped behind the spawner's back, its exit lost). Half end by themselves
  // leaving an escapee, half are signalled with one.
  constexpr int kThreads = 4;
  constexpr int kPerThread = 10;
  auto id_of = [](int t, int i) { return static_cast<JobId>(100 + t * kPerThread + i); };
  std::vector<std::thread> threads;
  std::vector<std::unique_ptr<Process>> processes(kThreads * kPerThread);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        // Each job's escapee says with a file of its own that it has left the group.
        const std::string ready = absl::StrCat("ready.", id_of(t, i));
        const std::string escape =
            absl::StrCat("setsid sh -c 'echo $$ > ", ready, ".tmp && mv ", ready, ".tmp ", ready,
                         "; exec sleep 971.75' >/dev/null 2>&1 & ");
        auto process = Start(id_of(t, i),
                             Sh(i % 2 == 0 ? absl::StrCat(escape, "while [ ! -e ", ready,
                                                          " ]; do sleep 0.01; done; exit 3")
                                           : absl::StrCat(escape, "wait")),
                             dir_);
        ASSERT_TRUE(process.ok()) << process.status();
        if (i % 2 == 1) {
          const absl::Time end = absl::Now() + kTimeout;
          while (!std::filesystem::exists(absl::StrCat(dir_, "/", ready)) && absl::Now() < end) {
            absl::SleepFor(absl::Milliseconds(5));
          }
          (*process)->Signal(SIGTERM);
        }
        processes[t * kPerThread + i] = *std::move(process);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) {
      ASSERT_TRUE(events_.AwaitExit(id_of(t, i))) << "job " << id_of(t, i);
      const ExitStatus exit = *events_.Get(id_of(t, i)).exit;
      if (i % 2 == 0) {
        EXPECT_EQ(exit.exit_code, 3) << "job " << id_of(t, i);
      } else {
        EXPECT_EQ(exit.signal, SIGTERM) << "job " << id_of(t, i);
      }
    }
  }
  // Each ready file holds its escapee's pid. Those of signalled jobs are killed and reaped;
  // the others run on as our children until we end them, and are reaped then.
  std::vector<pid_t> left;
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) {
      std::string text;
      std::getline(std::ifstream(absl::StrCat(dir_, "/ready.", id_of(t, i))), text);
      pid_t escapee = 0;
      ASSERT_TRUE(absl::SimpleAtoi(text, &escapee)) << "job " << id_of(t, i) << ": " << text;
      if (i % 2 == 1) {
        EXPECT_TRUE(AwaitGone(escapee)) << "the escapee of signalled job " << id_of(t, i);
      } else {
        EXPECT_TRUE(StillRuns(escapee)) << "the escapee of job " << id_of(t, i) << " was killed";
        EXPECT_EQ(ParentOf(escapee), getpid());
        left.push_back(escapee);
      }
    }
  }
  for (pid_t pid : left) kill(pid, SIGKILL);
  for (pid_t pid : left) EXPECT_TRUE(AwaitGone(pid)) << "orphan " << pid << " not reaped";
}

// 100 MB of a 63-byte period: a lost, repeated or reordered chunk shifts the pattern.
class PatternChecker : public ProcessEvents {
 public:
  static constexpr absl::string_view kLine =
      "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ\n";
  void OnProcessOutput(JobId, OutputStream stream, absl::string_view data) override {
    absl::MutexLock lock(&mu_);
    if (stream != OutputStream::kStdout) {
      stderr_bytes_ += data.size();
      return;
    }
    for (char c : data) {
      if (c != kLine[bytes_ % kLine.size()] && first_mismatch_ < 0) first_mismatch_ = bytes_;
      hash_ = (hash_ ^ static_cast<uint8_t>(c)) * 1099511628211u;
      ++bytes_;
    }
  }
  void OnProcessExit(JobId, ExitStatus status) override {
    absl::MutexLock lock(&mu_);
    exit_ = status;
  }
  bool AwaitExit() {
    absl::MutexLock lock(&mu_);
    auto done = [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return exit_.has_value(); };
    return mu_.AwaitWithTimeout(absl::Condition(&done), kTimeout);
  }

  absl::Mutex mu_;
  int64_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t stderr_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t first_mismatch_ ABSL_GUARDED_BY(mu_) = -1;
  uint64_t hash_ ABSL_GUARDED_BY(mu_) = 14695981039346656037u;  // FNV-1a 64
  std::optional<ExitStatus> exit_ ABSL_GUARDED_BY(mu_);
};

TEST_F(PosixSpawnerTest, DeliversOneHundredMegabytesIntact) {
  constexpr int64_t kBytes = 100 * 1024 * 1024;
  uint64_t expected_hash = 14695981039346656037u;
  for (int64_t i = 0; i < kBytes; ++i) {
    expected_hash = (expected_hash ^ static_cast<uint8_t>(
                                         PatternChecker::kLine[i % PatternChecker::kLine.size()])) *
                    1099511628211u;
  }
  PatternChecker checker;
  const std::vector<std::string> argv = Sh(
      absl::StrCat("yes ", absl::StripSuffix(PatternChecker::kLine, "\n"), " | head -c ", kBytes));
  const std::string cwd = "/";
  auto process = spawner_->Start({1, &argv, &cwd, &kEnv, nullptr}, &checker);
  ASSERT_TRUE(process.ok()) << process.status();
  ASSERT_TRUE(checker.AwaitExit());
  absl::MutexLock lock(&checker.mu_);
  EXPECT_EQ(checker.exit_->exit_code, 0);
  EXPECT_EQ(checker.bytes_, kBytes);
  EXPECT_EQ(checker.first_mismatch_, -1);
  EXPECT_EQ(checker.hash_, expected_hash);
  EXPECT_EQ(checker.stderr_bytes_, 0);
}

// A pipe to forward a job's output to: its write end goes into the job's OutputTargets
// (non-blocking, as the spawner requires), the test keeps the read end.
class TargetPipe {
 public:
  explicit TargetPipe(int capacity = 0) {
    int fds[2];
    EXPECT_EQ(pipe2(fds, O_CLOEXEC), 0);
    read_fd_ = fds[0];
    write_fd_ = fds[1];
    fcntl(write_fd_, F_SETFL, O_NONBLOCK);
    if (capacity > 0) fcntl(write_fd_, F_SETPIPE_SZ, capacity);
  }
  ~TargetPipe() {
    if (read_fd_ >= 0) close(read_fd_);
    if (write_fd_ >= 0) close(write_fd_);
  }
  int TakeWriteEnd() { return std::exchange(write_fd_, -1); }
  void CloseReadEnd() {
    close(read_fd_);
    read_fd_ = -1;
  }
  // What arrives until EOF; nullopt if EOF does not come within `wait` (a writer is left).
  // With no wait: what is in the pipe, if no writer is left.
  std::optional<std::string> ReadToEof(absl::Duration wait = kTimeout) {
    std::string data;
    const absl::Time deadline = absl::Now() + wait;
    char buffer[65536];
    while (true) {
      pollfd p = {read_fd_, POLLIN, 0};
      const int64_t left = std::max<int64_t>(0, absl::ToInt64Milliseconds(deadline - absl::Now()));
      if (poll(&p, 1, static_cast<int>(left)) != 1) return std::nullopt;
      ssize_t n = read(read_fd_, buffer, sizeof(buffer));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return n == 0 ? std::optional<std::string>(data) : std::nullopt;
      data.append(buffer, n);
    }
  }

 private:
  int read_fd_ = -1;
  int write_fd_ = -1;
};

TEST_F(PosixSpawnerTest, ForwardsOutputToTheTargetsAndStillReportsIt) {
  TargetPipe out, err;
  targets_for_next_ = std::make_shared<OutputTargets>(out.TakeWriteEnd(), err.TakeWriteEnd());
  JobRecord job = Run(Sh("echo out1; echo err1 >&2; echo out2"));
  EXPECT_EQ(job.exit->exit_code, 0);
  EXPECT_EQ(job.out, "out1\nout2\n");
  EXPECT_EQ(job.err, "err1\n");
  // EOF already: the spawner let go of the targets before it reported the exit.
  EXPECT_EQ(out.ReadToEof(absl::ZeroDuration()), "out1\nout2\n");
  EXPECT_EQ(err.ReadToEof(absl::ZeroDuration()), "err1\n");
}

TEST_F(PosixSpawnerTest, TwoStreamsOnOneFileAreNotWrittenIntoEachOther) {
  // `2>&1` into a pipe that is read slowly: stdout's 1 MiB waits in the daemon while stderr
  // speaks. The file must get the two streams exactly in the order the daemon read them, chunk
  // after whole chunk; with a queue per stream the marker would be written as soon as the pipe
  // had room, into the middle of a chunk of stdout. (Which of two pipes ready at once is read
  // first is not fixed, so the order read is the reference, not the order written.)
  TargetPipe both(4096);
  const int fd = both.TakeWriteEnd();
  targets_for_next_ = std::make_shared<OutputTargets>(fd, fd);
  auto process = Start(1, Sh("head -c 1048576 /dev/zero; echo MARK >&2; echo end"));
  ASSERT_TRUE(process.ok()) << process.status();
  std::optional<std::string> got = both.ReadToEof();
  ASSERT_TRUE(got.has_value());
  ASSERT_TRUE(events_.AwaitExit(1));
  const std::string read = events_.Get(1).both;
  ASSERT_EQ(got->size(), (1u << 20) + 9);
  EXPECT_TRUE(*got == read) << "MARK written at " << got->find("MARK") << ", read at "
                            << read.find("MARK");
  EXPECT_EQ(events_.Get(1).err, "MARK\n");
}

TEST_F(PosixSpawnerTest, OnlyTheStreamsWithATargetAreForwarded) {
  TargetPipe err;
  targets_for_next_ = std::make_shared<OutputTargets>(-1, err.TakeWriteEnd());
  JobRecord job = Run(Sh("echo out; echo err >&2"));
  EXPECT_EQ(job.out, "out\n");
  EXPECT_EQ(err.ReadToEof(absl::ZeroDuration()), "err\n");
}

TEST_F(PosixSpawnerTest, APausedJobStaysHeldBackWhenItsTargetHasRoomAgain) {
  TargetPipe out(4096);
  targets_for_next_ = std::make_shared<OutputTargets>(out.TakeWriteEnd(), -1);
  auto process = Start(1, Sh("head -c 4194304 /dev/zero"));
  ASSERT_TRUE(process.ok()) << process.status();
  ASSERT_TRUE(events_.AwaitOutput(1));
  (*process)->SetOutputPaused(true);
  // Take what comes for half a second (a negative check, so bounded by time): the target
  // empties, but the pause must keep the pipe unread, so the job cannot finish.
  std::optional<std::string> early = out.ReadToEof(absl::Milliseconds(500));
  EXPECT_FALSE(early.has_value()) << "the target was closed while the job was paused";
  EXPECT_FALSE(events_.Get(1).exit.has_value()) << "the job finished while paused";
  (*process)->SetOutputPaused(false);
  std::optional<std::string> rest = out.ReadToEof();
  ASSERT_TRUE(rest.has_value());
  ASSERT_TRUE(events_.AwaitExit(1));
  EXPECT_EQ(events_.Get(1).out.size(), 4u << 20);
}

TEST_F(PosixSpawnerTest, AFullTargetHoldsTheJobBackAndTheExitWaitsForTheLastByte) {
  constexpr size_t kBytes = 4 << 20;  // far more than the pipe, the target and a chunk hold
  TargetPipe out(4096);
  targets_for_next_ = std::make_shared<OutputTargets>(out.TakeWriteEnd(), -1);
  auto process = Start(1, Sh("head -c 4194304 /dev/zero"));
  ASSERT_TRUE(process.ok()) << process.status();
  // A negative check, so bounded by time: nobody reads the target, so the job cannot write
  // 4 MiB, and the daemon holds no more than a chunk of it.
  absl::SleepFor(absl::Milliseconds(500));
  EXPECT_FALSE(events_.Get(1).exit.has_value()) << "the job finished while its target was full";
  EXPECT_LE(events_.Get(1).out.size(), PosixSpawnerOptions().read_chunk);
  std::optional<std::string> forwarded = out.ReadToEof();
  ASSERT_TRUE(forwarded.has_value()) << "the target was never closed";
  EXPECT_EQ(forwarded->size(), kBytes);
  ASSERT_TRUE(events_.AwaitExit(1));
  EXPECT_EQ(events_.Get(1).out.size(), kBytes);
  EXPECT_EQ(events_.Get(1).exit->exit_code, 0);
}

TEST_F(PosixSpawnerTest, ATargetWhoseReaderIsGoneGivesTheJobSigpipe) {
  TargetPipe out;
  out.CloseReadEnd();
  targets_for_next_ = std::make_shared<OutputTargets>(out.TakeWriteEnd(), -1);
  // `yes` ends only when its stdout breaks; stderr has no target and goes on being read.
  JobRecord job = Run(Sh("echo before >&2; yes; echo \"after $?\" >&2"));
  // (SIGPIPE, blocked in the spawner's thread, did not take the test process down either.)
  EXPECT_EQ(job.err, "before\nafter 141\n");
  EXPECT_EQ(job.exit->exit_code, 0);
}

TEST_F(PosixSpawnerTest, StopForwardingLetsGoOfTheTargetsAndLetsTheJobOn) {
  TargetPipe out(4096);
  targets_for_next_ = std::make_shared<OutputTargets>(out.TakeWriteEnd(), -1);
  auto process = Start(1, Sh("head -c 4194304 /dev/zero; echo done >&2; sleep 977.3"));
  ASSERT_TRUE(process.ok()) << process.status();
  // The first chunk is read and does not fit in the target: from here the job waits for a
  // reader that never comes, unless forwarding stops.
  ASSERT_TRUE(events_.AwaitOutput(1));
  (*process)->StopForwarding();
  // The target is let go of at once, not when the job ends (it is still running).
  std::optional<std::string> forwarded = out.ReadToEof();
  ASSERT_TRUE(forwarded.has_value()) << "the target was not let go of";
  EXPECT_LT(forwarded->size(), 4u << 20);
  ASSERT_TRUE(events_.AwaitJob(1, [](const JobRecord& j) { return j.err == "done\n"; }))
      << "the job was still held back by its target";
  EXPECT_EQ(events_.Get(1).out.size(), 4u << 20);
  (*process)->Signal(SIGKILL);
  ASSERT_TRUE(events_.AwaitExit(1));
}

TEST_F(PosixSpawnerTest, MissingProgramIsNotFound) {
  for (const char* name : {"distd-no-such-program", "/nonexistent/prog", "./missing"}) {
    absl::Status status = StartError({name}, dir_);
    EXPECT_TRUE(absl::IsNotFound(status)) << name << ": " << status;
    EXPECT_THAT(status.message(), HasSubstr(name));
  }
  // A script whose interpreter is missing fails inside posix_spawn with ENOENT.
  WriteFile("script", "#!/nonexistent/interpreter\n", 0755);
  EXPECT_TRUE(absl::IsNotFound(StartError({"./script"}, dir_)));
}

TEST_F(PosixSpawnerTest, MissingDirectoryIsFailedPreconditionEvenForAMissingProgram) {
  absl::Status status = StartError({"distd-no-such-program"}, "/nonexistent/dir");
  EXPECT_TRUE(absl::IsFailedPrecondition(status)) << status;
  EXPECT_THAT(status.message(), HasSubstr("no such directory: /nonexistent/dir"));
  WriteFile("file", "", 0644);
  EXPECT_TRUE(absl::IsFailedPrecondition(StartError({"/bin/true"}, dir_ + "/file")));
}

TEST_F(PosixSpawnerTest, ProgramThatCannotRunIsNotNotFound) {
  const std::string plain = WriteFile("plain", "echo hi\n", 0644);
  const std::string garbage = WriteFile("garbage", "no shebang, no ELF\n", 0755);
  for (const std::string& path : {plain, dir_, garbage}) {
    absl::Status status = StartError({path});
    EXPECT_FALSE(status.ok()) << path;
    EXPECT_FALSE(absl::IsNotFound(status)) << path << ": " << status;
  }
  EXPECT_TRUE(absl::IsPermissionDenied(StartError({plain})));
  EXPECT_TRUE(absl::IsPermissionDenied(StartError({dir_})));
  // Found on PATH but not executable: denied, not "not found".
  EXPECT_TRUE(absl::IsPermissionDenied(StartError({"plain"}, "/", {"PATH=" + dir_})));
}

TEST_F(PosixSpawnerTest, FailedStartsLeakNoFds) {
  WriteFile("garbage", "no shebang, no ELF\n", 0755);  // fails inside posix_spawn: ENOEXEC
  WriteFile("script", "#!/nonexistent/interpreter\n", 0755);
  const int before = CountOpenFds();
  for (int i = 0; i < 200; ++i) {
    EXPECT_FALSE(StartError({"./garbage"}, dir_).ok());
    EXPECT_FALSE(StartError({"./script"}, dir_).ok());
    EXPECT_FALSE(StartError({"missing"}, dir_).ok());
    EXPECT_FALSE(StartError({"/bin/true"}, "/nonexistent").ok());
  }
  EXPECT_EQ(CountOpenFds(), before);
}

TEST_F(PosixSpawnerTest, RelativeProgramResolvesAgainstTheJobDirectory) {
  WriteFile("bin/tool", "#!/bin/sh\necho tool \"$@\"\n", 0755);
  EXPECT_EQ(Run({"./tool", "a"}, dir_ + "/bin").out, "tool a\n");
  EXPECT_EQ(Run({"bin/tool", "b"}, dir_).out, "tool b\n");
}

TEST_F(PosixSpawnerTest, SearchesThePathOfTheJobNotOfTheDaemon) {
  WriteFile("bin/distd-test-tool", "#!/bin/sh\necho found\n", 0755);
  WriteFile("denied/distd-test-tool", "#!/bin/sh\necho denied\n", 0644);
  EXPECT_EQ(Run({"distd-test-tool"}, "/", {"PATH=" + dir_ + "/denied:" + dir_ + "/bin"}).out,
            "found\n");
  // Relative and empty entries are relative to the job's directory.
  EXPECT_EQ(Run({"distd-test-tool"}, dir_, {"PATH=/nonexistent:bin"}).out, "found\n");
  EXPECT_EQ(Run({"distd-test-tool"}, dir_ + "/bin", {"PATH="}).out, "found\n");
  // sh is on the test's PATH, but not on the job's.
  EXPECT_TRUE(absl::IsNotFound(StartError({"sh", "-c", "true"}, "/", {"PATH=/nonexistent"})));
  // Without PATH, the default one.
  EXPECT_EQ(Run({"sh", "-c", "echo ok"}, "/", {}).out, "ok\n");
}

TEST_F(PosixSpawnerTest, EnvironmentIsExactlyTheRequested) {
  EXPECT_EQ(Run({"/usr/bin/env"}, "/", {"A=1", "B=two words", "EMPTY="}).out,
            "A=1\nB=two words\nEMPTY=\n");
  EXPECT_EQ(Run({"/usr/bin/env"}, "/", {}).out, "");
}

TEST_F(PosixSpawnerTest, StdinIsDevNull) {
  JobRecord job = Run({"/bin/cat"});
  EXPECT_EQ(job.exit->exit_code, 0);
  EXPECT_EQ(job.out, "");
  EXPECT_EQ(Run(Sh("readlink /proc/$$/fd/0")).out, "/dev/null\n");
}

TEST_F(PosixSpawnerTest, JobSeesOnlyFdsZeroOneAndTwo) {
  // An fd without CLOEXEC in the daemon: only closefrom keeps it from the job.
  int leaky = open("/dev/null", O_RDONLY);
  ASSERT_GE(leaky, 0);
  ASSERT_EQ(fcntl(leaky, F_GETFD) & FD_CLOEXEC, 0);
  // Once `wait` runs the shell opens nothing, so its fds can be read from here, free of
  // the fds a listing command would open for itself.
  auto process = Start(1, Sh("sleep 30 & echo $!; wait"));
  close(leaky);
  ASSERT_TRUE(process.ok()) << process.status();
  ASSERT_TRUE(events_.AwaitLine(1));
  const pid_t pid = (*process)->pid();
  EXPECT_EQ(FdsOf(pid), (std::set<std::string>{"0", "1", "2"}));
  const std::string fd_dir = absl::StrCat("/proc/", pid, "/fd/");
  EXPECT_EQ(std::filesystem::read_symlink(fd_dir + "0"), "/dev/null");
  const std::string out = std::filesystem::read_symlink(fd_dir + "1");
  const std::string err = std::filesystem::read_symlink(fd_dir + "2");
  EXPECT_THAT(out, testing::StartsWith("pipe:"));
  EXPECT_THAT(err, testing::StartsWith("pipe:"));
  EXPECT_NE(out, err);
  (*process)->Signal(SIGKILL);
  ASSERT_TRUE(events_.AwaitExit(1));
  EXPECT_TRUE(ReapOrphan(ParsePid(events_.Get(1).out)).has_value());
}

TEST_F(PosixSpawnerTest, HandleMayBeDroppedWhileTheJobRuns) {
  ASSERT_TRUE(Start(1, Sh("echo done")).ok());  // the handle dies here
  ASSERT_TRUE(events_.AwaitExit(1));
  EXPECT_EQ(events_.Get(1).out, "done\n");
}

TEST_F(PosixSpawnerTest, FiftyConcurrentJobsFromFourThreads) {
  constexpr int kJobs = 50;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([this, t] {
      for (int i = t; i < kJobs; i += 4) {
        std::vector<std::string> argv = Sh("echo $0; echo e$0 >&2; exit $(($0 % 7))");
        argv.push_back(absl::StrCat(i));
        auto process = Start(i, argv);
        EXPECT_TRUE(process.ok()) << process.status();
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int i = 0; i < kJobs; ++i) {
    ASSERT_TRUE(events_.AwaitExit(i)) << i;
    JobRecord job = events_.Get(i);
    EXPECT_EQ(job.out, absl::StrCat(i, "\n"));
    EXPECT_EQ(job.err, absl::StrCat("e", i, "\n"));
    EXPECT_EQ(job.exit->exit_code, i % 7);
    EXPECT_EQ(job.exit->signal, 0);
  }
}

TEST_F(PosixSpawnerTest, TwoHundredJobsLeakNoFds) {
  const int before = CountOpenFds();
  for (int batch = 0; batch < 4; ++batch) {
    std::vector<std::unique_ptr<Process>> processes;
    for (int i = 0; i < 50; ++i) {
      auto process = Start(batch * 50 + i, Sh("echo x; echo y >&2"));
      ASSERT_TRUE(process.ok()) << process.status();
      processes.push_back(*std::move(process));
    }
    for (int i = 0; i < 50; ++i) ASSERT_TRUE(events_.AwaitExit(batch * 50 + i));
  }
  // Every fd of a job is closed before its exit is reported.
  EXPECT_EQ(CountOpenFds(), before);
}

TEST_F(PosixSpawnerTest, DestructorKillsAndReapsWithoutFurtherEvents) {
  auto process = Start(1, Sh("sleep 30 & echo $!; wait"));
  ASSERT_TRUE(process.ok()) << process.status();
  ASSERT_TRUE(events_.AwaitLine(1));
  const pid_t leader = (*process)->pid();
  const pid_t sleep_pid = ParsePid(events_.Get(1).out);
  events_.Close();
  const absl::Time start = absl::Now();
  spawner_.reset();
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  EXPECT_FALSE(events_.Get(1).exit.has_value());
  EXPECT_TRUE(IsGone(leader)) << "the leader was not reaped";
  std::optional<int> sleep_status = ReapOrphan(sleep_pid);
  ASSERT_TRUE(sleep_status.has_value()) << "the background sleep survived";
  EXPECT_EQ(WTERMSIG(*sleep_status), SIGKILL);
  EXPECT_TRUE(IsGone(-leader));
  (*process)->Signal(SIGKILL);  // outlives the spawner harmlessly
}

}  // namespace
}  // namespace distd::spawn
