// The engine's records of jobs, waiters and builds, and the few helpers its files share:
// private to the engine (engine.cc, dying.cc, barriers.cc, sweep.cc, views.cc). Every field
// is guarded by Engine::mu_.
#ifndef DISTD_SERVER_ENGINE_RECORDS_H_
#define DISTD_SERVER_ENGINE_RECORDS_H_

#include <cstdint>
#include <deque>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/engine/engine.h"
#include "server/engine/output_buffer.h"
#include "server/engine/types.h"
#include "server/engine/validate.h"
#include "server/spawn/clock.h"
#include "server/spawn/spawner.h"

namespace distd::engine {

struct Engine::Job {
  JobId id = 0;
  Build* build = nullptr;  // while queued, doomed or running
  std::shared_ptr<const std::string> build_name;
  JobSpec spec;
  std::shared_ptr<const Caller> caller;
  JobState state = JobState::kQueued;
  JobResult result;
  int pid = 0;
  absl::Time queued_at;
  absl::Time started_at = absl::InfinitePast();
  absl::Time ended_at = absl::InfinitePast();
  std::unique_ptr<spawn::Process> process;
  // Its jobserver while it runs, and how many of the pool's slots are in it or taken from it.
  std::unique_ptr<spawn::TokenPipe> tokens;
  uint64_t lent = 0;
  bool flooding = false;              // wrote back tokens it had not taken: no longer watched
  std::unique_ptr<OutputBuffer> out;  // allocated when the job starts
  std::unique_ptr<OutputBuffer> err;
  std::vector<JobWatcher*> watchers;
  std::vector<JobWatcher*> backlogged;  // watchers holding the output back
  // A job with targets: its client, which gets no OnJobOutput for the streams written to
  // them (forwarded, by stream), since it has that output already.
  JobWatcher* owner = nullptr;
  bool forwarded[2] = {false, false};
  spawn::TimerId timeout_timer = 0;
  spawn::TimerId kill_timer = 0;
  bool timed_out = false;
  bool stopping = false;            // SIGTERM sent
  bool stopped_on_request = false;  // by an abort or a cancel: never fails the build
  std::string stop_reason;          // why, for its result's message
};

struct Engine::Waiter {
  WaiterId id = 0;
  Build* build = nullptr;
  bool barrier = false;  // else a death waiter (an abort)
  std::string group;
  JobId target = 0;    // the barrier covers jobs with ids up to this
  BuildCallback done;  // empty for a blocking waiter, which reads `result`
  bool completed = false;
  std::optional<absl::StatusOr<BuildInfo>> result;
};

struct Engine::Build {
  std::shared_ptr<const std::string> name;
  // The principal of the caller whose submission opened it; empty for a restored build.
  std::string opened_by;
  BuildState state = BuildState::kRunning;
  std::deque<Job*> queue;
  // Queued jobs with a watcher: the dying step finishes these at once (a client waits on them).
  absl::flat_hash_set<Job*> watched_queued;
  // The queue as it was when the build died, until the sweep or Close has passed each job.
  std::deque<Job*> doomed;
  absl::Time died_at = absl::InfinitePast();
  absl::flat_hash_set<Job*> running;
  // The barriers; once the build is dying nothing reads them, and the sweep frees them.
  Barrier barrier;
  absl::flat_hash_map<std::string, Barrier> groups;
  std::vector<Waiter*> death_waiters;
  std::optional<Failure> failure;
  bool in_ring = false;
  std::list<Build*>::iterator ring_pos;
  // When a client was last seen attending it (see idle.cc).
  absl::Time attended_at;
  uint64_t submitted = 0;
  uint64_t succeeded = 0;
  uint64_t failed = 0;
  uint64_t cancelled = 0;
};

// Defined in engine.cc.
// A command for the log and for a failure's reason: shell words, cut at 200 bytes.
std::string CommandLine(const std::vector<std::string>& argv);
// How a job ended, in words: "exit code 3", "killed by signal 9 (Killed)", ...
std::string DescribeResult(const JobResult& result);
// An unknown build: a name that could not be one says why (and is not echoed whole).
absl::Status NoSuchBuild(absl::string_view name, const Limits& limits);

}  // namespace distd::engine

#endif  // DISTD_SERVER_ENGINE_RECORDS_H_
