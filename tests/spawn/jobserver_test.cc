// The jobserver's pieces (spawn/jobserver.h): a job's token pipe in both styles, and the
// MAKEFLAGS a job gets.
#include "server/spawn/jobserver.h"

#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace distd::spawn {
namespace {

using ::testing::ElementsAre;

// What a make holding `fd` could read at once.
int Readable(int fd) {
  int n = 0;
  pollfd ready = {.fd = fd, .events = POLLIN, .revents = 0};
  char token;
  while (poll(&ready, 1, 0) == 1 && read(fd, &token, 1) == 1) ++n;
  return n;
}

TEST(TokenPipeTest, TokensPutAreThereForTheJobAndComeBack) {
  auto pipe = TokenPipe::Open(JobserverStyle::kPipe);
  ASSERT_TRUE(pipe.ok()) << pipe.status();
  EXPECT_EQ((*pipe)->Auth(), "3,4");
  // Above what the spawner puts in place, so that placing one never overwrites the other.
  EXPECT_GE((*pipe)->job_read_fd(), 10);
  EXPECT_GE((*pipe)->job_write_fd(), 10);
  EXPECT_EQ((*pipe)->Put(4), 4);
  EXPECT_EQ((*pipe)->Untaken(), 4);
  EXPECT_EQ((*pipe)->Take(1), 1);                  // distd takes one back before the job does
  EXPECT_EQ(Readable((*pipe)->job_read_fd()), 3);  // the job took the other three
  EXPECT_EQ((*pipe)->Untaken(), 0);
  EXPECT_EQ((*pipe)->Take(3), 0);
  // It puts two back: they reach distd alone, never the job's read end.
  ASSERT_EQ(write((*pipe)->job_write_fd(), "++", 2), 2);
  EXPECT_EQ(Readable((*pipe)->job_read_fd()), 0);
  EXPECT_EQ((*pipe)->Returned(100), 2);
  EXPECT_EQ((*pipe)->Returned(100), 0);
}

TEST(TokenPipeTest, TheWatcherSaysWhichJobGaveTokensBack) {
  auto a = TokenPipe::Open(JobserverStyle::kPipe);
  auto b = TokenPipe::Open(JobserverStyle::kPipe);
  ASSERT_TRUE(a.ok() && b.ok());
  absl::Mutex mu;
  std::vector<uint64_t> calls;
  ReturnWatcher watcher([&](uint64_t id) {
    absl::MutexLock lock(&mu);
    calls.push_back(id);
    (id == 7 ? *a : *b)->Returned(100);  // as the engine does: else the call comes again
  });
  watcher.Watch(7, (*a)->return_fd());
  watcher.Watch(8, (*b)->return_fd());
  ASSERT_EQ(write((*b)->job_write_fd(), "+", 1), 1);
  {
    absl::MutexLock lock(&mu);
    ASSERT_TRUE(
        mu.AwaitWithTimeout(absl::Condition(
                                +[](std::vector<uint64_t>* c) { return !c->empty(); }, &calls),
                            absl::Seconds(30)));
    EXPECT_THAT(calls, ElementsAre(8));
  }
  ASSERT_EQ(write((*a)->job_write_fd(), "+", 1), 1);
  absl::MutexLock lock(&mu);
  ASSERT_TRUE(
      mu.AwaitWithTimeout(absl::Condition(
                              +[](std::vector<uint64_t>* c) { return c->size() >= 2; }, &calls),
                          absl::Seconds(30)));
  EXPECT_THAT(calls, ElementsAre(8, 7));
}

TEST(TokenPipeTest, TheJobsEndsBlockAndAreClosedOnExec) {
  auto pipe = TokenPipe::Open(JobserverStyle::kPipe);
  ASSERT_TRUE(pipe.ok()) << pipe.status();
  for (int fd : {(*pipe)->job_read_fd(), (*pipe)->job_write_fd()}) {
    EXPECT_EQ(fcntl(fd, F_GETFL) & O_NONBLOCK, 0) << fd;  // make expects blocking reads
    EXPECT_NE(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0) << fd;  // no other job inherits them
  }
}

TEST(TokenPipeTest, AFifoIsMadePrivateAndRemovedWithThePipe) {
  char tmpl[] = "/tmp/jobserver_test.XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string path = std::string(tmpl) + "/js-1";
  {
    auto pipe = TokenPipe::Open(JobserverStyle::kFifo, path);
    ASSERT_TRUE(pipe.ok()) << pipe.status();
    EXPECT_EQ((*pipe)->Auth(), "fifo:" + path);
    EXPECT_EQ((*pipe)->job_read_fd(), -1);
    struct stat st;
    ASSERT_EQ(stat(path.c_str(), &st), 0);
    EXPECT_TRUE(S_ISFIFO(st.st_mode));
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    EXPECT_EQ((*pipe)->Put(2), 2);
    EXPECT_EQ((*pipe)->return_fd(), -1);
    // A make 4.4 opens the fifo by its name.
    const int job = open(path.c_str(), O_RDWR | O_CLOEXEC);
    ASSERT_GE(job, 0);
    EXPECT_EQ(Readable(job), 2);
    ASSERT_EQ(write(job, "+", 1), 1);
    EXPECT_EQ((*pipe)->Take(2), 1);
    close(job);
    // A second job may not be given the same fifo: the name is taken.
    EXPECT_FALSE(TokenPipe::Open(JobserverStyle::kFifo, path).ok());
  }
  EXPECT_FALSE(std::filesystem::exists(path));
  std::filesystem::remove_all(tmpl);
}

TEST(JobMakeflagsTest, TheClientsJobserverGivesWayToTheJobs) {
  EXPECT_EQ(JobMakeflags("", "3,4", 4), " -j4 --jobserver-auth=3,4");
  EXPECT_EQ(JobMakeflags(" -j8 --jobserver-auth=5,6", "3,4", 4), " -j4 --jobserver-auth=3,4");
  EXPECT_EQ(JobMakeflags("ks -j --jobserver-fds=5,6 -j8 --jobs=3", "fifo:/r/js", 2),
            "ks -j2 --jobserver-auth=fifo:/r/js");
  // Variables stay after the flags, with their escaped spaces.
  EXPECT_EQ(JobMakeflags("k -j8 -- CFLAGS=-O2\\ -g X=1", "3,4", 4),
            "k -j4 --jobserver-auth=3,4 -- CFLAGS=-O2\\ -g X=1");
  // Look-alikes stay.
  EXPECT_EQ(JobMakeflags("-jx --jobserver-style=fifo", "", 4), "-jx --jobserver-style=fifo");
}

TEST(JobMakeflagsTest, WithoutAJobserverNothingOfOneIsLeft) {
  EXPECT_EQ(JobMakeflags(" -j8 --jobserver-auth=5,6", "", 4), "");
  EXPECT_EQ(JobMakeflags("k -j8 --jobserver-auth=5,6 -- X=1", "", 4), "k -- X=1");
}

TEST(JobserverEnvironmentTest, EveryJobserverVariableIsCleared) {
  const std::vector<std::string> env = {"PATH=/bin", "MAKEFLAGS=k -j8 --jobserver-auth=7,8 -- X=1",
                                        "MFLAGS=-k -j8", "CARGO_MAKEFLAGS=-j8 --jobserver-auth=7,8",
                                        "MAKEFLAGS=-j2 --jobserver-auth=9,10"};
  EXPECT_THAT(JobserverEnvironment(env, "3,4", 4),
              ElementsAre("PATH=/bin", "MAKEFLAGS=k -j4 --jobserver-auth=3,4 -- X=1", "MFLAGS=-k"));
  EXPECT_THAT(JobserverEnvironment(env, "", 4),
              ElementsAre("PATH=/bin", "MAKEFLAGS=k -- X=1", "MFLAGS=-k"));
  EXPECT_THAT(JobserverEnvironment({"PATH=/bin"}, "3,4", 4),
              ElementsAre("PATH=/bin", "MAKEFLAGS= -j4 --jobserver-auth=3,4"));
  const JobserverChanges none = ChangesForJobserver({"PATH=/bin", "MAKEFLAGSX=1", "CC=cc"}, "", 4);
  EXPECT_TRUE(none.drop.empty());
  EXPECT_TRUE(none.add.empty());
}

TEST(JobserverEnvironmentTest, DistdsOwnInheritedJobserverIsCleared) {
  setenv("MAKEFLAGS", " -j8 --jobserver-auth=3,4", 1);
  setenv("MFLAGS", "-k -j8", 1);
  StripInheritedJobserver();
  EXPECT_EQ(getenv("MAKEFLAGS"), nullptr);
  ASSERT_NE(getenv("MFLAGS"), nullptr);
  EXPECT_STREQ(getenv("MFLAGS"), "-k");
  unsetenv("MFLAGS");
}

TEST(JobserverStyleTest, Parse) {
  EXPECT_EQ(ParseJobserverStyle("pipe"), JobserverStyle::kPipe);
  EXPECT_EQ(ParseJobserverStyle("fifo"), JobserverStyle::kFifo);
  EXPECT_EQ(ParseJobserverStyle("off"), JobserverStyle::kOff);
  EXPECT_EQ(ParseJobserverStyle("Pipe"), std::nullopt);
  EXPECT_EQ(ParseJobserverStyle(""), std::nullopt);
}

}  // namespace
}  // namespace distd::spawn
