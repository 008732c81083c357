// The Slurm executor over a fake local spawner: what srun is given, and the scancel a stopped
// build gets. (cli.slurm runs it end to end on a real one-node cluster.)
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/spawn/spawner.h"
#include "tests/engine/fake_spawner.h"

namespace distd::spawn {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::Not;

class NoEvents : public ProcessEvents {
 public:
  void OnProcessOutput(JobId, OutputStream, absl::string_view) override {}
  void OnProcessExit(JobId, ExitStatus) override {}
};

class SlurmExecutorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/slurm_executor_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    // A scancel that notes how it was called.
    options_.srun = "/usr/bin/srun";
    options_.scancel = dir_ + "/scancel";
    options_.slurm_conf = "/etc/cluster/slurm.conf";
    std::ofstream(options_.scancel)
        << "#!/bin/sh\necho \"$* $SLURM_CONF\" >>" << dir_ << "/calls\n";
    chmod(options_.scancel.c_str(), 0755);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Calls() {
    std::stringstream text;
    text << std::ifstream(dir_ + "/calls").rdbuf();
    return text.str();
  }

  // A request for job 1 of `build` that refers to the strings given, which must outlive it.
  static SpawnRequest Request(const std::vector<std::string>& argv, const std::string& cwd,
                              const std::vector<std::string>& env, const std::string& build) {
    SpawnRequest request;
    request.id = 1;
    request.argv = &argv;
    request.cwd = &cwd;
    request.env = &env;
    request.build = &build;
    return request;
  }

  std::string dir_;
  SlurmOptions options_;
  NoEvents events_;
};

TEST_F(SlurmExecutorTest, RunsTheJobAsSrunInItsBuildsNameAndDirectory) {
  auto local = std::make_unique<engine::FakeSpawner>();
  engine::FakeSpawner* fake = local.get();
  options_.partition = "builds";
  auto executor = NewSlurmExecutor(options_, std::move(local));
  const std::vector<std::string> argv = {"cc", "-c", "a.c"};
  const std::string cwd = "/src/app", build = "release";
  const std::vector<std::string> env = {"PATH=/bin", "SLURM_JOB_ID=77", "SLURM_NTASKS=4",
                                        "CFLAGS=-O2"};
  auto tokens = TokenPipe::Open(JobserverStyle::kPipe);
  ASSERT_TRUE(tokens.ok());
  SpawnRequest request = Request(argv, cwd, env, build);
  request.tokens = tokens->get();
  ASSERT_TRUE(executor->Start(request, &events_).ok());
  EXPECT_THAT(fake->Argv(1), ElementsAre("/usr/bin/srun", "--job-name=distd-release", "-D",
                                         "/src/app", "--export=ALL", "--ntasks=1", "--quiet",
                                         "--partition=builds", "--", "cc", "-c", "a.c"));
  EXPECT_EQ(fake->Cwd(1), "/src/app");
  // The client's own allocation is not the job's; the cluster's configuration is distd's.
  EXPECT_THAT(fake->Env(1),
              ElementsAre("PATH=/bin", "CFLAGS=-O2", "SLURM_CONF=/etc/cluster/slurm.conf"));
  EXPECT_FALSE(fake->HasJobserver(1));  // its pipes would not reach the cluster
}

TEST_F(SlurmExecutorTest, TheJobsOwnSlurmConfIsKept) {
  auto local = std::make_unique<engine::FakeSpawner>();
  engine::FakeSpawner* fake = local.get();
  auto executor = NewSlurmExecutor(options_, std::move(local));
  const std::vector<std::string> argv = {"true"};
  const std::string cwd = "/", build = "b";
  const std::vector<std::string> env = {"SLURM_CONF=/mine.conf"};
  ASSERT_TRUE(executor->Start(Request(argv, cwd, env, build), &events_).ok());
  EXPECT_THAT(fake->Env(1), ElementsAre("SLURM_CONF=/mine.conf"));
}

TEST_F(SlurmExecutorTest, AStoppedBuildIsCancelledOnTheClusterItsJobsWentTo) {
  {
    auto executor = NewSlurmExecutor(options_, std::make_unique<engine::FakeSpawner>());
    const std::vector<std::string> argv = {"true"};
    const std::string cwd = "/", build = "other";
    const std::vector<std::string> env = {"SLURM_CONF=/mine.conf"};
    ASSERT_TRUE(executor->Start(Request(argv, cwd, env, build), &events_).ok());
    executor->StopBuild("other");
  }
  EXPECT_EQ(Calls(), absl::StrCat("--quiet --name=distd-other --user=", getuid(), " /mine.conf\n"));
}

TEST_F(SlurmExecutorTest, AStoppedBuildIsCancelledOnTheCluster) {
  {
    auto executor = NewSlurmExecutor(options_, std::make_unique<engine::FakeSpawner>());
    executor->StopBuild("release");
    executor->StopBuild("ci/main");
  }  // the destructor runs every scancel asked for
  const std::string calls = Calls();
  EXPECT_THAT(calls, ::testing::HasSubstr(absl::StrCat("--quiet --name=distd-release --user=",
                                                       getuid(), " /etc/cluster/slurm.conf\n")));
  EXPECT_THAT(calls, ::testing::HasSubstr(absl::StrCat("--quiet --name=distd-ci/main --user=",
                                                       getuid(), " /etc/cluster/slurm.conf\n")));
}

TEST(FindProgramTest, SearchesAbsoluteDirectoriesOfPath) {
  absl::StatusOr<std::string> sh = FindProgram("sh", "relative:/nowhere:/bin");
  ASSERT_TRUE(sh.ok()) << sh.status();
  EXPECT_EQ(*sh, "/bin/sh");
  EXPECT_TRUE(absl::IsNotFound(FindProgram("sh", "/nowhere").status()));
  EXPECT_TRUE(absl::IsNotFound(FindProgram("/etc/passwd", "/bin").status()));  // not executable
}

}  // namespace
}  // namespace distd::spawn
