// What jobs printed, on disk: one file per job and stream in the state directory's out/
// (`<id>.stdout`, `<id>.stderr`), so that `distctl logs` still has it after the engine let it
// go (its build closed, its output dropped from memory) and after distd restarted.
//
// A stream keeps at most `cap` bytes on disk: the first cap - tail, then, if the job wrote
// more, the same marker line the engine's memory uses ("[distd: N bytes of output omitted]")
// and the last `tail` bytes, written when the job ends (kept in memory until then). Bytes the
// writer had to skip (it fell behind, or a write failed) are said in a marker of their own
// where they were missing, so a file never passes for whole when it is not.
//
// Retention keeps out/ within an age and a size: the files of jobs that ended longer ago than
// the age go, and then the files of the oldest jobs (lowest ids) until the total is under the
// size. A file still being written is never removed.
//
// Threads: Append, Skipped, Finish and Prune are the writer's (the Recorder's thread). Read
// may be called from any thread: it opens the file on its own.
#ifndef DISTD_SERVER_JOURNAL_OUTPUTS_H_
#define DISTD_SERVER_JOURNAL_OUTPUTS_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/container/btree_map.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/engine/output_buffer.h"
#include "server/engine/types.h"
#include "server/journal/journal.h"

namespace distd::journal {

struct OutputLimits {
  uint64_t cap = uint64_t{16} << 20;    // per stream, on disk
  uint64_t tail = uint64_t{256} << 10;  // of that, the end kept when a job writes more
};

struct Retention {
  absl::Duration age = absl::Hours(24 * 7);
  uint64_t bytes = uint64_t{1} << 30;
};

class OutputStore {
 public:
  // The subdirectory, created (0700) in the state directory if missing.
  static constexpr char kDirName[] = "out";

  // Opens (and takes stock of) out/ in `state_dir`, which the caller has checked and holds
  // (Journal::Open). Files of jobs above `last_job_id` (the journal's last) are removed: their
  // ids are to be used again. Errors name the path.
  static absl::StatusOr<std::unique_ptr<OutputStore>> Open(const std::string& state_dir,
                                                           OutputLimits limits,
                                                           engine::JobId last_job_id);
  ~OutputStore();
  OutputStore(const OutputStore&) = delete;
  OutputStore& operator=(const OutputStore&) = delete;

  // The writer's. A chunk of job `id`'s stream; an error is logged once per stream, and what
  // the stream writes after it is counted as skipped.
  void Append(engine::JobId id, engine::OutputStream stream, absl::string_view data);
  // `bytes` of the stream were not kept here (the writer fell behind).
  void Skipped(engine::JobId id, engine::OutputStream stream, uint64_t bytes);
  // The job ended: the tail and markers are written and its files closed. Returns the
  // sizes of its files.
  OutputSizes Finish(engine::JobId id);
  // Removes files by `retention` as of `now`; returns how many bytes it freed.
  uint64_t Prune(const Retention& retention, absl::Time now);
  // Removes the oldest jobs' files (not being written) until out/ holds at most `limit` bytes.
  void Shrink(uint64_t limit);

  // Any thread. What the file of the stream holds, at most cap plus a marker; nullopt if
  // there is no file (the stream wrote nothing, or its file was removed).
  absl::StatusOr<std::optional<std::string>> Read(engine::JobId id,
                                                  engine::OutputStream stream) const;

  // The writer's: the bytes in out/, and the files there.
  uint64_t bytes() const { return bytes_; }
  size_t files() const { return on_disk_.size(); }

 private:
  struct Open_;  // a stream being written
  struct FileInfo {
    uint64_t bytes = 0;
    absl::Time modified;
  };
  using Key = std::pair<engine::JobId, int>;  // the job, and 1 for stdout or 2 for stderr

  OutputStore(int dir_fd, std::string path, OutputLimits limits);
  static std::string FileName(const Key& key);
  Open_* Stream(engine::JobId id, engine::OutputStream stream);  // opens it if need be
  void Write(const Key& key, Open_& open, absl::string_view data, bool marker);
  void MarkSkipped(const Key& key, Open_& open);  // the marker of a gap in the head, if any
  void Close(const Key& key);
  void Remove(const Key& key);

  const int dir_fd_;
  const std::string path_;
  const OutputLimits limits_;
  absl::flat_hash_map<Key, std::unique_ptr<Open_>> open_;
  absl::btree_map<Key, FileInfo> on_disk_;  // every file, oldest job first
  uint64_t bytes_ = 0;
};

}  // namespace distd::journal

#endif  // DISTD_SERVER_JOURNAL_OUTPUTS_H_
