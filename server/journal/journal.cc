#include "server/journal/journal.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/private_dir.h"
#include "server/journal/sql.h"

namespace distd::journal {
namespace {

using engine::BuildState;
using engine::JobState;
using sql::BindText;
using sql::BindTime;
using sql::ColumnText;
using sql::ColumnTime;
using sql::ParseJobState;
using sql::ParseOutcome;
using sql::Query;
using sql::ReadBuild;
using sql::StateName;

// The schema's version, in PRAGMA user_version. A journal with a higher one was written by a
// newer distd, whose rows this one might misread: it is refused rather than guessed at.
// Version 2 added the meta table and the jobs' byte counts and callers; a journal of version 1
// is brought up to it at open.
constexpr int kSchemaVersion = 2;

constexpr char kSchema[] = R"sql(
CREATE TABLE builds (
  key INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  state TEXT NOT NULL,
  open INTEGER NOT NULL,
  created_ms INTEGER NOT NULL,
  died_ms INTEGER,
  closed_ms INTEGER,
  failure TEXT NOT NULL DEFAULT '',
  succeeded INTEGER NOT NULL DEFAULT 0,
  failed INTEGER NOT NULL DEFAULT 0,
  cancelled INTEGER NOT NULL DEFAULT 0,
  submitted INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX builds_open_name ON builds (name) WHERE open;
CREATE TABLE jobs (
  id INTEGER PRIMARY KEY,
  build INTEGER NOT NULL REFERENCES builds (key),
  argv BLOB NOT NULL,
  cwd TEXT NOT NULL,
  grp TEXT NOT NULL,
  checked INTEGER NOT NULL,
  state TEXT NOT NULL,
  outcome TEXT NOT NULL,
  exit_code INTEGER NOT NULL,
  signal INTEGER NOT NULL,
  stopped INTEGER NOT NULL,
  not_found INTEGER NOT NULL,
  message TEXT NOT NULL,
  pid INTEGER NOT NULL,
  queued_ms INTEGER NOT NULL,
  started_ms INTEGER,
  ended_ms INTEGER,
  stdout_bytes INTEGER NOT NULL DEFAULT 0,
  stderr_bytes INTEGER NOT NULL DEFAULT 0,
  caller TEXT NOT NULL DEFAULT ''
);
CREATE INDEX jobs_build ON jobs (build);
CREATE INDEX jobs_unfinished ON jobs (state) WHERE state != 'finished';
CREATE TABLE meta (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
)sql";

// From version 1: what version 2 added.
constexpr char kSchemaFrom1[] = R"sql(
ALTER TABLE jobs ADD COLUMN stdout_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN stderr_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN caller TEXT NOT NULL DEFAULT '';
CREATE TABLE meta (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
)sql";

}  // namespace

engine::BuildInfo BuildRecord::ToInfo() const {
  engine::BuildInfo info;
  info.name = name;
  info.state = state;
  if (!failure.empty()) {
    info.failure.emplace();
    info.failure->reason = failure;
  }
  info.succeeded = succeeded;
  info.failed = failed;
  info.cancelled = cancelled;
  info.submitted = submitted;
  return info;
}

absl::StatusOr<std::string> DefaultStateDir() {
  const char* state = std::getenv("XDG_STATE_HOME");
  if (state != nullptr && state[0] == '/') return absl::StrCat(state, "/distd");
  const char* home = std::getenv("HOME");
  if (home != nullptr && home[0] == '/') return absl::StrCat(home, "/.local/state/distd");
  return absl::FailedPreconditionError(
      "no state directory: neither XDG_STATE_HOME nor HOME is an absolute path; give "
      "--state-dir DIR (or --no-journal)");
}

absl::StatusOr<std::unique_ptr<Journal>> Journal::Open(const std::string& state_dir) {
  absl::StatusOr<int> dir_fd = OpenPrivateDirectory(state_dir, CreateMissing::kYes);
  if (!dir_fd.ok()) return dir_fd.status();
  const std::string path = absl::StrCat(state_dir, "/", kFileName);
  const std::string lock_path = absl::StrCat(state_dir, "/", kLockName);
  absl::StatusOr<int> lock = OpenPrivateFile(*dir_fd, kLockName, O_RDWR | O_CREAT, lock_path);
  if (!lock.ok()) {
    close(*dir_fd);
    return lock.status();
  }
  if (flock(*lock, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    close(*lock);
    close(*dir_fd);
    if (error == EWOULDBLOCK) {
      return absl::FailedPreconditionError(
          absl::StrCat("another distd uses the state directory ", state_dir, " (", lock_path,
                       " is locked); give each distd its own --state-dir"));
    }
    return absl::FailedPreconditionError(
        absl::StrCat("cannot lock ", lock_path, ": ", strerror(error)));
  }
  // Checked first as any private file of ours is (a regular file of the user, no link).
  absl::StatusOr<int> file = OpenPrivateFile(*dir_fd, kFileName, O_RDWR | O_CREAT, path);
  if (!file.ok()) {
    close(*lock);
    close(*dir_fd);
    return file.status();
  }
  close(*file);
  // Through the checked directory, so that a swap of the path after the check is not followed.
  const std::string through = absl::StrCat("/proc/self/fd/", *dir_fd, "/", kFileName);
  sqlite3* db = nullptr;
  const int rc =
      sqlite3_open_v2(through.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string message = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close(db);
    close(*lock);
    close(*dir_fd);
    return absl::FailedPreconditionError(
        absl::StrCat("cannot open the journal ", path, ": ", message));
  }
  std::unique_ptr<Journal> journal(new Journal(db, *dir_fd, *lock, path));
  if (absl::Status s = journal->CreateSchema(); !s.ok()) return s;
  // Reads from other threads go through a connection of their own, so that they see what
  // was committed, never the writer's transaction in progress, and never wait for it (WAL).
  if (sqlite3_open_v2(through.c_str(), &journal->reader_,
                      SQLITE_OPEN_READONLY | SQLITE_OPEN_FULLMUTEX, nullptr) != SQLITE_OK) {
    return journal->FailRead();
  }
  sqlite3_busy_timeout(journal->reader_, 5000);
  return journal;
}

Journal::Journal(sqlite3* db, int dir_fd, int lock_fd, std::string path)
    : db_(db), dir_fd_(dir_fd), lock_fd_(lock_fd), path_(std::move(path)) {}

Journal::~Journal() {
  for (sqlite3_stmt* stmt : {insert_build_, insert_job_, update_job_, cancel_job_, cancel_queue_,
                             update_build_, close_build_}) {
    sqlite3_finalize(stmt);
  }
  sqlite3_close(reader_);
  sqlite3_close(db_);
  close(lock_fd_);  // and with it the lock
  close(dir_fd_);
}

absl::Status Journal::Fail(absl::string_view what) { return Fail(what, db_); }
absl::Status Journal::FailRead() { return Fail("read", reader_); }

absl::Status Journal::Fail(absl::string_view what, sqlite3* db) {
  const int code = sqlite3_extended_errcode(db);
  std::string message =
      absl::StrCat("journal ", path_, ": cannot ", what, ": ", sqlite3_errmsg(db));
  if ((code & 0xff) == SQLITE_FULL) {
    return absl::ResourceExhaustedError(absl::StrCat(message, " (is the disk full?)"));
  }
  if ((code & 0xff) == SQLITE_READONLY || (code & 0xff) == SQLITE_CANTOPEN ||
      (code & 0xff) == SQLITE_PERM) {
    return absl::FailedPreconditionError(absl::StrCat(message, " (is it read-only?)"));
  }
  if ((code & 0xff) == SQLITE_NOTADB || (code & 0xff) == SQLITE_CORRUPT) {
    return absl::DataLossError(absl::StrCat(message, " (move it away to start afresh)"));
  }
  return absl::InternalError(message);
}

absl::Status Journal::Exec(const char* sql) {
  if (sqlite3_exec(db_, sql, nullptr, nullptr, nullptr) != SQLITE_OK) return Fail("write");
  return absl::OkStatus();
}

absl::StatusOr<sqlite3_stmt*> Journal::Prepare(const char* sql) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr) != SQLITE_OK) {
    return Fail("read");
  }
  return stmt;
}

