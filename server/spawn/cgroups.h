// Job cgroups: where the host delegates a cgroup v2 subtree to distd, each job runs in a
// cgroup of its own, and a job distd stopped is killed whole through cgroup.kill, whatever
// session, process group or environment its processes moved to.
//
// distd's own cgroup counts as delegated when it is not the hierarchy's root, it is marked so
// (the trusted.delegate or user.delegate attribute systemd sets for a unit with Delegate=yes)
// or, for a user other than root, owned by distd's user (as an older systemd delegates),
// distd may write it and its cgroup.procs, and the kernel has cgroup.kill (Linux 5.14). In a
// container with a cgroup namespace of its own, distd sees its cgroup as the root and runs
// without. Below it, a distd makes `distd-<instance>/` at start, and `job-<id>/` in that for
// each job; a job's processes join theirs before the job's program runs (distd-exec writes
// itself into it first), so none starts outside. A job can still move itself out (into
// distd's own cgroup, which its user may write): the cgroup is a net for what escapes by
// accident, not a jail.
#ifndef DISTD_SERVER_SPAWN_CGROUPS_H_
#define DISTD_SERVER_SPAWN_CGROUPS_H_

#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/spawn/process.h"

namespace distd::spawn {

// Where the cgroup v2 hierarchy is mounted, if it is.
std::optional<std::string> Cgroup2Mount();

// This process's cgroup v2 directory, if distd may make job cgroups below it; else why not.
absl::StatusOr<std::string> DelegatedCgroup();

// The directory a distd of `instance` keeps its jobs' cgroups in, below `delegated`.
std::string InstanceCgroup(absl::string_view delegated, absl::string_view instance);
// Job `id`'s cgroup in `instance_dir`.
std::string JobCgroup(absl::string_view instance_dir, JobId id);

// Kills every process in the cgroup `dir` and below. False if it cannot be asked.
bool KillCgroup(const std::string& dir);
// Removes the cgroup `dir` with the cgroups a job made below it; true once it is gone (false
// while processes are in it).
bool RemoveCgroup(const std::string& dir);

// At start: what the distd of instance `previous` (the journal's last, which is dead: the
// journal's lock says so) left below `delegated`. The cgroups of its jobs for which `wanted`
// holds are killed (how many processes each had is returned by job) and then removed, and so
// is every other one that is empty (a finished job's server keeps its own until it exits).
// The cgroups of other distd are never touched.
absl::flat_hash_map<JobId, int> KillLeftoverCgroups(absl::string_view delegated,
                                                    absl::string_view previous,
                                                    absl::FunctionRef<bool(JobId)> wanted);

}  // namespace distd::spawn

#endif  // DISTD_SERVER_SPAWN_CGROUPS_H_
