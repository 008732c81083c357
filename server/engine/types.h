// Plain value types of the engine: what a job is, how it ended, what a build looks like.
#ifndef DISTD_SERVER_ENGINE_TYPES_H_
#define DISTD_SERVER_ENGINE_TYPES_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace distd::engine {

// Job ids are unique for the life of an engine and increase in submission order, so
// "submitted before" is "has a smaller id".
using JobId = uint64_t;

enum class OutputStream { kStdout, kStderr };

// Who asked. The uid today; a token or certificate subject later. Carried into records.
struct Caller {
  uint32_t uid = 0;
  std::string principal;  // human-readable, e.g. "uid:1000"
  int pid = 0;            // the process that connected, when it is local; else 0
};

// Files the job's output is written to as it arrives, besides being kept in its record: a
// local client's own stdout and stderr, opened by the daemon, so that a foreground job's
// output reaches it without a copy through the client. Owns the fds (-1: that stream is not
// forwarded; the same fd for both: one file, such as a pipe after `2>&1`, which gets the two
// streams in the order they are read) and closes them when the last holder lets go: when
// the job ends, before anyone hears of its end, so that a reader waiting for EOF is not held
// up, or earlier, when forwarding stops (its client is gone, or it was killed).
class OutputTargets {
 public:
  OutputTargets(int stdout_fd, int stderr_fd) : fds_{stdout_fd, stderr_fd} {}
  ~OutputTargets();
  OutputTargets(const OutputTargets&) = delete;
  OutputTargets& operator=(const OutputTargets&) = delete;

  int fd(OutputStream stream) const { return fds_[stream == OutputStream::kStdout ? 0 : 1]; }
  bool shared() const { return fds_[0] >= 0 && fds_[0] == fds_[1]; }

 private:
  const int fds_[2];
};

// One command to run. The environment is shared between the jobs of one submission:
// a batch of 100,000 jobs from one client carries one copy of that client's environment.
// What a job gets from its client's shell besides argv, cwd and env (see the proto's
// ProcessSettings): unset fields keep distd's own.
struct ProcessSettings {
  struct Limit {
    int resource = -1;  // RLIMIT_*; -1 for one this distd does not know
    uint64_t soft = 0;  // RLIM_INFINITY for none
    bool operator==(const Limit&) const = default;
  };
  std::optional<uint32_t> umask;
  std::vector<Limit> limits;
  bool operator==(const ProcessSettings&) const = default;
};

struct JobSpec {
  std::vector<std::string> argv;                        // argv[0] is looked up on the job's PATH
  std::string cwd;                                      // absolute
  std::shared_ptr<const std::vector<std::string>> env;  // "K=V" entries; null = empty
  std::optional<absl::Duration> timeout;
  bool check = true;  // a failure of this job fails (aborts) its build
  std::string group;  // barrier scope inside the build; empty = none
  // Barriers (Engine::Wait) cover background jobs only: a foreground job's client waits for
  // it itself.
  bool background = true;
  // Foreground jobs only: where the output goes as it arrives (see OutputTargets). The
  // watcher given with the job's Submit is its client, and gets no OnJobOutput for these
  // streams: the output is already there.
  std::shared_ptr<const OutputTargets> targets;
  // The client's umask and soft limits, shared by the jobs of one request; null: distd's own.
  std::shared_ptr<const ProcessSettings> settings;
};

enum class JobState { kQueued, kRunning, kFinished };

// Every job ends in exactly one of these.
enum class Outcome {
  kNone,         // not finished yet
  kSucceeded,    // exit code 0
  kFailed,       // exit code != 0
  kKilled,       // died of a signal
  kTimedOut,     // stopped by its timeout; exit code 124
  kCancelled,    // never started: its build died, or it was cancelled while queued
  kCannotStart,  // spawn failed: 127 program not found, 126 anything else
  kLost,         // running when the daemon died (set by restart recovery)
};

const char* OutcomeName(Outcome outcome);

// True for the outcomes that fail a build when the job is checked.
bool IsFailure(Outcome outcome);

// How a process ended, as the spawner reports it.
struct ExitStatus {
  int exit_code = 0;  // valid when signal == 0
  int signal = 0;     // > 0: killed by this signal
};

struct JobResult {
  Outcome outcome = Outcome::kNone;
  // The code distctl passes through: exit code, 128+signal, 124, 126 or 127; -1 if cancelled.
  int exit_code = -1;
  int signal = 0;
  // Stopped by an abort or a client's cancel rather than ending on its own.
  bool stopped = false;
  std::string message;  // why it could not start, or what stopped it
};

// A copy of one job's record, safe to keep after the engine moves on.
struct JobInfo {
  JobId id = 0;
  std::string build;
  std::string group;
  std::vector<std::string> argv;
  std::string cwd;
  bool check = true;
  Caller caller;
  JobState state = JobState::kQueued;
  JobResult result;
  int pid = 0;
  absl::Time queued_at;
  absl::Time started_at;  // InfinitePast() if it never started
  absl::Time ended_at;    // InfinitePast() until it ends
};

// running -> dying -> dead. A dead build refuses new jobs until it is closed.
enum class BuildState { kRunning, kDying, kDead };

const char* BuildStateName(BuildState state);

// The first failure of a build: the job that failed (or the abort that killed it) and what
// that job printed, truncated as captured.
struct Failure {
  std::optional<JobInfo> job;  // absent when the build was aborted by request
  std::string reason;          // one line: "exit code 3: cc -c x.c" or "aborted: <reason>"
  std::string stdout_text;
  std::string stderr_text;
};

struct BuildInfo {
  std::string name;
  BuildState state = BuildState::kRunning;
  uint64_t queued = 0;
  uint64_t running = 0;
  uint64_t succeeded = 0;
  uint64_t failed = 0;  // failed, killed, timed out, could not start
  uint64_t cancelled = 0;
  uint64_t submitted = 0;
  std::optional<Failure> failure;
};

}  // namespace distd::engine

#endif  // DISTD_SERVER_ENGINE_TYPES_H_