absl::StatusOr<sqlite3_stmt*> Journal::PrepareRead(const char* sql) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(reader_, sql, -1, &stmt, nullptr) != SQLITE_OK) return FailRead();
  return stmt;
}

absl::Status Journal::Step(sqlite3_stmt* stmt) {
  const int rc = sqlite3_step(stmt);
  sqlite3_reset(stmt);
  sqlite3_clear_bindings(stmt);
  if (rc != SQLITE_DONE) return Fail("write");
  return absl::OkStatus();
}

absl::StatusOr<std::string> Journal::ReadOne(const char* sql) {
  Query q;
  absl::StatusOr<sqlite3_stmt*> stmt = Prepare(sql);
  if (!stmt.ok()) return stmt.status();
  q.stmt = *stmt;
  if (sqlite3_step(q.stmt) != SQLITE_ROW) return Fail("read");
  return ColumnText(q.stmt, 0);
}

absl::StatusOr<std::optional<std::string>> Journal::Meta(const char* key) {
  Query q;
  absl::StatusOr<sqlite3_stmt*> stmt = Prepare("SELECT value FROM meta WHERE key = ?1");
  if (!stmt.ok()) return stmt.status();
  q.stmt = *stmt;
  sqlite3_bind_text(q.stmt, 1, key, -1, SQLITE_STATIC);
  const int rc = sqlite3_step(q.stmt);
  if (rc == SQLITE_DONE) return std::nullopt;
  if (rc != SQLITE_ROW) return Fail("read");
  return ColumnText(q.stmt, 0);
}

