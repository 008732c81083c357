#include "server/spawn/orphans.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <optional>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace distd::spawn {
namespace {

// Reads at most `limit` bytes of `path` (a /proc file: read in one go or in a few reads).
std::string ReadSmallFile(const std::string& path, size_t limit) {
  std::string text;
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return text;
  char buffer[4096];
  while (text.size() < limit) {
    const ssize_t n = read(fd, buffer, std::min(sizeof buffer, limit - text.size()));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(buffer, static_cast<size_t>(n));
  }
  close(fd);
  return text;
}

}  // namespace

std::optional<absl::string_view> EnvironmentValue(absl::string_view entry, absl::string_view name) {
  if (entry.size() <= name.size() || entry[name.size()] != '=' || !absl::StartsWith(entry, name)) {
    return std::nullopt;
  }
  return entry.substr(name.size() + 1);
}

JobMark ReadJobMark(pid_t pid) {
  const std::string environ =
      ReadSmallFile(absl::StrCat("/proc/", pid, "/environ"), size_t{1} << 20);
  JobMark mark;
  bool job_seen = false, instance_seen = false;
  for (absl::string_view entry : absl::StrSplit(environ, '\0')) {
    if (std::optional<absl::string_view> job = EnvironmentValue(entry, kJobIdVariable);
        job.has_value() && !job_seen) {
      job_seen = true;
      if (!absl::SimpleAtoi(*job, &mark.job)) mark.job = 0;
    } else if (std::optional<absl::string_view> instance =
                   EnvironmentValue(entry, kInstanceVariable);
               instance.has_value() && !instance_seen) {
      instance_seen = true;
      mark.instance = std::string(*instance);
    }
    if (job_seen && instance_seen) break;
  }
  return mark;
}

absl::Status Orphans::BecomeSubreaper() {
  if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot become the child subreaper: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

std::vector<pid_t> Orphans::ListChildren() {
  const pid_t self = getpid();
  const std::string text =
      ReadSmallFile(absl::StrCat("/proc/", self, "/task/", self, "/children"), size_t{1} << 22);
  std::vector<pid_t> children;
  for (absl::string_view word : absl::StrSplit(text, ' ', absl::SkipWhitespace())) {
    pid_t pid = 0;
    if (absl::SimpleAtoi(word, &pid) && pid > 0) children.push_back(pid);
  }
  return children;
}

void Orphans::Doom(JobId id, absl::Time now) { doomed_[id] = now + kDoomedFor; }

Orphans::Outcome Orphans::Handle(const std::vector<pid_t>& orphans, absl::Time now) {
  for (auto it = doomed_.begin(); it != doomed_.end();) {
    it = it->second <= now ? doomed_.erase(it) : std::next(it);
  }
  Outcome outcome;
  absl::flat_hash_map<pid_t, JobId> seen;
  for (const pid_t pid : orphans) {
    int status = 0;
    const pid_t reaped = waitpid(pid, &status, WNOHANG);
    if (reaped == pid || (reaped < 0 && errno == ECHILD)) continue;  // gone
    // Asked again while it says none: a process in the middle of an exec shows an empty
    // environment for a moment.
    auto known = known_.find(pid);
    const JobId job =
        known != known_.end() && known->second != 0 ? known->second : ReadJobMark(pid).job;
    if (job != 0 && doomed_.contains(job)) {
      // It is our unreaped child, so neither its pid nor the group it leads can have been
      // given to anyone else. A group it does not lead is its job's, killed at the job's end.
      if (getpgid(pid) == pid) kill(-pid, SIGKILL);
      // Counted only if it took: one that cannot be killed (it became another user's) is
      // not asked again and again.
      if (kill(pid, SIGKILL) == 0) ++outcome.killed;
    } else {
      ++outcome.alive;
    }
    seen.emplace(pid, job);
  }
  known_ = std::move(seen);
  return outcome;
}

}  // namespace distd::spawn
