#include "server/spawn/leftovers.h"

#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>
// glibc 2.36 (Debian 12) ships <sys/pidfd.h> without __BEGIN_DECLS (see posix_spawner.cc).
extern "C" {
#include <sys/pidfd.h>
}

#include <cstdio>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "server/spawn/orphans.h"

namespace distd::spawn {
namespace {

struct ProcessStat {
  pid_t pid = 0;
  pid_t pgrp = 0;
  char state = '?';
  bool ours = false;  // of this user
  absl::Time started;
};

// When the host booted, from /proc/stat's btime.
std::optional<absl::Time> BootTime() {
  std::ifstream in("/proc/stat");
  std::string line;
  while (std::getline(in, line)) {
    int64_t seconds = 0;
    if (absl::StartsWith(line, "btime ") &&
        absl::SimpleAtoi(absl::string_view(line).substr(6), &seconds)) {
      return absl::FromUnixSeconds(seconds);
    }
  }
  return std::nullopt;
}

// /proc/PID/stat: the process's group, state and start, and whether it is this user's. The
// command name (the second field) is in parentheses and may hold anything, so the fields are
// counted from the last ')'.
std::optional<ProcessStat> ReadStat(pid_t pid, absl::Time boot, int64_t ticks_per_second) {
  const std::string dir = absl::StrCat("/proc/", pid);
  struct stat st;
  if (stat(dir.c_str(), &st) != 0) return std::nullopt;
  std::ifstream in(dir + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t paren = text.rfind(')');
  if (paren == std::string::npos) return std::nullopt;
  // After ')': state(3) ppid(4) pgrp(5) ... starttime(22), so index 0 is field 3.
  std::vector<absl::string_view> fields =
      absl::StrSplit(absl::string_view(text).substr(paren + 1), ' ', absl::SkipEmpty());
  int64_t pgrp = 0, start_ticks = 0;
  if (fields.size() < 20 || fields[0].empty() || !absl::SimpleAtoi(fields[2], &pgrp) ||
      !absl::SimpleAtoi(fields[19], &start_ticks)) {
    return std::nullopt;
  }
  ProcessStat s;
  s.pid = pid;
  s.ours = st.st_uid == getuid();
  s.pgrp = static_cast<pid_t>(pgrp);
  s.state = fields[0][0];
  s.started = boot + absl::Milliseconds(start_ticks * 1000 / ticks_per_second);
  return s;
}

// The live processes of this user for which `keep` holds.
std::vector<ProcessStat> OurProcesses(absl::Time boot, int64_t ticks_per_second,
                                      absl::FunctionRef<bool(const ProcessStat&)> keep) {
  std::vector<ProcessStat> found;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return found;
  while (dirent* entry = readdir(proc)) {
    int pid = 0;
    if (!absl::SimpleAtoi(entry->d_name, &pid) || pid <= 0) continue;
    std::optional<ProcessStat> s = ReadStat(pid, boot, ticks_per_second);
    if (s.has_value() && s->ours && s->state != 'Z' && keep(*s)) found.push_back(*s);
  }
  closedir(proc);
  return found;
}

// SIGKILL to `m`, seen in the scan, if the pid is still that process: the pidfd holds the
// process the pid names when it is opened, and its start time, read again after, says
// whether that is the one the scan saw (a pid freed and used again in between is not).
// A process of a group must still be in it; a marked one may have moved since.
bool KillIfStill(const ProcessStat& m, absl::Time boot, int64_t ticks_per_second,
                 bool same_group = true) {
  const int pidfd = pidfd_open(m.pid, 0);
  if (pidfd < 0) return false;
  std::optional<ProcessStat> now = ReadStat(m.pid, boot, ticks_per_second);
  const bool same = now.has_value() && now->ours && (!same_group || now->pgrp == m.pgrp) &&
                    now->started == m.started && now->state != 'Z';
  const bool killed = same && pidfd_send_signal(pidfd, SIGKILL, nullptr, 0) == 0;
  close(pidfd);
  return killed;
}

}  // namespace

Leftovers KillLeftoverGroup(pid_t pgid, absl::Time started_at, absl::Duration tolerance) {
  Leftovers result;
  if (pgid <= 1 || started_at == absl::InfinitePast()) return result;
  const std::optional<absl::Time> boot = BootTime();
  const int64_t ticks = sysconf(_SC_CLK_TCK);
  if (!boot.has_value() || ticks <= 0) return result;
  // A live process with the leader's pid, whoever's it is and whatever its group, must be the
  // job's leader, started when the job did; else the pid is someone else's now.
  if (std::optional<ProcessStat> leader = ReadStat(pgid, *boot, ticks);
      leader.has_value() && leader->state != 'Z' &&
      (!leader->ours || absl::AbsDuration(leader->started - started_at) > tolerance)) {
    result.foreign = true;
    return result;
  }
  // A member may fork while the group is being killed: go again until a round finds no new
  // one (a killed process is listed until it is reaped).
  absl::flat_hash_set<pid_t> killed;
  for (int round = 0; round < 8; ++round) {
    bool found = false;
    for (const ProcessStat& m :
         OurProcesses(*boot, ticks, [pgid](const ProcessStat& p) { return p.pgrp == pgid; })) {
      if (m.started + tolerance < started_at) continue;  // older than the job: not its own
      if (killed.contains(m.pid)) continue;
      if (KillIfStill(m, *boot, ticks)) {
        killed.insert(m.pid);
        found = true;
      }
    }
    if (!found) break;
  }
  result.killed = static_cast<int>(killed.size());
  return result;
}

absl::flat_hash_map<JobId, int> KillMarkedLeftovers(absl::string_view instance,
                                                    absl::FunctionRef<bool(JobId)> wanted) {
  absl::flat_hash_map<JobId, int> killed_by_job;
  const std::optional<absl::Time> boot = BootTime();
  const int64_t ticks = sysconf(_SC_CLK_TCK);
  if (instance.empty() || !boot.has_value() || ticks <= 0) return killed_by_job;
  const pid_t self = getpid();
  absl::flat_hash_set<pid_t> killed;
  // As for a group: what forks while the others are killed is found by the next round.
  for (int round = 0; round < 8; ++round) {
    bool found = false;
    absl::flat_hash_map<pid_t, JobId> job_of;
    for (const ProcessStat& m : OurProcesses(*boot, ticks, [&](const ProcessStat& p) {
           if (p.pid == self || killed.contains(p.pid)) return false;
           const JobMark mark = ReadJobMark(p.pid);
           if (mark.job == 0 || mark.instance != instance || !wanted(mark.job)) return false;
           job_of[p.pid] = mark.job;
           return true;
         })) {
      found = true;  // killed, or gone, or left for the next round
      if (KillIfStill(m, *boot, ticks, /*same_group=*/false)) {
        killed.insert(m.pid);
        ++killed_by_job[job_of[m.pid]];
      }
    }
    if (!found) break;
  }
  return killed_by_job;
}

}  // namespace distd::spawn