absl::Status Journal::CreateSchema() {
  sqlite3_busy_timeout(db_, 5000);
  // The first read: a file that is not a database fails here.
  absl::StatusOr<std::string> version = ReadOne("PRAGMA user_version");
  if (!version.ok()) return version.status();
  const int found = std::atoi(version->c_str());
  if (found > kSchemaVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat("journal ", path_, " was written by a newer distd (schema ", found,
                     ", this one knows ", kSchemaVersion, ")"));
  }
  if (found < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("journal ", path_, " is a database of something else (schema ", found, ")"));
  }
  if (found == 0) {
    // No schema of ours: the file must be empty, not some other program's database.
    absl::StatusOr<std::string> objects = ReadOne("SELECT count(*) FROM sqlite_master");
    if (!objects.ok()) return objects.status();
    if (*objects != "0") {
      return absl::FailedPreconditionError(
          absl::StrCat("journal ", path_,
                       " is a database of something else (it has tables but no distd "
                       "schema); move it away or give another --state-dir"));
    }
  }
  // WAL: readers never wait for the writer, and a commit is one append. NORMAL: a commit is
  // durable once the WAL is synced at a checkpoint; a crash of distd alone loses nothing, a
  // crash of the host at most the last commits.
  absl::StatusOr<std::string> mode = ReadOne("PRAGMA journal_mode = WAL");
  if (!mode.ok()) return mode.status();
  if (*mode != "wal") {
    return absl::FailedPreconditionError(
        absl::StrCat("journal ", path_, ": cannot use write-ahead logging (mode ", *mode, ")"));
  }
  if (absl::Status s = Exec("PRAGMA synchronous = NORMAL"); !s.ok()) return s;
  if (found < kSchemaVersion) {
    if (absl::Status s = Exec("BEGIN"); !s.ok()) return s;
    absl::Status s = Exec(found == 0 ? kSchema : kSchemaFrom1);
    if (s.ok()) s = Exec(absl::StrCat("PRAGMA user_version = ", kSchemaVersion).c_str());
    if (s.ok()) s = Exec("COMMIT");
    if (!s.ok()) {
      Rollback();
      return s;
    }
  }
  struct {
    sqlite3_stmt** stmt;
    const char* sql;
  } const statements[] = {
      {&insert_build_,
       "INSERT INTO builds (name, state, open, created_ms) VALUES (?1, 'running', 1, ?2)"},
      {&insert_job_,
       "INSERT INTO jobs (id, build, argv, cwd, grp, checked, state, outcome, exit_code, signal, "
       "stopped, not_found, message, pid, queued_ms, caller) "
       "VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'queued', 'none', -1, 0, 0, 0, '', 0, ?7, ?8)"},
      {&update_job_,
       "UPDATE jobs SET state = ?2, outcome = ?3, exit_code = ?4, signal = ?5, stopped = ?6, "
       "not_found = ?7, message = ?8, pid = ?9, started_ms = ?10, ended_ms = ?11, "
       "stdout_bytes = ?12, stderr_bytes = ?13 WHERE id = ?1"},
      {&cancel_job_,
       "UPDATE jobs SET state = 'finished', outcome = 'cancelled', message = ?3, "
       "ended_ms = coalesce((SELECT died_ms FROM builds WHERE key = jobs.build), ?2) "
       "WHERE id = ?1 AND state = 'queued'"},
      {&cancel_queue_,
       "UPDATE jobs SET state = 'finished', outcome = 'cancelled', message = ?3, ended_ms = ?2 "
       "WHERE build = ?1 AND state = 'queued'"},
      {&update_build_,
       "UPDATE builds SET state = ?2, died_ms = coalesce(died_ms, ?3), failure = ?4, "
       "succeeded = ?5, failed = ?6, cancelled = ?7, submitted = ?8 WHERE key = ?1"},
      {&close_build_,
       "UPDATE builds SET open = 0, closed_ms = ?2, " DISTD_RECOUNT " WHERE key = ?1"},
  };
  for (const auto& [out, sql] : statements) {
    absl::StatusOr<sqlite3_stmt*> prepared = Prepare(sql);
    if (!prepared.ok()) return prepared.status();
    *out = *prepared;
  }
  // The open builds of an earlier distd: their rows go on.
  return LoadOpenBuilds();
}

