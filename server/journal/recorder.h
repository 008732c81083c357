// The engine's changes into the journal, off the engine's hot path.
//
// The Recorder is an EngineObserver: each callback (made under the engine's lock) only copies
// what it needs into a queue. Its own thread takes the whole queue at once and writes it in
// one transaction. A batch of 100,000 submissions is one change (the engine reports a
// submission in one call), and so is the cancellation of as many (the build's death), so
// either is one commit rather than 100,000. The engine's order of events is kept.
//
// A write that fails (a full or read-only disk) is not lost: the transaction is rolled back,
// the changes stay queued, in order, and are tried again, first after a short pause, then at
// most every `retry_max`. While the journal is behind that way, healthy() says why, and distd
// refuses new work with that message instead of running jobs it could not account for.
//
// What jobs print goes, in the same order, to the OutputStore (outputs.h), if there is one:
// written before the rows of the same batch, and never twice (a failed file write is said in
// the file, not tried again). Output waiting to be written is bounded (max_pending_output):
// beyond it, chunks are counted instead of kept, and the file says how many bytes it lacks.
// The same thread applies the output's retention at start and every `prune_every`.
#ifndef DISTD_SERVER_JOURNAL_RECORDER_H_
#define DISTD_SERVER_JOURNAL_RECORDER_H_

#include <memory>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/engine/observer.h"
#include "server/journal/journal.h"
#include "server/journal/outputs.h"
#include "server/spawn/clock.h"

namespace distd::journal {

struct RecorderOptions {
  absl::Duration retry_min = absl::Milliseconds(100);
  absl::Duration retry_max = absl::Seconds(5);
  // After the first change of a quiet spell, how long the writer waits for more to join its
  // transaction (not when a stop or a Flush waits): fewer, larger commits under a busy engine.
  absl::Duration gather = absl::Milliseconds(2);
  uint64_t max_pending_output = uint64_t{64} << 20;
  Retention retention;
  // Builds closed longer ago than this are forgotten, with their jobs (at the prune).
  absl::Duration history_keep = absl::Hours(24 * 30);
  absl::Duration prune_every = absl::Hours(1);
};

class Recorder : public engine::EngineObserver {
 public:
  // Writes into `journal`, which it uses alone from now on (reads from other threads are
  // fine), and jobs' output into `outputs` (if not null; the same), reading the time of a
  // change from `clock` where the engine gives none.
  Recorder(Journal* journal, OutputStore* outputs, spawn::Clock* clock,
           RecorderOptions options = {});
  // Writes what is still queued (one last try) and stops its thread.
  ~Recorder() override;
  Recorder(const Recorder&) = delete;
  Recorder& operator=(const Recorder&) = delete;

  // OK, or why the last write failed while changes are still waiting to be written.
  absl::Status healthy() const;

  // Returns once everything queued before the call is written, or a write begun after the
  // call failed.
  absl::Status Flush();

  void OnJobsQueued(absl::Span<const engine::JobInfo> jobs) override;
  void OnJobStarted(const engine::JobInfo& job) override;
  void OnJobOutput(engine::JobId id, engine::OutputStream stream, absl::string_view data) override;
  void OnJobFinished(const engine::JobInfo& job) override;
  void OnJobsCancelled(absl::string_view build, absl::Span<const engine::JobId> ids) override;
  void OnBuildDying(const engine::BuildInfo& build) override;
  void OnBuildDead(const engine::BuildInfo& build) override;
  void OnBuildClosed(absl::string_view build) override;

 private:
  struct Queued {
    std::vector<engine::JobInfo> jobs;
  };
  struct Changed {
    engine::JobInfo job;
  };
  struct Cancelled {
    std::vector<engine::JobId> ids;
    absl::Time when;
  };
  struct BuildChange {
    engine::BuildInfo build;
    absl::Time when;
  };
  struct Closed {
    std::string name;
    absl::Time when;
  };
  using Change = std::variant<Queued, Changed, Cancelled, BuildChange, Closed>;
  // A chunk of a job's output, a count of bytes not kept, or (`end`) the job's end.
  struct Output {
    engine::JobId id = 0;
    engine::OutputStream stream = engine::OutputStream::kStdout;
    std::string data;
    uint64_t skipped = 0;
    bool end = false;
  };

  void Push(Change change);
  bool HasWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !queue_.empty() || !output_.empty() || stopping_;
  }
  void Loop();
  void Prune();  // old output files, and builds closed long ago
  void WriteOutput(const std::vector<Output>& output);
  absl::Status Write(const std::vector<Change>& changes);

  Journal* const journal_;
  OutputStore* const outputs_;
  spawn::Clock* const clock_;
  const RecorderOptions options_;
  // The writer's: what out/ kept of jobs whose files were finished, until their end's row is
  // committed (the output of a batch is written before its rows).
  absl::flat_hash_map<engine::JobId, OutputSizes> kept_;
  mutable absl::Mutex mu_;
  std::vector<Change> queue_ ABSL_GUARDED_BY(mu_);
  std::vector<Output> output_ ABSL_GUARDED_BY(mu_);
  uint64_t output_bytes_ ABSL_GUARDED_BY(mu_) = 0;  // of data in output_
  uint64_t pushed_ ABSL_GUARDED_BY(mu_) = 0;        // changes ever queued
  uint64_t written_ ABSL_GUARDED_BY(mu_) = 0;       // of them, committed
  uint64_t started_ ABSL_GUARDED_BY(mu_) = 0;       // writes begun
  uint64_t last_failed_ ABSL_GUARDED_BY(mu_) = 0;   // the last write that failed, by number
  absl::Status health_ ABSL_GUARDED_BY(mu_);
  // Builds whose death is queued: the journal cancels their queues then, in one statement, so
  // that the engine's later reports of those jobs need not be written.
  absl::flat_hash_set<std::string> dying_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int flushing_ ABSL_GUARDED_BY(mu_) = 0;  // Flush calls waiting
  bool Hurried() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || flushing_ > 0; }
  std::thread thread_;  // last: started once the rest is ready
};

}  // namespace distd::journal

#endif  // DISTD_SERVER_JOURNAL_RECORDER_H_
