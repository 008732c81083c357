// KillLeftoverGroup and KillMarkedLeftovers against real processes.
#include "server/spawn/leftovers.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "server/spawn/orphans.h"

namespace distd::spawn {
namespace {

// A group led by a shell with a background child, as a job leaves it: returns the leader's
// pid, and in *child the background sleep's, once both run.
pid_t StartGroup(pid_t* child) {
  const std::string file = ::testing::TempDir() + "leftovers_test." + std::to_string(getpid());
  std::remove(file.c_str());
  const pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    const std::string script = "sleep 981.1 & echo $! > " + file + "; wait";
    execl("/bin/sh", "sh", "-c", script.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  setpgid(pid, pid);  // either side may run first
  for (int i = 0; i < 1000; ++i) {
    std::ifstream in(file);
    if (in >> *child) break;
    usleep(10'000);
  }
  std::remove(file.c_str());
  return pid;
}

// Alive and not a zombie.
bool Running(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t paren = text.rfind(')');
  return paren != std::string::npos && paren + 2 < text.size() && text[paren + 2] != 'Z';
}

bool StopsRunning(pid_t pid) {
  for (int i = 0; i < 500; ++i) {
    if (!Running(pid)) return true;
    usleep(10'000);
  }
  return false;
}

TEST(LeftoversTest, TheJobsGroupIsKilledWholeWithItsLeader) {
  const absl::Time started = absl::Now();
  pid_t child = 0;
  const pid_t leader = StartGroup(&child);
  ASSERT_GT(child, 0);
  ASSERT_TRUE(Running(leader));
  ASSERT_TRUE(Running(child));
  EXPECT_EQ(KillLeftoverGroup(leader, started).killed, 2);
  int status = 0;
  ASSERT_EQ(waitpid(leader, &status, 0), leader);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  EXPECT_TRUE(StopsRunning(child));
}

TEST(LeftoversTest, AGroupWhoseLeaderStartedAtAnotherTimeIsLeftAlone) {
  pid_t child = 0;
  const pid_t leader = StartGroup(&child);
  ASSERT_GT(child, 0);
  // The journal's job started an hour from now: this leader is a pid used again.
  const Leftovers later = KillLeftoverGroup(leader, absl::Now() + absl::Hours(1));
  EXPECT_EQ(later.killed, 0);
  EXPECT_TRUE(later.foreign);
  EXPECT_TRUE(Running(leader));
  EXPECT_TRUE(Running(child));
  // And one that started long before the job is not the job's either.
  EXPECT_TRUE(KillLeftoverGroup(leader, absl::Now() - absl::Hours(1)).foreign);
  // A job whose start is not known kills nothing.
  EXPECT_EQ(KillLeftoverGroup(leader, absl::InfinitePast()).killed, 0);
  EXPECT_TRUE(Running(child));
  kill(-leader, SIGKILL);
  waitpid(leader, nullptr, 0);
}

// A process started as a job of distd `instance` is, in a session of its own (as one that
// left its job's group): `script` run by sh, with the marks in its environment.
pid_t StartMarked(const std::string& instance, JobId job, const std::string& script) {
  const std::string id = "DISTD_JOB_ID=" + std::to_string(job);
  const std::string marks = "DISTD_INSTANCE=" + instance;
  const pid_t pid = fork();
  if (pid == 0) {
    setsid();
    char* const env[] = {const_cast<char*>("PATH=/usr/bin:/bin"), const_cast<char*>(id.c_str()),
                         const_cast<char*>(marks.c_str()), nullptr};
    execle("/bin/sh", "sh", "-c", script.c_str(), static_cast<char*>(nullptr), env);
    _exit(127);
  }
  return pid;
}

// The pid `script` wrote to `file`, once it did.
pid_t PidIn(const std::string& file) {
  pid_t pid = 0;
  for (int i = 0; i < 1000; ++i) {
    std::ifstream in(file);
    if (in >> pid) break;
    usleep(10'000);
  }
  std::remove(file.c_str());
  return pid;
}

TEST(LeftoversTest, MarkedProcessesOfTheWantedJobsOfThatInstanceAreKilled) {
  const std::string file = ::testing::TempDir() + "leftovers_marked." + std::to_string(getpid());
  std::remove(file.c_str());
  // Job 7 of instance "abc": a shell whose child writes its pid once it runs.
  const pid_t shell = StartMarked("abc", 7, "sleep 981.2 & echo $! > " + file + "; wait");
  const pid_t child = PidIn(file);
  ASSERT_GT(child, 0);
  // Job 7 of another distd, and job 8 of this one, which is not asked for.
  const pid_t other = StartMarked("abd", 7, "exec sleep 981.3");
  const pid_t unwanted = StartMarked("abc", 8, "exec sleep 981.4");
  // Both carry their marks once they exec'd (before, they have this test's environment).
  for (auto [pid, instance] : {std::pair(other, "abd"), std::pair(unwanted, "abc")}) {
    for (int i = 0; i < 1000 && ReadJobMark(pid).instance != instance; ++i) usleep(10'000);
  }
  EXPECT_EQ(ReadJobMark(other).instance, "abd");
  EXPECT_EQ(ReadJobMark(other).job, 7u);
  EXPECT_EQ(ReadJobMark(unwanted).job, 8u);
  const absl::flat_hash_map<JobId, int> killed =
      KillMarkedLeftovers("abc", [](JobId id) { return id == 7; });
  EXPECT_EQ(killed.size(), 1u);
  EXPECT_EQ(killed.contains(7) ? killed.at(7) : 0, 2);  // the shell and its sleep
  int status = 0;
  ASSERT_EQ(waitpid(shell, &status, 0), shell);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  EXPECT_TRUE(StopsRunning(child));
  EXPECT_TRUE(Running(other));
  EXPECT_TRUE(Running(unwanted));
  // No instance: nothing is anyone's.
  EXPECT_TRUE(KillMarkedLeftovers("", [](JobId) { return true; }).empty());
  EXPECT_TRUE(Running(unwanted));
  for (pid_t pid : {other, unwanted}) {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  }
}

TEST(LeftoversTest, NothingIsKilledForAGroupThatIsGone) {
  EXPECT_EQ(KillLeftoverGroup(0, absl::Now()).killed, 0);
  EXPECT_EQ(KillLeftoverGroup(1, absl::Now()).killed, 0);
  const pid_t pid = fork();
  if (pid == 0) _exit(0);
  waitpid(pid, nullptr, 0);
  const Leftovers gone = KillLeftoverGroup(pid, absl::Now());
  EXPECT_EQ(gone.killed, 0);
  EXPECT_FALSE(gone.foreign);
}

}  // namespace
}  // namespace distd::spawn