absl::Status Journal::LoadOpenBuilds() {
  open_builds_.clear();
  Query open;
  absl::StatusOr<sqlite3_stmt*> stmt = Prepare("SELECT key, name FROM builds WHERE open");
  if (!stmt.ok()) return stmt.status();
  open.stmt = *stmt;
  int rc;
  while ((rc = sqlite3_step(open.stmt)) == SQLITE_ROW) {
    open_builds_[ColumnText(open.stmt, 1)] = sqlite3_column_int64(open.stmt, 0);
  }
  if (rc != SQLITE_DONE) return Fail("read");
  return absl::OkStatus();
}

absl::Status Journal::CapPagesForTesting(int pages) {
  return Exec(absl::StrCat("PRAGMA max_page_count = ", pages).c_str());
}

absl::Status Journal::Begin() { return Exec("BEGIN IMMEDIATE"); }
absl::Status Journal::Commit() {
  absl::Status s = Exec("COMMIT");
  if (s.ok()) ++commits_;
  return s;
}
void Journal::Rollback() {
  sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  // The cache may hold builds the transaction created: read it again from what was kept.
  if (absl::Status s = LoadOpenBuilds(); !s.ok()) open_builds_.clear();
}

absl::StatusOr<int64_t> Journal::OpenBuildKey(absl::string_view name, absl::Time created_at) {
  if (auto it = open_builds_.find(name); it != open_builds_.end()) return it->second;
  BindText(insert_build_, 1, name);
  BindTime(insert_build_, 2, created_at);
  if (absl::Status s = Step(insert_build_); !s.ok()) return s;
  const int64_t key = sqlite3_last_insert_rowid(db_);
  open_builds_.emplace(std::string(name), key);
  return key;
}

absl::Status Journal::JobsQueued(absl::Span<const engine::JobInfo> jobs) {
  if (jobs.empty()) return absl::OkStatus();
  absl::StatusOr<int64_t> build = OpenBuildKey(jobs.front().build, jobs.front().queued_at);
  if (!build.ok()) return build.status();
  std::string argv;
  for (const engine::JobInfo& job : jobs) {
    argv = absl::StrJoin(job.argv, absl::string_view("\0", 1));
    sqlite3_stmt* s = insert_job_;
    sqlite3_bind_int64(s, 1, static_cast<int64_t>(job.id));
    sqlite3_bind_int64(s, 2, *build);
    sqlite3_bind_blob(s, 3, argv.data(), static_cast<int>(argv.size()), SQLITE_STATIC);
    BindText(s, 4, job.cwd);
    BindText(s, 5, job.group);
    sqlite3_bind_int(s, 6, job.check ? 1 : 0);
    BindTime(s, 7, job.queued_at);
    BindText(s, 8, job.caller.principal);
    if (absl::Status st = Step(s); !st.ok()) return st;
  }
  return absl::OkStatus();
}

absl::Status Journal::JobChanged(const engine::JobInfo& job, OutputSizes kept) {
  sqlite3_stmt* s = update_job_;
  sqlite3_bind_int64(s, 1, static_cast<int64_t>(job.id));
  sqlite3_bind_text(s, 2, StateName(job.state), -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 3, engine::OutcomeName(job.result.outcome), -1, SQLITE_STATIC);
  sqlite3_bind_int(s, 4, job.result.exit_code);
  sqlite3_bind_int(s, 5, job.result.signal);
  sqlite3_bind_int(s, 6, job.result.stopped ? 1 : 0);
  sqlite3_bind_int(s, 7, job.result.program_not_found ? 1 : 0);
  BindText(s, 8, job.result.message);
  sqlite3_bind_int(s, 9, job.pid);
  BindTime(s, 10, job.started_at);
  BindTime(s, 11, job.ended_at);
  sqlite3_bind_int64(s, 12, static_cast<int64_t>(kept.stdout_bytes));
  sqlite3_bind_int64(s, 13, static_cast<int64_t>(kept.stderr_bytes));
  return Step(s);
}

