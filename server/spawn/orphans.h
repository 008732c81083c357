// Orphans: the processes a job started that outlived the job's leader.
//
// distd is its descendants' child subreaper (PR_SET_CHILD_SUBREAPER): a process whose parent
// dies is handed to distd instead of init, whatever session or process group it moved to
// (setsid, a double fork). So every process a job ever started is in the job's process group,
// or under one of its processes, or one of distd's own children, and an abort can reach it:
//  - every job's environment starts with DISTD_JOB_ID=<id> (and DISTD_INSTANCE, which distd
//    started it), which an orphan still carries (unless it replaced its environment when it
//    exec'd) and which says where it came from;
//  - an orphan of a job that distd signalled (an abort, a failing build, a timeout, a stop)
//    is killed, with the process group it leads; an orphan of a job that ended by itself is
//    left alone (a compiler cache starts its server that way) and reaped when it exits.
// The kernel hands orphans to the subreaper's main thread: the children listed are those of
// that thread (/proc/self/task/<pid>/children). The jobs' leaders, children of whichever
// thread spawned them, may be among them; the caller leaves them out.
//
// Not for a process that changes its environment and leaves the group: running each job in
// a cgroup of its own would reach that one too, where the host allows it.
#ifndef DISTD_SERVER_SPAWN_ORPHANS_H_
#define DISTD_SERVER_SPAWN_ORPHANS_H_

#include <sys/types.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/spawn/process.h"

namespace distd::spawn {

inline constexpr absl::string_view kJobIdVariable = "DISTD_JOB_ID";
// A token a distd chooses at start and keeps in its journal: job ids are not unique between
// two distd of one user, the pair is. A later distd finds by it what a killed one left.
inline constexpr absl::string_view kInstanceVariable = "DISTD_INSTANCE";

// The value of the environment entry `entry` if it is NAME=VALUE for `name`.
std::optional<absl::string_view> EnvironmentValue(absl::string_view entry, absl::string_view name);

// The marks process `pid` was started with, as getenv would find them (the first of each).
struct JobMark {
  JobId job = 0;         // 0: none
  std::string instance;  // empty: none
};
JobMark ReadJobMark(pid_t pid);

class Orphans {
 public:
  // How long after its job was signalled an orphan that comes is still killed: what its
  // killed ancestors leave reaches distd within moments.
  static constexpr absl::Duration kDoomedFor = absl::Seconds(30);

  // Makes this process the child subreaper of its descendants.
  static absl::Status BecomeSubreaper();

  // The children of this process's main thread (empty if they cannot be listed).
  static std::vector<pid_t> ListChildren();

  // The orphans of job `id` that are seen from now on are killed.
  void Doom(JobId id, absl::Time now);

  struct Outcome {
    int killed = 0;  // orphans of doomed jobs sent SIGKILL in this pass
    int alive = 0;   // orphans left running (not doomed)
  };
  // One pass over `orphans`, children of this process that are not jobs' leaders: the dead
  // are reaped, the doomed killed (and reaped by a later pass).
  Outcome Handle(const std::vector<pid_t>& orphans, absl::Time now);

  // Whether a pass is worth making without news: an orphan lives, or a doom is recent.
  bool Watching() const { return !known_.empty() || !doomed_.empty(); }

 private:
  absl::flat_hash_map<pid_t, JobId> known_;  // alive when last seen; 0: no job's
  std::map<JobId, absl::Time> doomed_;       // until when its orphans are killed
};

}  // namespace distd::spawn

#endif  // DISTD_SERVER_SPAWN_ORPHANS_H_
