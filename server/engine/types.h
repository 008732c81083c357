// Plain value types of the engine: what a job is, how it ended, what a build looks like.
#ifndef DISTD_SERVER_ENGINE_TYPES_H_
#define DISTD_SERVER_ENGINE_TYPES_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "server/spawn/process.h"

namespace distd::engine {

// The process-level types, which the engine's API speaks too.
using spawn::ExitStatus;
using spawn::JobId;
using spawn::OutputStream;
using spawn::OutputTargets;
using spawn::ProcessSettings;

// Who asked: the peer's uid, and its pid when it is local. Carried into records.
struct Caller {
  uint32_t uid = 0;
  std::string principal;  // human-readable, e.g. "uid:1000"
  int pid = 0;            // the process that connected, when it is local; else 0
};

// One command to run. The environment is shared between the jobs of one submission:
// a batch of 100,000 jobs from one client carries one copy of that client's environment.
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
  kTimedOut,     // stopped by its timeout
  kCancelled,    // never started: its build died, or it was cancelled while queued
  kCannotStart,  // spawn failed (program_not_found says whether for a missing program)
  kLost,         // it was running when distd died; how it ended is not known
};

const char* OutcomeName(Outcome outcome);

// A batch refused for one of its commands carries that command's number (from 1, in
// decimal) as a payload of this type, beside the "command N: " that opens its message.
inline constexpr char kCommandPayload[] = "distd/command";

// The message of a job cancelled because its build died (the engine supplies it when it
// reports such a job, rather than storing it in each of them).
inline constexpr char kBuildStoppedMessage[] =
    "cancelled: the build was stopped before the job started";

// True for the outcomes that fail a build when the job is checked.
bool IsFailure(Outcome outcome);

struct JobResult {
  Outcome outcome = Outcome::kNone;
  // How the process ended, as facts: what a client makes of them (an exit code of its own,
  // a line in a table) is the client's business.
  int exit_code = -1;              // its own exit code if it exited, else -1
  int signal = 0;                  // the signal it died of, else 0
  bool program_not_found = false;  // kCannotStart because the program was not found
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

// "running", "dying", "dead".
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