absl::Status Journal::JobsCancelled(absl::Span<const engine::JobId> ids, absl::Time when) {
  for (engine::JobId id : ids) {
    sqlite3_bind_int64(cancel_job_, 1, static_cast<int64_t>(id));
    BindTime(cancel_job_, 2, when);
    sqlite3_bind_text(cancel_job_, 3, engine::kBuildStoppedMessage, -1, SQLITE_STATIC);
    if (absl::Status s = Step(cancel_job_); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status Journal::BuildChanged(const engine::BuildInfo& build, absl::Time when) {
  absl::StatusOr<int64_t> key = OpenBuildKey(build.name, when);
  if (!key.ok()) return key.status();
  sqlite3_stmt* s = update_build_;
  sqlite3_bind_int64(s, 1, *key);
  sqlite3_bind_text(s, 2, StateName(build.state), -1, SQLITE_STATIC);
  BindTime(s, 3, build.state == BuildState::kRunning ? absl::InfinitePast() : when);
  BindText(s, 4, build.failure.has_value() ? build.failure->reason : "");
  sqlite3_bind_int64(s, 5, static_cast<int64_t>(build.succeeded));
  sqlite3_bind_int64(s, 6, static_cast<int64_t>(build.failed));
  sqlite3_bind_int64(s, 7, static_cast<int64_t>(build.cancelled));
  sqlite3_bind_int64(s, 8, static_cast<int64_t>(build.submitted));
  if (absl::Status st = Step(s); !st.ok()) return st;
  if (build.state == BuildState::kRunning) return absl::OkStatus();
  // A dying build's queue is cancelled as it dies: one statement, however long the queue.
  sqlite3_bind_int64(cancel_queue_, 1, *key);
  BindTime(cancel_queue_, 2, when);
  sqlite3_bind_text(cancel_queue_, 3, engine::kBuildStoppedMessage, -1, SQLITE_STATIC);
  return Step(cancel_queue_);
}

absl::Status Journal::BuildClosed(absl::string_view name, absl::Time when) {
  auto it = open_builds_.find(name);
  if (it == open_builds_.end()) return absl::OkStatus();  // it never had a job
  sqlite3_bind_int64(close_build_, 1, it->second);
  BindTime(close_build_, 2, when);
  if (absl::Status s = Step(close_build_); !s.ok()) return s;
  open_builds_.erase(it);
  return absl::OkStatus();
}

absl::StatusOr<std::optional<JobRecord>> Journal::FindJob(engine::JobId id) {
  Query q;
  absl::StatusOr<sqlite3_stmt*> stmt = PrepareRead(
      "SELECT j.build, b.name, j.argv, j.cwd, j.grp, j.checked, j.state, j.outcome, "
      "j.exit_code, j.signal, j.stopped, j.not_found, j.message, j.pid, j.queued_ms, "
      "j.started_ms, j.ended_ms, j.stdout_bytes, j.stderr_bytes, j.caller "
      "FROM jobs j JOIN builds b ON b.key = j.build WHERE j.id = ?1");
  if (!stmt.ok()) return stmt.status();
  q.stmt = *stmt;
  sqlite3_bind_int64(q.stmt, 1, static_cast<int64_t>(id));
  const int rc = sqlite3_step(q.stmt);
  if (rc == SQLITE_DONE) return std::nullopt;
  if (rc != SQLITE_ROW) return FailRead();
  JobRecord record;
  engine::JobInfo& job = record.job;
  record.build_key = sqlite3_column_int64(q.stmt, 0);
  job.id = id;
  job.build = ColumnText(q.stmt, 1);
  const void* argv = sqlite3_column_blob(q.stmt, 2);
  if (argv != nullptr) {
    job.argv = absl::StrSplit(
        absl::string_view(static_cast<const char*>(argv), sqlite3_column_bytes(q.stmt, 2)),
        absl::string_view("\0", 1));
  }
  job.cwd = ColumnText(q.stmt, 3);
  job.group = ColumnText(q.stmt, 4);
  job.check = sqlite3_column_int(q.stmt, 5) != 0;
  job.state = ParseJobState(ColumnText(q.stmt, 6));
  job.result.outcome = ParseOutcome(ColumnText(q.stmt, 7));
  job.result.exit_code = sqlite3_column_int(q.stmt, 8);
  job.result.signal = sqlite3_column_int(q.stmt, 9);
  job.result.stopped = sqlite3_column_int(q.stmt, 10) != 0;
  job.result.program_not_found = sqlite3_column_int(q.stmt, 11) != 0;
  job.result.message = ColumnText(q.stmt, 12);
  job.pid = sqlite3_column_int(q.stmt, 13);
  job.queued_at = ColumnTime(q.stmt, 14);
  job.started_at = ColumnTime(q.stmt, 15);
  job.ended_at = ColumnTime(q.stmt, 16);
  record.kept.stdout_bytes = static_cast<uint64_t>(sqlite3_column_int64(q.stmt, 17));
  record.kept.stderr_bytes = static_cast<uint64_t>(sqlite3_column_int64(q.stmt, 18));
  job.caller.principal = ColumnText(q.stmt, 19);
  return record;
}

absl::StatusOr<std::vector<BuildRecord>> Journal::RecentBuilds(int limit, bool closed_only) {
  Query q;
  absl::StatusOr<sqlite3_stmt*> stmt = PrepareRead(
      closed_only ? "SELECT key, name, state, open, created_ms, died_ms, failure, succeeded, "
                    "failed, cancelled, submitted, closed_ms FROM builds WHERE NOT open "
                    "ORDER BY key DESC LIMIT ?1"
                  : "SELECT key, name, state, open, created_ms, died_ms, failure, succeeded, "
                    "failed, cancelled, submitted, closed_ms FROM builds "
                    "ORDER BY key DESC LIMIT ?1");
  if (!stmt.ok()) return stmt.status();
  q.stmt = *stmt;
  sqlite3_bind_int(q.stmt, 1, limit);
  std::vector<BuildRecord> builds;
  int rc;
  while ((rc = sqlite3_step(q.stmt)) == SQLITE_ROW) {
    builds.push_back(ReadBuild(q.stmt));
  }
  if (rc != SQLITE_DONE) return FailRead();
  return builds;
}

absl::StatusOr<std::optional<BuildRecord>> Journal::FindBuild(absl::string_view name) {
  Query q;
  absl::StatusOr<sqlite3_stmt*> stmt = PrepareRead(
      "SELECT key, name, state, open, created_ms, died_ms, failure, succeeded, failed, "
      "cancelled, submitted, closed_ms FROM builds WHERE name = ?1 ORDER BY key DESC LIMIT 1");
  if (!stmt.ok()) return stmt.status();
  q.stmt = *stmt;
  BindText(q.stmt, 1, name);
  const int rc = sqlite3_step(q.stmt);
  if (rc == SQLITE_DONE) return std::nullopt;
  if (rc != SQLITE_ROW) return FailRead();
  return ReadBuild(q.stmt);
}

absl::StatusOr<int64_t> Journal::ForgetClosedBuilds(absl::Time closed_before) {
  if (absl::Status s = Begin(); !s.ok()) return s;
  // Runs `sql` with the cut as ?1; returns how many rows it changed.
  auto remove = [this, closed_before](const char* sql) -> absl::StatusOr<int64_t> {
    Query q;
    absl::StatusOr<sqlite3_stmt*> stmt = Prepare(sql);
    if (!stmt.ok()) return stmt.status();
    q.stmt = *stmt;
    BindTime(q.stmt, 1, closed_before);
    if (absl::Status s = Step(q.stmt); !s.ok()) return s;
    return static_cast<int64_t>(sqlite3_changes(db_));
  };
  absl::StatusOr<int64_t> forgotten = remove(
      "DELETE FROM jobs WHERE build IN (SELECT key FROM builds WHERE NOT open AND "
      "closed_ms < ?1) AND id < (SELECT max(id) FROM jobs)");
  if (forgotten.ok()) {
    forgotten = remove(
        "DELETE FROM builds WHERE NOT open AND closed_ms < ?1 AND "
        "NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.build = builds.key)");
  }
  absl::Status status = forgotten.status();
  if (status.ok()) status = Commit();
  if (!status.ok()) {
    Rollback();
    return status;
  }
  return forgotten;
}

absl::StatusOr<engine::JobId> Journal::LastJobId() {
  Query q;
  absl::StatusOr<sqlite3_stmt*> stmt = PrepareRead("SELECT coalesce(max(id), 0) FROM jobs");
  if (!stmt.ok()) return stmt.status();
  q.stmt = *stmt;
  if (sqlite3_step(q.stmt) != SQLITE_ROW) return FailRead();
  return static_cast<engine::JobId>(sqlite3_column_int64(q.stmt, 0));
}

}  // namespace distd::journal
