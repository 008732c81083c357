// Recovery at start: what a distd that died left unfinished, settled in one transaction.
#include <sqlite3.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "server/journal/journal.h"
#include "server/journal/sql.h"

namespace distd::journal {

using engine::JobState;
using sql::BindText;
using sql::BindTime;
using sql::ColumnText;
using sql::ColumnTime;
using sql::ParseJobState;
using sql::Query;

absl::StatusOr<Recovery> Journal::Recover(absl::Time now, absl::string_view instance,
                                          const LeftoverKiller& kill,
                                          const MarkedKiller& kill_marked) {
  Recovery recovery;
  // The unfinished jobs: their build, and whether they were seen running.
  struct Row {
    engine::JobId id;
    int64_t build;
    bool running;
  };
  std::vector<Row> rows;
  {
    Query q;
    absl::StatusOr<sqlite3_stmt*> stmt =
        Prepare("SELECT id, build, state, pid, started_ms FROM jobs WHERE state != 'finished'");
    if (!stmt.ok()) return stmt.status();
    q.stmt = *stmt;
    int rc;
    while ((rc = sqlite3_step(q.stmt)) == SQLITE_ROW) {
      const bool running = ParseJobState(ColumnText(q.stmt, 2)) == JobState::kRunning;
      rows.push_back(Row{static_cast<engine::JobId>(sqlite3_column_int64(q.stmt, 0)),
                         sqlite3_column_int64(q.stmt, 1), running});
      const int pid = sqlite3_column_int(q.stmt, 3);
      if (running && pid > 0) kill(pid, ColumnTime(q.stmt, 4));
    }
    if (rc != SQLITE_DONE) return Fail("read");
  }
  // What the marks find: a job recorded queued that was running after all is lost. (The kills
  // come before the transaction: if it fails, distd does not start, and the next one finds
  // those jobs queued and nothing left of them: cancelled, not lost.)
  absl::flat_hash_set<engine::JobId> alive;
  if (kill_marked != nullptr) {
    absl::StatusOr<std::optional<std::string>> previous = Meta(kInstanceKey);
    if (!previous.ok()) return previous.status();
    absl::StatusOr<engine::JobId> last = LastJobId();
    if (!last.ok()) return last.status();
    if (previous->has_value() && !(*previous)->empty()) {
      absl::flat_hash_set<engine::JobId> ids;
      for (const Row& row : rows) ids.insert(row.id);
      alive = kill_marked(**previous, [&ids, last = *last](engine::JobId id) {
        return id > last || ids.contains(id);
      });
    }
  }
  // Per open build with unfinished jobs: how many were running and queued.
  struct Unfinished {
    uint64_t running = 0, queued = 0;
  };
  absl::flat_hash_map<int64_t, Unfinished> unfinished;
  std::vector<engine::JobId> unseen;  // recorded queued, found running
  for (const Row& row : rows) {
    Unfinished& u = unfinished[row.build];
    if (row.running) {
      ++u.running;
    } else if (alive.contains(row.id)) {
      ++u.running;
      unseen.push_back(row.id);
    } else {
      ++u.queued;
    }
  }
  if (absl::Status s = Begin(); !s.ok()) return s;
  absl::Status status = [&]() -> absl::Status {
    Query started, lost, cancel, fail, dead, count, mark;
    struct {
      Query* query;
      const char* sql;
    } const statements[] = {
        {&started, "UPDATE jobs SET state = 'running' WHERE id = ?1 AND state = 'queued'"},
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
        {&mark, "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)"},
    };
    for (const auto& [query, sql] : statements) {
      absl::StatusOr<sqlite3_stmt*> stmt = Prepare(sql);
      if (!stmt.ok()) return stmt.status();
      query->stmt = *stmt;
    }
    for (const engine::JobId id : unseen) {
      sqlite3_bind_int64(started.stmt, 1, static_cast<int64_t>(id));
      if (absl::Status s = Step(started.stmt); !s.ok()) return s;
    }
    recovery.unseen = unseen.size();
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
    if (absl::Status s = Step(count.stmt); !s.ok()) return s;
    sqlite3_bind_text(mark.stmt, 1, kInstanceKey, -1, SQLITE_STATIC);
    BindText(mark.stmt, 2, instance);
    return Step(mark.stmt);
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
