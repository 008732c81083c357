#include "server/spawn/cgroups.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
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
    const absl::string_view name = entry->d_name;
    if (entry->d_type == DT_DIR && name != "." && name != ".." && absl::StartsWith(name, prefix)) {
      names.emplace_back(entry->d_name);
    }
  }
  closedir(d);
  return names;
}

// How many processes are in the cgroup `dir` and below.
int ProcessesIn(const std::string& dir) {
  std::ifstream in(dir + "/cgroup.procs");
  int count = 0;
  std::string line;
  while (std::getline(in, line)) ++count;
  for (const std::string& name : Entries(dir, "")) count += ProcessesIn(dir + "/" + name);
  return count;
}

bool HasAttribute(const std::string& path, const char* name) {
  return getxattr(path.c_str(), name, nullptr, 0) >= 0;
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
    // Only a mount of the whole hierarchy (its root "/") maps cgroup paths to directories.
    if (after.empty() || after[0] != "cgroup2" || before.size() < 5 || before[3] != "/" ||
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
  struct stat st;
  const bool marked = HasAttribute(dir, "trusted.delegate") || HasAttribute(dir, "user.delegate") ||
                      (geteuid() != 0 && stat(dir.c_str(), &st) == 0 && st.st_uid == geteuid());
  if (!marked) {
    return absl::UnavailableError(absl::StrCat(
        "distd's cgroup ", dir, " is not delegated to it (run it in a unit with Delegate=yes)"));
  }
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

bool RemoveCgroup(const std::string& dir) {
  for (const std::string& name : Entries(dir, "")) RemoveCgroup(dir + "/" + name);
  return rmdir(dir.c_str()) == 0 || errno == ENOENT;
}

absl::flat_hash_map<JobId, int> KillLeftoverCgroups(absl::string_view delegated,
                                                    absl::string_view previous,
                                                    absl::FunctionRef<bool(JobId)> wanted) {
  absl::flat_hash_map<JobId, int> killed;
  if (previous.empty()) return killed;
  const std::string dir = InstanceCgroup(delegated, previous);
  std::vector<std::pair<std::string, bool>> jobs;  // and whether it was killed
  for (const std::string& name : Entries(dir, kJobPrefix)) {
    const std::string job = absl::StrCat(dir, "/", name);
    JobId id = 0;
    bool doomed = false;
    if (absl::SimpleAtoi(absl::string_view(name).substr(kJobPrefix.size()), &id) && wanted(id)) {
      if (const int count = ProcessesIn(job); count > 0 && KillCgroup(job)) {
        killed[id] = count;
        doomed = true;
      }
    }
    jobs.emplace_back(job, doomed);
  }
  // The killed are given a moment to go; the rest go now if they are empty.
  const absl::Time deadline = absl::Now() + absl::Seconds(1);
  for (const auto& [job, doomed] : jobs) {
    while (!RemoveCgroup(job) && doomed && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(5));
    }
  }
  rmdir(dir.c_str());  // unless a server keeps a job's
  return killed;
}

}  // namespace distd::spawn
