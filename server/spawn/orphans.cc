#include "server/spawn/orphans.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

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

// The job an orphan came from, by the first DISTD_JOB_ID in the environment it was started
// with (as getenv would find it); 0 if none. Only an unreaped child's pid is asked about,
// so the pid is still that process's.
JobId JobOf(pid_t pid) {
  const std::string environ =
      ReadSmallFile(absl::StrCat("/proc/", pid, "/environ"), size_t{1} << 20);
  for (absl::string_view entry : absl::StrSplit(environ, '\0')) {
    if (!absl::ConsumePrefix(&entry, kJobIdVariable) || !absl::ConsumePrefix(&entry, "=")) {
      continue;
    }
    JobId id = 0;
    return absl::SimpleAtoi(entry, &id) ? id : 0;
  }
  return 0;
}

}  // namespace

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
    const JobId job = known != known_.end() && known->second != 0 ? known->second : JobOf(pid);
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
