// The journal and its recorder, against an engine over a fake spawner and a fake clock.
#include "server/journal/journal.h"

#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/journal/outputs.h"
#include "server/journal/recorder.h"
#include "tests/engine/engine_test_util.h"
#include "tests/journal/journal_test_util.h"

namespace distd::journal {
namespace {

using engine::BuildState;
using engine::JobId;
using engine::JobSpec;
using engine::JobState;
using engine::Outcome;
using engine::Spec;
using ::testing::HasSubstr;

class TempDir {
 public:
  TempDir() {
    std::string pattern = ::testing::TempDir() + "journal_test.XXXXXX";
    path_ = mkdtemp(pattern.data());
  }
  ~TempDir() { std::system(("rm -rf '" + path_ + "'").c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

void RunSql(const std::string& file, const char* sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(file.c_str(), &db), SQLITE_OK);
  EXPECT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  sqlite3_close(db);
}

TEST(JournalTest, OpenMakesAPrivateDirectory) {
  TempDir tmp;
  const std::string dir = tmp.path() + "/state/distd";
  auto journal = Journal::Open(dir);
  ASSERT_TRUE(journal.ok()) << journal.status();
  struct stat st;
  ASSERT_EQ(stat(dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_EQ(*(*journal)->LastJobId(), 0u);
}

TEST(JournalTest, AFileThatIsNoJournalIsRefusedByName) {
  TempDir tmp;
  const std::string file = tmp.path() + "/journal.db";
  FILE* f = fopen(file.c_str(), "w");
  ASSERT_NE(f, nullptr);
  fputs("this is not a database, but it is long enough to look like a header of one.......", f);
  fclose(f);
  auto journal = Journal::Open(tmp.path());
  ASSERT_FALSE(journal.ok());
  EXPECT_THAT(journal.status().message(), HasSubstr(file));
  EXPECT_THAT(journal.status().message(), HasSubstr("not a database"));
}

TEST(JournalTest, AJournalOfANewerDistdIsRefused) {
  TempDir tmp;
  ASSERT_TRUE(Journal::Open(tmp.path()).ok());
  RunSql(tmp.path() + "/journal.db", "PRAGMA user_version = 99");
  auto journal = Journal::Open(tmp.path());
  ASSERT_FALSE(journal.ok());
  EXPECT_THAT(journal.status().message(), HasSubstr("newer distd"));
}

TEST(JournalTest, AnotherProgramsDatabaseIsRefused) {
  TempDir tmp;
  RunSql(tmp.path() + "/journal.db", "CREATE TABLE accounts (id INTEGER)");
  auto journal = Journal::Open(tmp.path());
  ASSERT_FALSE(journal.ok());
  EXPECT_THAT(journal.status().message(), HasSubstr("a database of something else"));
}

TEST(JournalTest, AJournalBehindALinkIsRefused) {
  TempDir tmp;
  ASSERT_TRUE(Journal::Open(tmp.path() + "/real").ok());
  mkdir((tmp.path() + "/linked").c_str(), 0700);
  ASSERT_EQ(symlink("../real/journal.db", (tmp.path() + "/linked/journal.db").c_str()), 0);
  EXPECT_FALSE(Journal::Open(tmp.path() + "/linked").ok());
}

TEST(JournalTest, OneDistdAtATimePerStateDirectory) {
  TempDir tmp;
  auto first = Journal::Open(tmp.path());
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = Journal::Open(tmp.path());
  ASSERT_FALSE(second.ok());
  EXPECT_THAT(second.status().message(), HasSubstr("another distd uses the state directory"));
  first->reset();
  EXPECT_TRUE(Journal::Open(tmp.path()).ok());
}

TEST(JournalTest, TheDefaultStateDirectoryFollowsXdg) {
  const char* saved_state = std::getenv("XDG_STATE_HOME");
  const char* saved_home = std::getenv("HOME");
  const std::string state = saved_state ? saved_state : "", home = saved_home ? saved_home : "";
  setenv("XDG_STATE_HOME", "/xdg/state", 1);
  setenv("HOME", "/home/u", 1);
  EXPECT_EQ(*DefaultStateDir(), "/xdg/state/distd");
  setenv("XDG_STATE_HOME", "relative", 1);  // not absolute: ignored, as the spec says
  EXPECT_EQ(*DefaultStateDir(), "/home/u/.local/state/distd");
  unsetenv("XDG_STATE_HOME");
  unsetenv("HOME");
  EXPECT_THAT(DefaultStateDir().status().message(), HasSubstr("--state-dir"));
  if (saved_state) setenv("XDG_STATE_HOME", state.c_str(), 1);
  if (saved_home) setenv("HOME", home.c_str(), 1);
}

class RecorderTest : public ::testing::Test {
 protected:
  RecorderTest() : fake_(Options(this)) { Reopen(); }
  ~RecorderTest() override { Detach(); }

  // New work is refused while the journal cannot be written, as distd's main sets it up.
  static engine::EngineOptions Options(RecorderTest* test) {
    engine::EngineOptions options;
    options.jobs = 2;
    options.max_finished_jobs = 1'000'000;
    options.admission = [test] {
      return test->recorder_ != nullptr ? test->recorder_->healthy() : absl::OkStatus();
    };
    return options;
  }
  void Reopen() {
    Detach();
    auto journal = Journal::Open(tmp_.path());
    ASSERT_TRUE(journal.ok()) << journal.status();
    journal_ = *std::move(journal);
    auto outputs = OutputStore::Open(tmp_.path(), OutputLimits{.cap = 1024, .tail = 256},
                                     *journal_->LastJobId());
    ASSERT_TRUE(outputs.ok()) << outputs.status();
    outputs_ = *std::move(outputs);
    RecorderOptions options = QuickRetries(absl::Milliseconds(1), absl::Milliseconds(20));
    options.max_pending_output = max_pending_output_;
    recorder_ = std::make_unique<Recorder>(journal_.get(), outputs_.get(), fake_.clock, options);
    fake_.engine->AddObserver(recorder_.get());
  }
  void Detach() {
    if (recorder_ == nullptr) return;
    fake_.engine->RemoveObserver(recorder_.get());
    recorder_.reset();
    outputs_.reset();
    journal_.reset();
  }
  std::string Kept(JobId id, engine::OutputStream stream) {
    auto text = outputs_->Read(id, stream);
    EXPECT_TRUE(text.ok()) << text.status();
    return text.ok() && text->has_value() ? **text : "<no file>";
  }
  std::vector<JobId> Submit(const std::string& build, std::vector<JobSpec> specs) {
    auto ids = fake_.engine->Submit(build, std::move(specs), engine::Caller{0, "test"});
    EXPECT_TRUE(ids.ok()) << ids.status();
    return ids.ok() ? *ids : std::vector<JobId>();
  }
  engine::JobInfo Recorded(JobId id) {
    auto record = journal_->FindJob(id);
    EXPECT_TRUE(record.ok()) << record.status();
    EXPECT_TRUE(record.ok() && record->has_value()) << "job " << id << " not in the journal";
    return record.ok() && record->has_value() ? (*record)->job : engine::JobInfo();
  }

  TempDir tmp_;
  engine::FakeEngine fake_;
  std::unique_ptr<Journal> journal_;
  std::unique_ptr<OutputStore> outputs_;
  std::unique_ptr<Recorder> recorder_;
  uint64_t max_pending_output_ = uint64_t{64} << 20;
};

TEST_F(RecorderTest, EveryJobsEndIsKeptAcrossAReopen) {
  std::vector<JobSpec> specs;
  specs.push_back(Spec({"cc", "-c", "a.c"}, true, "objs"));
  specs.push_back(Spec({"cc", "-c", "b.c"}));
  specs.push_back(Spec({"ld"}));
  std::vector<JobId> ids = Submit("b", std::move(specs));
  fake_.clock->Advance(absl::Seconds(1));
  ASSERT_TRUE(fake_.spawner->Exit(ids[1], 3));  // fails the build; "ld" never runs
  ASSERT_TRUE(fake_.spawner->Exit(ids[0], 0));  // done before its SIGTERM took
  fake_.clock->Advance(absl::Minutes(1));       // the sweep reports "ld" cancelled
  ASSERT_TRUE(recorder_->Flush().ok());
  Reopen();

  engine::JobInfo a = Recorded(ids[0]);
  EXPECT_EQ(a.build, "b");
  EXPECT_THAT(a.argv, ::testing::ElementsAre("cc", "-c", "a.c"));
  EXPECT_EQ(a.group, "objs");
  EXPECT_EQ(a.cwd, "/");
  EXPECT_EQ(a.caller.principal, "test");  // who submitted it
  EXPECT_EQ(a.state, JobState::kFinished);
  EXPECT_EQ(a.result.outcome, Outcome::kSucceeded);
  EXPECT_EQ(a.result.exit_code, 0);
  EXPECT_NE(a.started_at, absl::InfinitePast());
  engine::JobInfo b = Recorded(ids[1]);
  EXPECT_EQ(b.result.outcome, Outcome::kFailed);
  EXPECT_EQ(b.result.exit_code, 3);
  EXPECT_EQ(b.ended_at - b.started_at, absl::Seconds(1));
  engine::JobInfo ld = Recorded(ids[2]);
  EXPECT_EQ(ld.result.outcome, Outcome::kCancelled);
  EXPECT_EQ(ld.started_at, absl::InfinitePast());
  EXPECT_EQ(ld.ended_at, b.ended_at);  // when the build died
  EXPECT_THAT(ld.result.message, HasSubstr("the build was stopped"));

  auto builds = journal_->RecentBuilds(10);
  ASSERT_TRUE(builds.ok()) << builds.status();
  ASSERT_EQ(builds->size(), 1u);
  EXPECT_EQ((*builds)[0].name, "b");
  EXPECT_EQ((*builds)[0].state, BuildState::kDead);
  EXPECT_THAT((*builds)[0].failure, HasSubstr("exit code 3"));
  EXPECT_EQ((*builds)[0].succeeded, 1u);
  EXPECT_EQ((*builds)[0].failed, 1u);
  EXPECT_EQ(*journal_->LastJobId(), ids[2]);
}

TEST_F(RecorderTest, AClosedNameStartsANewBuild) {
  std::vector<JobId> first = Submit("b", {Spec({"one"})});
  ASSERT_TRUE(fake_.spawner->Exit(first[0], 1));
  ASSERT_TRUE(fake_.engine->Close("b").ok());
  std::vector<JobId> second = Submit("b", {Spec({"two"})});
  ASSERT_TRUE(fake_.spawner->Exit(second[0], 0));
  ASSERT_TRUE(recorder_->Flush().ok());
  auto builds = journal_->RecentBuilds(10);
  ASSERT_TRUE(builds.ok()) << builds.status();
  ASSERT_EQ(builds->size(), 2u);
  EXPECT_TRUE((*builds)[0].open);
  EXPECT_EQ((*builds)[0].state, BuildState::kRunning);
  EXPECT_FALSE((*builds)[1].open);
  EXPECT_EQ((*builds)[1].state, BuildState::kDead);
  EXPECT_NE(journal_->FindJob(first[0])->value().build_key,
            journal_->FindJob(second[0])->value().build_key);
}

TEST_F(RecorderTest, BuildsClosedLongAgoAreForgottenButTheLastIdStays) {
  std::vector<JobId> old = Submit("old", {Spec({"a"}), Spec({"b"})});
  for (JobId id : old) ASSERT_TRUE(fake_.spawner->Exit(id, 0));
  ASSERT_TRUE(fake_.engine->Close("old").ok());
  std::vector<JobId> open = Submit("open", {Spec({"c"})});
  ASSERT_TRUE(fake_.spawner->Exit(open[0], 0));
  std::vector<JobId> last = Submit("last", {Spec({"d"})});
  ASSERT_TRUE(fake_.spawner->Exit(last[0], 0));
  ASSERT_TRUE(fake_.engine->Close("last").ok());
  ASSERT_TRUE(recorder_->Flush().ok());
  const absl::Time closed = fake_.clock->Now();
  // The journal is the recorder's alone while it runs.
  fake_.engine->RemoveObserver(recorder_.get());
  recorder_.reset();

  // Closed later than the cut: all kept.
  absl::StatusOr<int64_t> forgotten = journal_->ForgetClosedBuilds(closed - absl::Seconds(1));
  ASSERT_TRUE(forgotten.ok()) << forgotten.status();
  EXPECT_EQ(*forgotten, 0);
  EXPECT_TRUE(journal_->FindJob(old[0])->has_value());

  forgotten = journal_->ForgetClosedBuilds(closed + absl::Hours(1));
  ASSERT_TRUE(forgotten.ok()) << forgotten.status();
  EXPECT_EQ(*forgotten, 1);  // "old"; "last" holds the highest id
  for (JobId id : old) EXPECT_FALSE(journal_->FindJob(id)->has_value()) << "job " << id;
  EXPECT_FALSE(journal_->FindBuild("old")->has_value());
  EXPECT_TRUE(journal_->FindJob(open[0])->has_value());  // its build is open
  EXPECT_TRUE(journal_->FindJob(last[0])->has_value());
  EXPECT_EQ(*journal_->LastJobId(), last[0]);
  auto builds = journal_->RecentBuilds(10);
  ASSERT_TRUE(builds.ok()) << builds.status();
  EXPECT_EQ(builds->size(), 2u);
}

TEST_F(RecorderTest, A100000JobBatchIsOneCommitAndSoIsItsCancellation) {
  constexpr int kJobs = 100'000;
  std::vector<JobSpec> specs;
  for (int i = 0; i < kJobs; ++i) specs.push_back(Spec({"cc", std::to_string(i)}));
  ASSERT_TRUE(recorder_->Flush().ok());
  const uint64_t before = journal_->commits();
  std::vector<JobId> ids = Submit("big", std::move(specs));
  ASSERT_EQ(ids.size(), static_cast<size_t>(kJobs));
  ASSERT_TRUE(recorder_->Flush().ok());
  // The submission is one change; the starts of the pool's two jobs may come apart from it.
  EXPECT_LE(journal_->commits() - before, 3u);
  EXPECT_EQ(Recorded(ids.back()).state, JobState::kQueued);

  const uint64_t submitted = journal_->commits();
  fake_.engine->AbortAsync("big", engine::Reason("enough"), [](auto) {});
  ASSERT_TRUE(recorder_->Flush().ok());
  // The dying step is one commit, and cancels the queue before the engine's sweep has
  // reached any of its records (the sweep is a task on the clock, which has not moved).
  EXPECT_EQ(journal_->commits() - submitted, 1u);
  EXPECT_EQ(Recorded(ids.back()).result.outcome, Outcome::kCancelled);
  EXPECT_EQ(Recorded(ids[kJobs / 2]).state, JobState::kFinished);

  while (fake_.spawner->DeliverSignals() > 0) {
  }
  ASSERT_TRUE(fake_.engine->Close("big").ok());  // finishes and reports the cancelled records
  ASSERT_TRUE(recorder_->Flush().ok());
  // The two stopped jobs' ends, the build's death and its close: the engine's reports of the
  // cancelled records were not written again.
  EXPECT_LE(journal_->commits() - submitted, 5u);
  EXPECT_EQ(Recorded(ids.front()).result.outcome, Outcome::kKilled);
  EXPECT_EQ(Recorded(ids.back()).result.outcome, Outcome::kCancelled);
}

TEST_F(RecorderTest, AFullDiskIsSaidAndNothingIsLost) {
  ASSERT_TRUE(journal_->CapPagesForTesting(8).ok());  // the schema and a few rows
  std::vector<JobSpec> specs;
  for (int i = 0; i < 2000; ++i) specs.push_back(Spec({"cc", std::string(100, 'x')}, false));
  std::vector<JobId> ids = Submit("b", std::move(specs));
  absl::Status flushed = recorder_->Flush();
  ASSERT_FALSE(flushed.ok());
  EXPECT_THAT(flushed.message(), HasSubstr("disk full"));
  EXPECT_FALSE(recorder_->healthy().ok());
  ASSERT_TRUE(fake_.spawner->Exit(ids[0], 0));  // more changes while the disk is full
  // New work is refused while the journal is behind, all of it, saying why.
  const uint64_t queued = fake_.engine->Pool().queued;
  auto refused = fake_.engine->Submit("b", {Spec({"more"})}, engine::Caller{0, "test"});
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(absl::IsResourceExhausted(refused.status())) << refused.status();
  EXPECT_THAT(refused.status().message(), HasSubstr("disk full"));
  EXPECT_THAT(refused.status().message(), HasSubstr("nothing of this request was queued"));
  EXPECT_EQ(fake_.engine->Pool().queued, queued);

  ASSERT_TRUE(journal_->CapPagesForTesting(1 << 20).ok());  // space again
  ASSERT_TRUE(recorder_->Flush().ok());
  EXPECT_TRUE(recorder_->healthy().ok());
  EXPECT_EQ(Recorded(ids[0]).result.outcome, Outcome::kSucceeded);
  EXPECT_EQ(Recorded(ids.back()).state, JobState::kQueued);
  EXPECT_TRUE(fake_.engine->Submit("b", {Spec({"more"})}, engine::Caller{0, "test"}).ok());
}

TEST_F(RecorderTest, RecoverSettlesWhatADeadDistdLeft) {
  std::vector<JobId> idle = Submit("idle", {Spec({"true"})});
  ASSERT_TRUE(fake_.spawner->Exit(idle[0], 0));
  std::vector<JobId> failed = Submit("failed", {Spec({"false"})});
  ASSERT_TRUE(fake_.spawner->Exit(failed[0], 2));
  std::vector<JobId> busy = Submit("busy", {Spec({"a"}), Spec({"b"}), Spec({"c"})});
  const engine::JobInfo running = *fake_.engine->GetJob(busy[0]);
  ASSERT_EQ(running.state, JobState::kRunning);
  ASSERT_TRUE(recorder_->Flush().ok());
  Detach();  // distd dies here: nothing more reaches the journal

  auto journal = Journal::Open(tmp_.path());
  ASSERT_TRUE(journal.ok()) << journal.status();
  std::vector<std::pair<int, absl::Time>> killed;
  const absl::Time now = absl::FromUnixSeconds(2'000'000'000);
  auto recovery = (*journal)->Recover(
      now, "i1", [&killed](int pid, absl::Time started) { killed.emplace_back(pid, started); });
  ASSERT_TRUE(recovery.ok()) << recovery.status();
  EXPECT_EQ(recovery->lost, 2u);  // the pool of 2 ran a and b
  EXPECT_EQ(recovery->cancelled, 1u);
  EXPECT_THAT(recovery->failed, ::testing::ElementsAre("busy"));
  ASSERT_EQ(killed.size(), 2u);
  EXPECT_EQ(killed[0].first, running.pid);
  EXPECT_EQ(killed[0].second, running.started_at);

  auto a = (*journal)->FindJob(busy[0]);
  ASSERT_TRUE(a.ok() && a->has_value());
  EXPECT_EQ((*a)->job.result.outcome, Outcome::kLost);
  EXPECT_EQ((*a)->job.result.message, kLostMessage);
  EXPECT_EQ((*a)->job.ended_at, now);
  EXPECT_EQ((*(*journal)->FindJob(busy[2]))->job.result.outcome, Outcome::kCancelled);

  // Every open build, as the engine is to know it again.
  ASSERT_EQ(recovery->open.size(), 3u);
  absl::flat_hash_map<std::string, engine::BuildInfo> open;
  for (const engine::BuildInfo& b : recovery->open) open[b.name] = b;
  EXPECT_EQ(open["idle"].state, BuildState::kRunning);
  EXPECT_EQ(open["idle"].succeeded, 1u);
  EXPECT_FALSE(open["idle"].failure.has_value());
  EXPECT_EQ(open["busy"].state, BuildState::kDead);
  EXPECT_EQ(open["busy"].failure->reason, kRestartedWhileRunning);
  EXPECT_EQ(open["busy"].failed, 2u);
  EXPECT_EQ(open["busy"].cancelled, 1u);
  EXPECT_EQ(open["busy"].submitted, 3u);
  EXPECT_EQ(open["failed"].state, BuildState::kDead);
  EXPECT_THAT(open["failed"].failure->reason, HasSubstr("exit code 2"));  // its own, kept

  // A second recovery finds nothing left to do.
  killed.clear();
  auto again = (*journal)->Recover(
      now, "i2", [&killed](int pid, absl::Time t) { killed.emplace_back(pid, t); });
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->lost, 0u);
  EXPECT_TRUE(again->failed.empty());
  EXPECT_TRUE(killed.empty());
}

TEST_F(RecorderTest, JobsTheJournalDidNotSeeStartAreFoundByTheirMarks) {
  const auto no_group = [](int, absl::Time) {};
  Detach();
  {
    auto journal = Journal::Open(tmp_.path());
    ASSERT_TRUE(journal.ok()) << journal.status();
    bool asked = false;
    auto first = (*journal)->Recover(absl::Now(), "first-distd", no_group,
                                     [&asked](absl::string_view, absl::FunctionRef<bool(JobId)>) {
                                       asked = true;
                                       return absl::flat_hash_set<JobId>();
                                     });
    ASSERT_TRUE(first.ok()) << first.status();
    EXPECT_FALSE(asked);  // no distd before it: no instance to look for
  }
  Reopen();  // "first-distd" runs
  std::vector<JobId> done = Submit("done", {Spec({"true"})});
  ASSERT_TRUE(fake_.spawner->Exit(done[0], 0));
  std::vector<JobId> busy = Submit("busy", {Spec({"a"}), Spec({"b"}), Spec({"c"})});
  ASSERT_TRUE(recorder_->Flush().ok());
  // b ends and c starts, and another job is submitted, but the journal hears of none of it:
  // distd dies before its writer's next batch.
  Detach();
  ASSERT_TRUE(fake_.spawner->Exit(busy[1], 0));
  ASSERT_EQ(fake_.engine->GetJob(busy[2])->state, JobState::kRunning);
  std::vector<JobId> unheard = Submit("busy", {Spec({"d"})});

  auto journal = Journal::Open(tmp_.path());
  ASSERT_TRUE(journal.ok()) << journal.status();
  std::string asked_instance;
  std::vector<bool> wanted;
  auto recovery =
      (*journal)->Recover(absl::Now(), "second-distd", no_group,
                          [&](absl::string_view instance, absl::FunctionRef<bool(JobId)> want) {
                            asked_instance = std::string(instance);
                            for (JobId id : {done[0], busy[0], busy[1], busy[2], unheard[0]}) {
                              wanted.push_back(want(id));
                            }
                            // What a scan of /proc would find: c's process, and d's (it never ran;
                            // say it did).
                            return absl::flat_hash_set<JobId>{busy[2], unheard[0]};
                          });
  ASSERT_TRUE(recovery.ok()) << recovery.status();
  EXPECT_EQ(asked_instance, "first-distd");
  // Not the finished job; the unfinished ones, and any the journal never heard of.
  EXPECT_THAT(wanted, ::testing::ElementsAre(false, true, true, true, true));
  EXPECT_EQ(recovery->lost, 3u);  // a and b as recorded running, c found running
  EXPECT_EQ(recovery->unseen, 1u);
  EXPECT_EQ(recovery->cancelled, 0u);
  EXPECT_THAT(recovery->failed, ::testing::ElementsAre("busy"));
  auto c = (*journal)->FindJob(busy[2]);
  ASSERT_TRUE(c.ok() && c->has_value());
  EXPECT_EQ((*c)->job.result.outcome, Outcome::kLost);
  EXPECT_EQ((*c)->job.result.message, kLostMessage);
  auto found = (*journal)->FindBuild("busy");
  ASSERT_TRUE(found.ok() && found->has_value());
  EXPECT_EQ((*found)->failure, kRestartedWhileRunning);

  // The next start looks for this one's jobs.
  auto again = (*journal)->Recover(absl::Now(), "third-distd", no_group,
                                   [&](absl::string_view instance, absl::FunctionRef<bool(JobId)>) {
                                     asked_instance = std::string(instance);
                                     return absl::flat_hash_set<JobId>();
                                   });
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(asked_instance, "second-distd");
  EXPECT_EQ(again->lost, 0u);
}

TEST_F(RecorderTest, AJournalOfTheFirstSchemaIsBroughtUpToDate) {
  std::vector<JobId> ids = Submit("b", {Spec({"true"})});
  ASSERT_TRUE(fake_.spawner->Exit(ids[0], 0));
  ASSERT_TRUE(recorder_->Flush().ok());
  Detach();
  // As a distd of the first schema left it.
  RunSql(tmp_.path() + "/journal.db",
         "ALTER TABLE jobs DROP COLUMN stdout_bytes; ALTER TABLE jobs DROP COLUMN stderr_bytes; "
         "ALTER TABLE jobs DROP COLUMN caller; DROP TABLE meta; PRAGMA user_version = 1");
  Reopen();
  EXPECT_EQ(Recorded(ids[0]).result.outcome, Outcome::kSucceeded);
  std::vector<JobId> more = Submit("b", {Spec({"echo"})});
  ASSERT_TRUE(fake_.spawner->Output(more[0], engine::OutputStream::kStdout, "hi\n"));
  ASSERT_TRUE(fake_.spawner->Exit(more[0], 0));
  ASSERT_TRUE(recorder_->Flush().ok());
  auto record = journal_->FindJob(more[0]);
  ASSERT_TRUE(record.ok() && record->has_value()) << record.status();
  EXPECT_EQ((*record)->kept.stdout_bytes, 3u);
  Detach();
  auto journal = Journal::Open(tmp_.path());
  ASSERT_TRUE(journal.ok()) << journal.status();
  EXPECT_TRUE((*journal)->Recover(absl::Now(), "x", [](int, absl::Time) {}).ok());
}

TEST_F(RecorderTest, WhatOutKeptOfAJobIsCountedInItsRow) {
  std::vector<JobId> ids = Submit("b", {Spec({"cc"}), Spec({"quiet"}), Spec({"yes"})});
  ASSERT_TRUE(fake_.spawner->Output(ids[0], engine::OutputStream::kStdout, "compiling\n"));
  ASSERT_TRUE(fake_.spawner->Output(ids[0], engine::OutputStream::kStderr, "warning\n"));
  ASSERT_TRUE(fake_.spawner->Exit(ids[0], 0));
  ASSERT_TRUE(fake_.spawner->Exit(ids[1], 0));
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(fake_.spawner->Output(ids[2], engine::OutputStream::kStdout, "y\n"));
  }
  ASSERT_TRUE(recorder_->Flush().ok());
  // Running: nothing counted yet.
  EXPECT_EQ((*journal_->FindJob(ids[2]))->kept.stdout_bytes, 0u);
  ASSERT_TRUE(fake_.spawner->Exit(ids[2], 0));
  ASSERT_TRUE(recorder_->Flush().ok());
  Reopen();
  auto sizes = [this](JobId id) { return (*journal_->FindJob(id))->kept; };
  EXPECT_EQ(sizes(ids[0]).stdout_bytes, 10u);
  EXPECT_EQ(sizes(ids[0]).stderr_bytes, 8u);
  EXPECT_EQ(sizes(ids[1]).stdout_bytes, 0u);  // printed nothing: no file, nothing lost
  EXPECT_EQ(sizes(ids[2]).stdout_bytes, 200u);
  EXPECT_EQ(sizes(ids[2]).stdout_bytes, Kept(ids[2], engine::OutputStream::kStdout).size());
}

TEST_F(RecorderTest, WhatJobsPrintIsKeptOnDiskAcrossAReopen) {
  std::vector<JobId> ids = Submit("b", {Spec({"cc"}), Spec({"quiet"})});
  ASSERT_TRUE(fake_.spawner->Output(ids[0], engine::OutputStream::kStdout, "compiling\n"));
  ASSERT_TRUE(fake_.spawner->Output(ids[0], engine::OutputStream::kStderr, "warning: x\n"));
  ASSERT_TRUE(fake_.spawner->Output(ids[0], engine::OutputStream::kStdout, "done"));
  ASSERT_TRUE(fake_.spawner->Exit(ids[0], 0));
  ASSERT_TRUE(fake_.spawner->Exit(ids[1], 0));
  ASSERT_TRUE(recorder_->Flush().ok());
  Reopen();
  EXPECT_EQ(Kept(ids[0], engine::OutputStream::kStdout), "compiling\ndone");
  EXPECT_EQ(Kept(ids[0], engine::OutputStream::kStderr), "warning: x\n");
  EXPECT_EQ(Kept(ids[1], engine::OutputStream::kStdout), "<no file>");  // it printed nothing
  EXPECT_EQ(Kept(ids[1], engine::OutputStream::kStderr), "<no file>");
}

TEST_F(RecorderTest, AStreamOverItsCapKeepsItsStartAndEndWithAMarker) {
  std::vector<JobId> ids = Submit("b", {Spec({"yes"})});
  std::string all;
  for (int i = 0; i < 300; ++i) {
    const std::string line = "line " + std::to_string(i) + "\n";
    all += line;
    ASSERT_TRUE(fake_.spawner->Output(ids[0], engine::OutputStream::kStdout, line));
  }
  ASSERT_TRUE(fake_.spawner->Exit(ids[0], 0));
  ASSERT_TRUE(recorder_->Flush().ok());
  // Cap 1024, of which the last 256: the first 768 bytes, the marker, the last 256.
  const std::string kept = Kept(ids[0], engine::OutputStream::kStdout);
  const std::string head = all.substr(0, 768);
  const std::string tail = all.substr(all.size() - 256);
  const uint64_t omitted = all.size() - 768 - 256;
  EXPECT_EQ(kept, head + (head.back() == '\n' ? "" : "\n") + "[distd: " + std::to_string(omitted) +
                      " bytes of output omitted]\n" + tail);
}

TEST_F(RecorderTest, OutputTheWriterCouldNotTakeIsSaidWhereItIsMissing) {
  max_pending_output_ = 0;  // every chunk is more than may wait
  Reopen();
  std::vector<JobId> ids = Submit("b", {Spec({"loud"})});
  ASSERT_TRUE(fake_.spawner->Output(ids[0], engine::OutputStream::kStdout, "12345"));
  ASSERT_TRUE(fake_.spawner->Output(ids[0], engine::OutputStream::kStdout, "678"));
  ASSERT_TRUE(fake_.spawner->Exit(ids[0], 0));
  ASSERT_TRUE(recorder_->Flush().ok());
  EXPECT_EQ(Kept(ids[0], engine::OutputStream::kStdout),
            "[distd: 8 bytes of output not kept here: distd fell behind]\n");
  // The engine's own memory still has all of it.
  EXPECT_EQ(fake_.engine->GetJobOutput(ids[0])->stdout_text, "12345678");
}

class OutputStoreTest : public ::testing::Test {
 protected:
  std::unique_ptr<OutputStore> Open(OutputLimits limits = {}, JobId last_job_id = 1000) {
    auto store = OutputStore::Open(tmp_.path(), limits, last_job_id);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? *std::move(store) : nullptr;
  }
  std::string File(const std::string& name) { return tmp_.path() + "/out/" + name; }
  TempDir tmp_;
};

TEST_F(OutputStoreTest, RetentionRemovesTheOldestJobsFirstAndNeverAnOpenFile) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  const std::string kb(1000, 'x');
  for (JobId id : {3, 1, 2}) {
    store->Append(id, engine::OutputStream::kStdout, kb);
    if (id != 1) store->Finish(id);
  }
  store->Append(4, engine::OutputStream::kStderr, kb);
  store->Finish(4);
  EXPECT_EQ(store->bytes(), 4000u);
  // Over 2500 bytes: job 1 is still being written, so 2 and 3 go.
  EXPECT_EQ(store->Prune(Retention{.age = absl::Hours(1), .bytes = 2500}, absl::Now()), 2000u);
  EXPECT_EQ(store->bytes(), 2000u);
  EXPECT_TRUE(store->Read(1, engine::OutputStream::kStdout)->has_value());
  EXPECT_FALSE(store->Read(2, engine::OutputStream::kStdout)->has_value());
  EXPECT_FALSE(store->Read(3, engine::OutputStream::kStdout)->has_value());
  EXPECT_TRUE(store->Read(4, engine::OutputStream::kStderr)->has_value());
  store->Finish(1);
  // By age: everything is older than an hour a day from now.
  EXPECT_EQ(store->Prune(Retention{.age = absl::Hours(1), .bytes = 1 << 30},
                         absl::Now() + absl::Hours(24)),
            2000u);
  EXPECT_EQ(store->files(), 0u);
  EXPECT_NE(access(File("1.stdout").c_str(), F_OK), 0);
}

TEST_F(OutputStoreTest, AReopenTakesStockOfWhatIsThereAndLeavesOtherFilesAlone) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  store->Append(7, engine::OutputStream::kStdout, "seven");
  store->Finish(7);
  store.reset();
  std::FILE* other = std::fopen(File("notes.txt").c_str(), "w");
  ASSERT_NE(other, nullptr);
  std::fputs("mine", other);
  std::fclose(other);
  store = Open();
  EXPECT_EQ(store->files(), 1u);
  EXPECT_EQ(store->bytes(), 5u);
  EXPECT_EQ(**store->Read(7, engine::OutputStream::kStdout), "seven");
  store->Prune(Retention{.age = absl::ZeroDuration(), .bytes = 0}, absl::Now() + absl::Seconds(1));
  EXPECT_EQ(store->files(), 0u);
  EXPECT_EQ(access(File("notes.txt").c_str(), F_OK), 0);
}

TEST_F(OutputStoreTest, FilesOfIdsTheJournalNeverCommittedAreRemovedAtOpen) {
  auto store = Open(OutputLimits{}, /*last_job_id=*/10);
  ASSERT_NE(store, nullptr);
  store->Append(10, engine::OutputStream::kStdout, "committed");
  store->Append(11, engine::OutputStream::kStderr, "not committed");
  store->Finish(10);
  store->Finish(11);
  store.reset();
  // The journal's last id is 10: id 11 is to be handed out again, and must not show this.
  store = Open(OutputLimits{}, /*last_job_id=*/10);
  EXPECT_EQ(**store->Read(10, engine::OutputStream::kStdout), "committed");
  EXPECT_FALSE(store->Read(11, engine::OutputStream::kStderr)->has_value());
  EXPECT_EQ(store->files(), 1u);
}

TEST_F(OutputStoreTest, AFileBehindALinkIsNotReadAndAnOversizedOneIsCut) {
  auto store = Open(OutputLimits{.cap = 1024, .tail = 256});
  ASSERT_NE(store, nullptr);
  ASSERT_EQ(symlink("/etc/passwd", File("5.stdout").c_str()), 0);
  auto linked = store->Read(5, engine::OutputStream::kStdout);
  ASSERT_FALSE(linked.ok());
  EXPECT_THAT(linked.status().message(), HasSubstr("5.stdout"));
  std::FILE* big = std::fopen(File("6.stderr").c_str(), "w");
  ASSERT_NE(big, nullptr);
  for (int i = 0; i < 100000; ++i) std::fputc('y', big);
  std::fclose(big);
  auto cut = store->Read(6, engine::OutputStream::kStderr);
  ASSERT_TRUE(cut.ok()) << cut.status();
  EXPECT_LT((*cut)->size(), 1024u + 4096 + 200);
  EXPECT_THAT(**cut, HasSubstr("longer than a job's output may be"));
  // A fifo put there is refused at once, not waited on.
  ASSERT_EQ(mkfifo(File("8.stdout").c_str(), 0600), 0);
  auto fifo = store->Read(8, engine::OutputStream::kStdout);
  ASSERT_FALSE(fifo.ok());
  EXPECT_THAT(fifo.status().message(), HasSubstr("not a regular file"));
  // A job that writes under that id replaces the link, never writes through it.
  store->Append(5, engine::OutputStream::kStdout, "fresh");
  store->Finish(5);
  EXPECT_EQ(**store->Read(5, engine::OutputStream::kStdout), "fresh");
}

}  // namespace
}  // namespace distd::journal
