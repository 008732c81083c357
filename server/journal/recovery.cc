// Recovery at start: what a distd that died left unfinished, settled in one transaction.
#include <sqlite3.h>

#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "server/journal/journal.h"
#include "server/journal/sql.h"

namespace distd::journal {

using engine::JobState;
using sql::BindTime;
using sql::ColumnText;
using sql::ColumnTime;
using sql::ParseJobState;
using sql::Query;

absl::StatusOr<Recovery> Journal::Recover(absl::Time now, const LeftoverKiller& kill) {
  Recovery recovery;
  // Per open build with unfinished jobs: how many were running and queued.
  struct Unfinished {
    uint64_t running = 0, queued = 0;
  };
  absl::flat_hash_map<int64_t, Unfinished> unfinished;
  {
    Query q;
    absl::StatusOr<sqlite3_stmt*> stmt =
        Prepare("SELECT build, state, pid, started_ms FROM jobs WHERE state != 'finished'");
    if (!stmt.ok()) return stmt.status();
    q.stmt = *stmt;
    int rc;
    while ((rc = sqlite3_step(q.stmt)) == SQLITE_ROW) {
      Unfinished& u = unfinished[sqlite3_column_int64(q.stmt, 0)];
      if (ParseJobState(ColumnText(q.stmt, 1)) == JobState::kRunning) {
        ++u.running;
        const int pid = sqlite3_column_int(q.stmt, 2);
        if (pid > 0) kill(pid, ColumnTime(q.stmt, 3));
      } else {
        ++u.queued;
      }
    }
    if (rc != SQLITE_DONE) return Fail("read");
  }
  if (absl::Status s = Begin(); !s.ok()) return s;
  absl::Status status = [&]() -> absl::Status {
    Query lost, cancel, fail, dead, count;
    struct {
      Query* query;
      const char* sql;
    } const statements[] = {
        {&lost,
         "UPDATE jobs SET state = 'finished', outcome = 'lost', message = ?2, ended_ms = ?1 "
         "WHERE state != 'finished' AND state = 'running'"},
        {&cancel,
         "UPDATE jobs SET state = 'finished', outcome = 'cancelled', message = ?2, "
         "ended_ms = ?1 WHERE state != 'finished' AND state = 'queued'"},
        {&fail,
         "UPDATE builds SET state = 'dead', died_ms = coalesce(died_ms, ?2), "
         "failure = CASE failure WHEN '' THEN ?3 ELSE failure END WHERE key = ?1"},
        {&dead,
         "UPDATE builds SET state = 'dead', died_ms = coalesce(died_ms, ?1) "
         "WHERE open AND state = 'dying'"},
        {&count, "UPDATE builds SET " DISTD_RECOUNT " WHERE open"},
    };
    for (const auto& [query, sql] : statements) {
      absl::StatusOr<sqlite3_stmt*> stmt = Prepare(sql);
      if (!stmt.ok()) return stmt.status();
      query->stmt = *stmt;
    }
    BindTime(lost.stmt, 1, now);
    sqlite3_bind_text(lost.stmt, 2, kLostMessage, -1, SQLITE_STATIC);
    if (absl::Status s = Step(lost.stmt); !s.ok()) return s;
    recovery.lost = sqlite3_changes(db_);
    BindTime(cancel.stmt, 1, now);
    sqlite3_bind_text(cancel.stmt, 2, engine::kBuildStoppedMessage, -1, SQLITE_STATIC);
    if (absl::Status s = Step(cancel.stmt); !s.ok()) return s;
    recovery.cancelled = sqlite3_changes(db_);
    for (const auto& [key, u] : unfinished) {
      sqlite3_bind_int64(fail.stmt, 1, key);
      BindTime(fail.stmt, 2, now);
      sqlite3_bind_text(fail.stmt, 3,
                        u.running > 0 ? kRestartedWhileRunning : kRestartedWhileQueued, -1,
                        SQLITE_STATIC);
      if (absl::Status s = Step(fail.stmt); !s.ok()) return s;
    }
    BindTime(dead.stmt, 1, now);
    if (absl::Status s = Step(dead.stmt); !s.ok()) return s;
    return Step(count.stmt);
  }();
  if (status.ok()) status = Commit();
  if (!status.ok()) {
    Rollback();
    return status;
  }
  absl::StatusOr<std::vector<BuildRecord>> builds = RecentBuilds(-1);
  if (!builds.ok()) return builds.status();
  for (BuildRecord& b : *builds) {
    if (!b.open) continue;
    if (unfinished.contains(b.key)) recovery.failed.push_back(b.name);
    recovery.open.push_back(b.ToInfo());
  }
  return recovery;
}

}  // namespace distd::journal
