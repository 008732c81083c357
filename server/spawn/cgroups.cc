#include "server/spawn/cgroups.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"

namespace distd::spawn {
namespace {

constexpr absl::string_view kInstancePrefix = "distd-";
constexpr absl::string_view kJobPrefix = "job-";

// The names in directory `dir` that start with `prefix`.
std::vector<std::string> Entries(const std::string& dir, absl::string_view prefix) {
  std::vector<std::string> names;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return names;
  while (dirent* entry = readdir(d)) {
    if (entry->d_type == DT_DIR && absl::StartsWith(entry->d_name, prefix)) {
      names.emplace_back(entry->d_name);
    }
  }
  closedir(d);
  return names;
}

// How many processes are in the cgroup `dir` itself.
int ProcessesIn(const std::string& dir) {
  std::ifstream in(dir + "/cgroup.procs");
  int count = 0;
  std::string line;
  while (std::getline(in, line)) ++count;
  return count;
}

}  // namespace

std::optional<std::string> Cgroup2Mount() {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    // ID PARENT MAJOR:MINOR ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
    const size_t dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    const absl::string_view text(line);
    std::vector<absl::string_view> after = absl::StrSplit(text.substr(dash + 3), ' ');
    std::vector<absl::string_view> before = absl::StrSplit(text.substr(0, dash), ' ');
    // A mount point with a space or other odd byte is written escaped: not ours to guess.
    if (after.empty() || after[0] != "cgroup2" || before.size() < 5 ||
        absl::StrContains(before[4], '\\')) {
      continue;
    }
    return std::string(before[4]);
  }
  return std::nullopt;
}

absl::StatusOr<std::string> DelegatedCgroup() {
  const std::optional<std::string> mount = Cgroup2Mount();
  if (!mount.has_value()) return absl::UnavailableError("no cgroup v2 hierarchy is mounted");
  std::ifstream in("/proc/self/cgroup");
  std::string line, path;
  while (std::getline(in, line)) {
    if (absl::StartsWith(line, "0::")) path = line.substr(3);
  }
  if (path.empty()) return absl::UnavailableError("distd is in no cgroup v2");
  if (path == "/") {
    return absl::UnavailableError(
        "distd is in the root cgroup, which is not delegated to it (run it in a unit with "
        "Delegate=yes)");
  }
  const std::string dir = *mount + path;
  if (access(dir.c_str(), W_OK | X_OK) != 0 || access((dir + "/cgroup.procs").c_str(), W_OK) != 0) {
    return absl::UnavailableError(
        absl::StrCat("distd may not make cgroups in its own, ", dir, " (not delegated)"));
  }
  if (access((dir + "/cgroup.kill").c_str(), W_OK) != 0) {
    return absl::UnavailableError(
        absl::StrCat("the kernel has no cgroup.kill (Linux 5.14) in ", dir));
  }
  return dir;
}

std::string InstanceCgroup(absl::string_view delegated, absl::string_view instance) {
  return absl::StrCat(delegated, "/", kInstancePrefix, instance);
}

std::string JobCgroup(absl::string_view instance_dir, JobId id) {
  return absl::StrCat(instance_dir, "/", kJobPrefix, id);
}

bool KillCgroup(const std::string& dir) {
  const int fd = open((dir + "/cgroup.kill").c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = write(fd, "1", 1) == 1;
  close(fd);
  return ok;
}

bool RemoveCgroup(const std::string& dir) { return rmdir(dir.c_str()) == 0 || errno == ENOENT; }

absl::flat_hash_map<JobId, int> KillLeftoverCgroups(absl::string_view delegated,
                                                    absl::string_view previous,
                                                    absl::string_view current,
                                                    absl::FunctionRef<bool(JobId)> wanted) {
  absl::flat_hash_map<JobId, int> killed;
  const std::string base(delegated);
  const std::string mine = absl::StrCat(kInstancePrefix, current);
  std::vector<std::string> doomed;  // killed: given a moment to empty before removal
  if (!previous.empty()) {
    const std::string dir = InstanceCgroup(delegated, previous);
    for (const std::string& name : Entries(dir, kJobPrefix)) {
      JobId id = 0;
      if (!absl::SimpleAtoi(absl::string_view(name).substr(kJobPrefix.size()), &id) ||
          !wanted(id)) {
        continue;
      }
      const std::string job = absl::StrCat(dir, "/", name);
      if (const int count = ProcessesIn(job); count > 0 && KillCgroup(job)) {
        killed[id] = count;
        doomed.push_back(job);
      }
    }
  }
  const absl::Time deadline = absl::Now() + absl::Seconds(1);
  for (const std::string& job : doomed) {
    while (!RemoveCgroup(job) && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(5));
  }
  for (const std::string& instance : Entries(base, kInstancePrefix)) {
    if (instance == mine) continue;
    const std::string dir = absl::StrCat(base, "/", instance);
    for (const std::string& name : Entries(dir, kJobPrefix)) {
      RemoveCgroup(absl::StrCat(dir, "/", name));
    }
    RemoveCgroup(dir);
  }
  return killed;
}

}  // namespace distd::spawn
