// The journal: what distd knows of builds and jobs, kept in SQLite (WAL mode) in its state
// directory, so that a client that went away, or a distd started after one that died, can still
// learn how every job of a build ended.
//
// One writer: the Recorder's thread (recorder.h), which groups the engine's changes into one
// transaction per batch. Reads (history, a closed build's outcome, a finished job) may come
// from any thread, through a second, read-only connection: they see what was committed.
//
// What is kept, per build (a name is used again once its build is closed, so a build is a row
// with a key, and at most one row per name is open): its name, state, when it was first used
// and when it died, its first failure, and its jobs' counts as last reported. Per job: the
// build's row, argv, directory, group, who submitted it, whether it is checked, state, the
// times it was queued, started and ended, how it ended (outcome, exit code, signal, message),
// the bytes out/ kept of each stream and, while it runs, its pid (the leader of its process
// group). The meta table keeps the instance token of the distd that writes (recovery.cc).
#ifndef DISTD_SERVER_JOURNAL_JOURNAL_H_
#define DISTD_SERVER_JOURNAL_JOURNAL_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "server/engine/types.h"

struct sqlite3;
struct sqlite3_stmt;

namespace distd::journal {

// A build as the journal has it.
struct BuildRecord {
  int64_t key = 0;
  std::string name;
  engine::BuildState state = engine::BuildState::kRunning;
  bool open = true;  // not closed yet
  absl::Time created_at;
  absl::Time died_at = absl::InfinitePast();
  absl::Time closed_at = absl::InfinitePast();
  std::string failure;  // the first failure's one line; empty if none
  uint64_t succeeded = 0, failed = 0, cancelled = 0, submitted = 0;

  // As the engine has a build: its failure is the reason alone.
  engine::BuildInfo ToInfo() const;
};

// What the state directory's out/ kept of a finished job's streams (journal/outputs.h), in
// bytes: a job whose file is gone but had bytes lost them to retention.
struct OutputSizes {
  uint64_t stdout_bytes = 0;
  uint64_t stderr_bytes = 0;
};

// A job as the journal has it: the engine's record, and the key of its build's row.
struct JobRecord {
  int64_t build_key = 0;
  engine::JobInfo job;
  OutputSizes kept;
};

// The failure of a build whose jobs were running (or queued) when its distd died.
inline constexpr char kRestartedWhileRunning[] = "distd restarted while jobs were running";
inline constexpr char kRestartedWhileQueued[] = "distd restarted while jobs were queued";
// The message of a job that was running then.
inline constexpr char kLostMessage[] = "lost: distd restarted while the job was running";

// What Recover found and did.
struct Recovery {
  uint64_t lost = 0;                // jobs that were running, now lost
  uint64_t cancelled = 0;           // jobs that were queued, now cancelled
  uint64_t unseen = 0;              // of the lost, those recorded queued but found running
  std::vector<std::string> failed;  // the builds that failed for it
  // Every build not closed, as the engine is to know it again (Engine::Restore): running
  // and idle, or dead with its failure.
  std::vector<engine::BuildInfo> open;
};

// Called by Recover for each job that was running: the leader of its process group, and when
// the job started, so that a pid used again since is told apart (spawn/leftovers.h).
using LeftoverKiller = std::function<void(int pid, absl::Time started_at)>;
// Called by Recover once, if the journal knows the instance of the distd that wrote it (the
// DISTD_INSTANCE it gave its jobs): kills what is left of the jobs for which `wanted` holds,
// found by the marks their processes were started with (spawn/leftovers.h), and returns the
// ids of the jobs that had a process left. It finds what the journal cannot: a job that
// started (or was even submitted) too shortly before its distd died for the journal to know,
// and the processes that left their job's group.
using MarkedKiller = std::function<absl::flat_hash_set<engine::JobId>(
    absl::string_view instance, absl::FunctionRef<bool(engine::JobId)> wanted)>;

// $XDG_STATE_HOME/distd if XDG_STATE_HOME is an absolute path, else ~/.local/state/distd;
// an error if neither can be told (no HOME).
absl::StatusOr<std::string> DefaultStateDir();

class Journal {
 public:
  // The files in the state directory.
  static constexpr char kFileName[] = "journal.db";
  static constexpr char kLockName[] = "lock";

  // Opens the journal in `state_dir`, creating the directory (0700) and the file if missing.
  // The directory is held to distd's rule for private directories (common/private_dir.h). One
  // distd at a time: the directory's lock file is held while the journal is open, and a second
  // Open is refused (FailedPrecondition) until it closes. A file that is not a journal of
  // ours, or one written by a newer distd, is refused; every error names the path and says
  // what is wrong.
  static absl::StatusOr<std::unique_ptr<Journal>> Open(const std::string& state_dir);
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // A write transaction: the calls between Begin and Commit land together or not at all. On
  // an error the caller calls Rollback, and nothing of the transaction is kept.
  absl::Status Begin();
  absl::Status Commit();
  void Rollback();
  // How many transactions were committed since Open.
  uint64_t commits() const { return commits_.load(); }
  // Caps the file at `pages` pages of 4 KiB, as a full disk would: for the tests of a full disk.
  absl::Status CapPagesForTesting(int pages);

