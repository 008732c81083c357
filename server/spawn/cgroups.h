// Job cgroups: where the host delegates a cgroup v2 subtree to distd, each job runs in a
// cgroup of its own, and a job distd stopped is killed whole through cgroup.kill, whatever
// session, process group or environment its processes moved to.
//
// distd's own cgroup counts as delegated when it is not the hierarchy's root and distd may
// write it and its cgroup.procs (a unit with Delegate=yes, a container's own cgroup), and the
// kernel has cgroup.kill (Linux 5.14). Below it, a distd makes `distd-<instance>/` at start,
// and `job-<id>/` in that for each job; a job's processes join theirs before the job's
// program runs (distd-exec writes itself into it), so none starts outside.
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

// Kills every process in the cgroup `dir` (and below). False if it cannot be asked.
bool KillCgroup(const std::string& dir);
// Removes the cgroup `dir`; true once it is gone (false while processes are in it).
bool RemoveCgroup(const std::string& dir);

// At start: what a distd of `previous` left below `delegated`. The cgroups of the jobs for
// which `wanted` holds are killed, and how many processes each had is returned by job; then
// every cgroup of an earlier distd that is empty is removed (a finished job's server keeps
// its own until it exits).
absl::flat_hash_map<JobId, int> KillLeftoverCgroups(absl::string_view delegated,
                                                    absl::string_view previous,
                                                    absl::string_view current,
                                                    absl::FunctionRef<bool(JobId)> wanted);

}  // namespace distd::spawn

#endif  // DISTD_SERVER_SPAWN_CGROUPS_H_
