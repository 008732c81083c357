// How jobs become processes. The engine starts every job through this interface and never
// looks behind it: the POSIX spawner runs a local process group, a fake one runs nothing and
// lets tests decide when and how each job ends, and later executors (Slurm, remote execution)
// plug in here.
#ifndef DISTD_SERVER_SPAWN_SPAWNER_H_
#define DISTD_SERVER_SPAWN_SPAWNER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/spawn/jobserver.h"
#include "server/spawn/process.h"

namespace distd::spawn {

struct SpawnRequest {
  JobId id = 0;
  // A valid command, as the engine's validation (server/engine/validate.h) leaves it: argv
  // has a program (common/command_rules.h), cwd is an absolute path. Not checked again here.
  const std::vector<std::string>* argv = nullptr;
  const std::string* cwd = nullptr;
  const std::vector<std::string>* env = nullptr;  // never null
  // Where the job's output is also written as it arrives (null: nowhere). Held until the
  // job's exit is reported (let go just before) or forwarding stops.
  std::shared_ptr<const OutputTargets> targets;
  const ProcessSettings* settings = nullptr;  // null: the spawner's own
  // The job's jobserver (null: none), held by the engine until the job's exit is reported,
  // and the -j its MAKEFLAGS names. Whatever jobserver the environment names is cleared
  // (spawn/jobserver.h) either way.
  const TokenPipe* tokens = nullptr;
  int jobserver_slots = 0;
  const std::string* build = nullptr;  // the job's build's name; never null from the engine
};

// Implemented by the engine. For one job, calls arrive on one thread at a time, output in
// the order it was written, and OnProcessExit last, once all output has been delivered (and
// written to the job's targets, or given up on them).
// Neither method is ever called from inside Spawner::Start.
class ProcessEvents {
 public:
  virtual ~ProcessEvents() = default;
  virtual void OnProcessOutput(JobId id, OutputStream stream, absl::string_view data) = 0;
  virtual void OnProcessExit(JobId id, ExitStatus status) = 0;
};

// A running job. The handle may be destroyed at any time; the process is not affected.
class Process {
 public:
  virtual ~Process() = default;
  virtual int pid() const = 0;
  // Sends `sig` to the job's whole process group, as long as the job has not been reaped.
  virtual void Signal(int sig) = 0;
  // Stops (or resumes) reading the job's output: a job whose readers fall behind blocks on
  // its full pipes instead of filling the daemon's memory. Pending output is still delivered
  // before OnProcessExit.
  virtual void SetOutputPaused(bool /*paused*/) {}
  // Stops writing the job's output to its targets and lets go of them; what they have not
  // taken yet never reaches them (it was delivered as events all the same). For a job whose
  // client is gone, or that was killed: a target nobody reads must not keep the job's end
  // from being reported.
  virtual void StopForwarding() {}
};

class Spawner {
 public:
  virtual ~Spawner() = default;

  // Starts a job. On failure nothing runs and no event will come; the status says why:
  // NotFound when the program does not exist (exit code 127), any other code when it could
  // not be started (126). Must not block for long: the engine calls it under its lock.
  virtual absl::StatusOr<std::unique_ptr<Process>> Start(const SpawnRequest& request,
                                                         ProcessEvents* events) = 0;

  // A build is being stopped: each of its running jobs has been sent SIGTERM. An executor whose
  // jobs run elsewhere also cancels there whatever of the build is left. Under the engine's
  // lock: must not block.
  virtual void StopBuild(absl::string_view /*build*/) {}
};

struct PosixSpawnerOptions {
  // After a job's leader exits, the rest of its process group is killed (a build job leaves
  // nothing behind) and its pipes are drained until EOF, for at most this long, in case a
  // descendant left the group and still holds them.
  absl::Duration orphan_drain = absl::Seconds(2);
  // A job's stdout pipe is enlarged to this (within the system's pipe-max-size) and read in
  // chunks of up to this much: a job that prints a lot then runs ahead in big steps, and the
  // daemon handles (and sends on) one large chunk where it would handle sixteen of the
  // default 64 KiB. stderr keeps the default size: it carries little, and pipe pages count
  // against the user's limit.
  size_t read_chunk = 1 << 20;
  // The program that applies a job's umask and soft limits (ProcessSettings) and then execs
  // the job, used only for a job whose settings differ from the daemon's own: posix_spawn
  // cannot set them. Empty: distd-exec next to the running program.
  std::string exec_helper;
  // distd's own: become the child subreaper, start every job's environment with
  // DISTD_JOB_ID=<id>, kill what a signalled job leaves behind outside its group and reap
  // every orphan (server/spawn/orphans.h). Off, orphans are whoever's subreaper's business.
  bool reap_orphans = false;
  // With reap_orphans: every job's environment also starts with DISTD_INSTANCE=<instance>
  // (none if empty), so that a later distd knows what this one's jobs left
  // (spawn/leftovers.h). Letters, digits, '-' and '_' only.
  std::string instance;
  // With reap_orphans: a cgroup v2 directory distd may make cgroups in (spawn/cgroups.h).
  // Each job then runs in a cgroup of its own there (through distd-exec), and a job that
  // distd signalled is killed with everything in its cgroup when its leader ends; a job's
  // cgroup is removed once it is empty. Empty: no cgroups.
  std::string cgroup_dir;
};

// The Slurm executor: each job runs as `srun --job-name=distd-BUILD -D DIR --export=ALL --
// CMD`, one srun process per job started by `local` (the POSIX spawner), so that the job's
// process group, output and exit code are srun's, which are the remote job's. SIGTERM to srun
// cancels its job step and allocation; StopBuild also runs `scancel --name=distd-BUILD
// --user=UID`, so that nothing of a stopped build is left on the cluster, not even a job
// whose srun was killed. The pool's bound is then the number of jobs in flight on the
// cluster. Jobs get no jobserver: its pipes do not reach another host.
struct SlurmOptions {
  std::string srun;  // absolute paths
  std::string scancel;
  std::string partition;  // --partition, if not empty
  // Given to srun and scancel when the job's environment has none (distd's own, say).
  std::string slurm_conf;
};
// `srun` and `scancel` found on PATH (an absolute path is taken as it is), or NotFound.
absl::StatusOr<std::string> FindProgram(absl::string_view name, absl::string_view path);
std::unique_ptr<Spawner> NewSlurmExecutor(const SlurmOptions& options,
                                          std::unique_ptr<Spawner> local);

// posix_spawn in its own process group with stdin from /dev/null, one I/O thread that drains
// every job's pipes through epoll, reaping by pid. The destructor kills whatever still runs.
// A job's targets must be open with O_NONBLOCK on file descriptions of their own: the I/O
// thread never waits for one. A target that is full stops the reading of the pipes that feed
// it until it takes more (the job blocks, as it would writing there itself); one that fails
// (EPIPE: its reader is gone) closes those pipes, so the job gets SIGPIPE, as in a shell
// pipe.
std::unique_ptr<Spawner> NewPosixSpawner(const PosixSpawnerOptions& options = {});

}  // namespace distd::spawn

#endif  // DISTD_SERVER_SPAWN_SPAWNER_H_