  // Within a transaction. The jobs of one submission (all of one build): their rows, and
  // their build's row if this is its first job (or the first since its name was closed).
  absl::Status JobsQueued(absl::Span<const engine::JobInfo> jobs);
  // A job that started or finished: its state, pid, times and result, and once it finished,
  // what out/ kept of its output.
  absl::Status JobChanged(const engine::JobInfo& job, OutputSizes kept = {});
  // Queued jobs cancelled because their build died: they ended when it died (or at `when`,
  // if the journal missed that).
  absl::Status JobsCancelled(absl::Span<const engine::JobId> ids, absl::Time when);
  // A build that is dying or dead: its state, counts and first failure; once it is not
  // running, its jobs still queued are cancelled as of `when`.
  absl::Status BuildChanged(const engine::BuildInfo& build, absl::Time when);
  // A build closed at `when`: its name may start a new build.
  absl::Status BuildClosed(absl::string_view name, absl::Time when);

  // In a transaction of its own: forgets the builds closed before `closed_before`, with their
  // jobs, and returns how many builds went. The row of the highest job id stays (with its
  // build): the ids of a later distd go on from it.
  absl::StatusOr<int64_t> ForgetClosedBuilds(absl::Time closed_before);

  // Reads.
  absl::StatusOr<std::optional<JobRecord>> FindJob(engine::JobId id);
  // The latest build of that name, open or closed; nullopt if none ever was.
  absl::StatusOr<std::optional<BuildRecord>> FindBuild(absl::string_view name);
  // The builds (or the closed ones only), most recent first, at most `limit` (-1: all).
  absl::StatusOr<std::vector<BuildRecord>> RecentBuilds(int limit, bool closed_only = false);
  // The highest job id ever recorded (0 if none): a new distd goes on from there.
  absl::StatusOr<engine::JobId> LastJobId();

  // At start, before the Recorder writes: settles what a distd that died left unfinished, in
  // one transaction. Jobs that were running become lost (after `kill` was called for each),
  // and so do queued ones that `kill_marked` found running (it is asked for the unfinished
  // jobs and those the journal never heard of); the other queued ones are cancelled. Their
  // builds become dead with kRestartedWhileRunning (or ...Queued) unless they had failed
  // already; a build that was dying becomes dead. Builds that were idle keep their state.
  // Every open build's counts are recounted from its jobs. `instance` is this distd's, kept
  // for the next one's recovery.
  absl::StatusOr<Recovery> Recover(absl::Time now, absl::string_view instance,
                                   const LeftoverKiller& kill,
                                   const MarkedKiller& kill_marked = nullptr);

 private:
  Journal(sqlite3* db, int dir_fd, int lock_fd, std::string path);
  absl::Status Exec(const char* sql);
  absl::StatusOr<sqlite3_stmt*> Prepare(const char* sql);
  absl::StatusOr<sqlite3_stmt*> PrepareRead(const char* sql);  // on reader_
  absl::StatusOr<std::string> ReadOne(const char* sql);        // the first column of the first row
  absl::Status Step(sqlite3_stmt* stmt);  // runs a statement that returns no rows, and resets it
  absl::Status Fail(absl::string_view what);  // of a call on db_
  absl::Status FailRead();                    // of a call on reader_
  absl::Status Fail(absl::string_view what, sqlite3* db);
  absl::StatusOr<int64_t> OpenBuildKey(absl::string_view name, absl::Time created_at);
  // A value of the meta table, read by the writer; nullopt if it has none.
  absl::StatusOr<std::optional<std::string>> Meta(const char* key);
  static constexpr char kInstanceKey[] = "instance";  // the last distd's DISTD_INSTANCE
  absl::Status CreateSchema();
  absl::Status LoadOpenBuilds();

  sqlite3* const db_;          // the writer's
  sqlite3* reader_ = nullptr;  // for reads from any thread
  const int dir_fd_;           // the checked state directory, held while the journal is open
  const int lock_fd_;          // its lock file, locked while the journal is open
  const std::string path_;     // for messages
  // The open build rows by name, so that a job's build is found without a query. Only the
  // writer's thread touches it.
  absl::flat_hash_map<std::string, int64_t> open_builds_;
  std::atomic<uint64_t> commits_ = 0;
  // Prepared once, reused.
  sqlite3_stmt* insert_build_ = nullptr;
  sqlite3_stmt* insert_job_ = nullptr;
  sqlite3_stmt* update_job_ = nullptr;
  sqlite3_stmt* cancel_job_ = nullptr;
  sqlite3_stmt* cancel_queue_ = nullptr;
  sqlite3_stmt* update_build_ = nullptr;
  sqlite3_stmt* close_build_ = nullptr;
};

}  // namespace distd::journal

#endif  // DISTD_SERVER_JOURNAL_JOURNAL_H_
