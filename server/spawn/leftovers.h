// What is left of a job's processes after the distd that ran it died.
//
// A job runs in its own process group, led by the process distd spawned; the journal keeps
// that pid and when the job started. A new distd kills what is left of the group, but only
// what is still the job's: a pid is used again once its process and group are gone, so a
// process is taken for the job's only if it is the user's and it started no earlier than the
// job did (give or take `tolerance`, the clock's resolution in /proc and the time between
// noting the start and the spawn). A leader that is alive must have started then, or the
// group is someone else's and nothing is killed; so is a leader of another user.
//
// Without a leader the group is recognised by its members alone: a pid used again for a
// process that led a group of its own, and left it behind, between the job's end and now,
// would pass that test. Running each job in a cgroup of its own closes the gap where the
// host allows it. A pid freed and used again between the scan and the kill is not hit: each
// process is signalled through a pidfd, once its start time has been read again through it.
//
// A job the journal never saw start (distd was killed between the spawn and the write), and a
// process that left its job's group, are found by the marks every job's environment starts
// with (spawn/orphans.h): the instance of the distd that started it, and its job's id.
#ifndef DISTD_SERVER_SPAWN_LEFTOVERS_H_
#define DISTD_SERVER_SPAWN_LEFTOVERS_H_

#include <sys/types.h>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/spawn/process.h"

namespace distd::spawn {

struct Leftovers {
  int killed = 0;        // processes of the group sent SIGKILL
  bool foreign = false;  // a live process `pgid` is not the job's: nothing was killed
};

// Sends SIGKILL to what is left of process group `pgid`, a job that started at `started_at`
// (not known: nothing is killed).
Leftovers KillLeftoverGroup(pid_t pgid, absl::Time started_at,
                            absl::Duration tolerance = absl::Seconds(2));

// Sends SIGKILL to every live process of this user (this one aside) that was started with
// DISTD_INSTANCE=`instance` and a DISTD_JOB_ID for which `wanted` holds, and to what forks
// from them meanwhile. Returns, per job, how many of its processes were killed. An empty
// instance kills nothing.
absl::flat_hash_map<JobId, int> KillMarkedLeftovers(absl::string_view instance,
                                                    absl::FunctionRef<bool(JobId)> wanted);

}  // namespace distd::spawn

#endif  // DISTD_SERVER_SPAWN_LEFTOVERS_H_
