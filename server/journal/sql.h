// The journal's SQL helpers, shared by its files (journal.cc, recovery.cc): how values are
// stored and read back. Internal to server/journal/.
#ifndef DISTD_SERVER_JOURNAL_SQL_H_
#define DISTD_SERVER_JOURNAL_SQL_H_

#include <sqlite3.h>

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/engine/types.h"
#include "server/journal/journal.h"

namespace distd::journal::sql {

using engine::BuildState;
using engine::JobState;
using engine::Outcome;

// A build's counts, from its jobs' rows (in an UPDATE of builds), as the engine counts them:
// a job stopped on request that did not succeed counts as cancelled, not failed.
#define DISTD_RECOUNT                                                                       \
  "submitted = (SELECT count(*) FROM jobs WHERE build = key), "                             \
  "succeeded = (SELECT count(*) FROM jobs WHERE build = key AND outcome = 'succeeded'), "   \
  "cancelled = (SELECT count(*) FROM jobs WHERE build = key AND (outcome = 'cancelled' OR " \
  "(stopped AND outcome NOT IN ('succeeded', 'none')))), "                                  \
  "failed = (SELECT count(*) FROM jobs WHERE build = key AND NOT stopped AND outcome IN "   \
  "('failed', 'killed', 'timed_out', 'cannot_start', 'lost'))"

// Names as stored: the journal outlives any order of the engine's enums. One table per enum,
// read both ways; a name the table does not know reads as the table's last entry.
template <typename E>
struct Named {
  E value;
  const char* name;
};
inline constexpr Named<JobState> kJobStates[] = {{JobState::kQueued, "queued"},
                                                 {JobState::kRunning, "running"},
                                                 {JobState::kFinished, "finished"}};
inline constexpr Named<BuildState> kBuildStates[] = {
    {BuildState::kRunning, "running"}, {BuildState::kDying, "dying"}, {BuildState::kDead, "dead"}};

template <typename E, size_t N>
const char* NameOf(const Named<E> (&table)[N], E value) {
  for (const Named<E>& n : table) {
    if (n.value == value) return n.name;
  }
  return table[N - 1].name;
}

template <typename E, size_t N>
E Parse(const Named<E> (&table)[N], absl::string_view name) {
  for (const Named<E>& n : table) {
    if (name == n.name) return n.value;
  }
  return table[N - 1].value;
}

inline const char* StateName(JobState state) { return NameOf(kJobStates, state); }
inline const char* StateName(BuildState state) { return NameOf(kBuildStates, state); }
inline JobState ParseJobState(absl::string_view name) { return Parse(kJobStates, name); }
inline BuildState ParseBuildState(absl::string_view name) { return Parse(kBuildStates, name); }

inline Outcome ParseOutcome(absl::string_view name) {
  for (Outcome o :
       {Outcome::kNone, Outcome::kSucceeded, Outcome::kFailed, Outcome::kKilled, Outcome::kTimedOut,
        Outcome::kCancelled, Outcome::kCannotStart, Outcome::kLost}) {
    if (name == engine::OutcomeName(o)) return o;
  }
  return Outcome::kNone;
}

// Times as milliseconds since the epoch; "never" as NULL.
inline void BindTime(sqlite3_stmt* stmt, int index, absl::Time t) {
  if (t == absl::InfinitePast()) {
    sqlite3_bind_null(stmt, index);
  } else {
    sqlite3_bind_int64(stmt, index, absl::ToUnixMillis(t));
  }
}

inline absl::Time ColumnTime(sqlite3_stmt* stmt, int index) {
  if (sqlite3_column_type(stmt, index) == SQLITE_NULL) return absl::InfinitePast();
  return absl::FromUnixMillis(sqlite3_column_int64(stmt, index));
}

inline std::string ColumnText(sqlite3_stmt* stmt, int index) {
  const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, index));
  return text == nullptr ? std::string() : std::string(text, sqlite3_column_bytes(stmt, index));
}

inline void BindText(sqlite3_stmt* stmt, int index, absl::string_view text) {
  sqlite3_bind_text(stmt, index, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
}

// A builds row, from a statement that selects key, name, state, open, created_ms, died_ms,
// failure, succeeded, failed, cancelled, submitted and closed_ms, in that order.
inline BuildRecord ReadBuild(sqlite3_stmt* stmt) {
  BuildRecord b;
  b.key = sqlite3_column_int64(stmt, 0);
  b.name = ColumnText(stmt, 1);
  b.state = ParseBuildState(ColumnText(stmt, 2));
  b.open = sqlite3_column_int(stmt, 3) != 0;
  b.created_at = ColumnTime(stmt, 4);
  b.died_at = ColumnTime(stmt, 5);
  b.failure = ColumnText(stmt, 6);
  b.succeeded = sqlite3_column_int64(stmt, 7);
  b.failed = sqlite3_column_int64(stmt, 8);
  b.cancelled = sqlite3_column_int64(stmt, 9);
  b.submitted = sqlite3_column_int64(stmt, 10);
  b.closed_at = ColumnTime(stmt, 11);
  return b;
}

// A statement for one read, finalized when it goes.
struct Query {
  sqlite3_stmt* stmt = nullptr;
  ~Query() { sqlite3_finalize(stmt); }
};

}  // namespace distd::journal::sql

#endif  // DISTD_SERVER_JOURNAL_SQL_H_
