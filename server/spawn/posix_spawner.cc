// The POSIX spawner: posix_spawn into a fresh process group, one epoll thread that drains
// every job's pipes and watches its pidfd, reaping by pid. Why each step is where it is:
//  - Start resolves the program itself (not posix_spawnp): the PATH searched is the job's,
//    relative names resolve against the job's directory, and "not found" (127) is told apart
//    from "cannot run" (126) before anything is created.
//  - Once the pidfd is readable the leader is an unreaped zombie, so its pgid is still the
//    job's: kill(-pgid, SIGKILL) hits only the job's leftovers, and only after that can the
//    pipes be drained to EOF (a background child would otherwise hold them forever). One that
//    escaped the group (setsid) is given orphan_drain, then its pipes are closed.
//  - With reap_orphans, a descendant that left the group comes to distd when its parent dies
//    (distd is the subreaper): a pass over distd's children kills those of signalled jobs
//    and reaps the rest (orphans.h). The pass lists children under the spawner's mutex and
//    leaves out the leaders registered there; Start registers a leader as it hands the job
//    over, before a pass may list again, and Reap unregisters it right before reaping it
//    (passes run on the I/O thread, as Reap does).
//  - waitpid by pid under the job's mutex marks it reaped; Process::Signal checks under the
//    same mutex, so a signal never reaches a recycled pgid.
//  - Output for a target is written as it is read, and what the target does not take at
//    once waits in `pending` while the pipes feeding that target are not read: the job then
//    blocks on its full pipe as it would on the target itself, and the daemon holds about a
//    chunk per target (plus, once the job has closed its end, what was left in the pipe).
//    Two streams with one file for target (`2>&1` into a pipe) share one queue, so that
//    neither is written into the middle of the other's chunk. The exit is reported once the
//    pending output is written (or given up): a client that has the result has all the
//    output, and the targets are closed by then.
// Events come from the I/O thread only, with no spawner lock held: the engine calls Start and
// Signal under its own lock, and a lock held across a callback would deadlock.

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
// glibc 2.36 (Debian 12) ships <sys/pidfd.h> without __BEGIN_DECLS: in C++ its functions
// would get C++ linkage and fail to link.
extern "C" {
#include <sys/pidfd.h>
}

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/cleanup/cleanup.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/current_umask.h"
#include "server/spawn/cgroups.h"
#include "server/spawn/jobserver.h"
#include "server/spawn/orphans.h"
#include "server/spawn/process.h"
#include "server/spawn/spawner.h"

namespace distd::spawn {
namespace {

constexpr absl::string_view kDefaultPath = "/usr/local/bin:/usr/bin:/bin";
constexpr int kMaxReadsPerWakeup = 16;  // per pipe; see Drain
constexpr int kMaxEvents = 64;
constexpr absl::Duration kMs = absl::Milliseconds(1);

void CloseFd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

// Closes the fds it points to (those still >= 0): keeps Start's failure paths leak-free.
struct FdCloser {
  std::vector<int*> fds;
  ~FdCloser() {
    for (int* fd : fds) CloseFd(*fd);
  }
};

std::string Join(absl::string_view dir, absl::string_view name) {
  if (!dir.empty() && dir.back() == '/') return absl::StrCat(dir, name);
  return absl::StrCat(dir, "/", name);
}

// Is `path` something execve would run? NotFound if it does not exist, PermissionDenied if
// it exists but cannot be executed (directory, no x bit).
absl::Status CheckExecutable(const std::string& path, absl::string_view name) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) {
      return absl::NotFoundError(absl::StrCat("program not found: ", name));
    }
    return absl::PermissionDeniedError(absl::StrCat(name, ": ", strerror(errno)));
  }
  if (S_ISDIR(st.st_mode))
    return absl::PermissionDeniedError(absl::StrCat(name, ": is a directory"));
  if (!S_ISREG(st.st_mode) || faccessat(AT_FDCWD, path.c_str(), X_OK, AT_EACCESS) != 0) {
    return absl::PermissionDeniedError(absl::StrCat(name, ": permission denied"));
  }
  return absl::OkStatus();
}

// Finds the program the way execvp would, but with the job's PATH and directory.
absl::StatusOr<std::string> ResolveProgram(absl::string_view name, const std::string& cwd,
                                           const std::vector<std::string>& env) {
  if (name.find('/') != absl::string_view::npos) {
    std::string path = name.front() == '/' ? std::string(name) : Join(cwd, name);
    if (absl::Status s = CheckExecutable(path, name); !s.ok()) return s;
    return path;
  }
  absl::string_view path_var = kDefaultPath;
  for (const std::string& entry : env) {  // the first PATH wins, as getenv() in the job
    if (absl::StartsWith(entry, "PATH=")) {
      path_var = absl::string_view(entry).substr(5);
      break;
    }
  }
  // Like execvp, a candidate that exists but cannot run is remembered while later entries
  // are tried: "permission denied" beats "not found" only if nothing runnable turns up.
  absl::Status first_denied;
  for (absl::string_view dir : absl::StrSplit(path_var, ':')) {
    std::string base = dir.empty() ? cwd : dir.front() == '/' ? std::string(dir) : Join(cwd, dir);
    std::string path = Join(base, name);
    absl::Status s = CheckExecutable(path, name);
    if (s.ok()) return path;
    if (!absl::IsNotFound(s) && first_denied.ok()) first_denied = s;
  }
  if (!first_denied.ok()) return first_denied;
  return absl::NotFoundError(absl::StrCat("program not found: ", name));
}

absl::Status SpawnError(int err, absl::string_view program) {
  std::string message = absl::StrCat(program, ": ", strerror(err));
  if (err == ENOENT) return absl::NotFoundError(message);  // e.g. a missing #! interpreter
  if (err == EACCES || err == EPERM) return absl::PermissionDeniedError(message);
  return absl::FailedPreconditionError(message);
}

// Shared by the Process handle and the I/O thread, so that either may go first.
struct Job {
  JobId id = 0;
  uint64_t key = 0;  // the spawner's serial for it
  pid_t pid = 0;
  ProcessEvents* events = nullptr;
  absl::Mutex mu;
  bool reaped ABSL_GUARDED_BY(mu) = false;
  bool signalled ABSL_GUARDED_BY(mu) = false;  // by Process::Signal: its orphans are killed
  // The rest belongs to the I/O thread once Start has handed the job over.
  int fds[2] = {-1, -1};  // read ends of stdout and stderr
  int pidfd = -1;
  bool leader_exited = false;
  bool paused = false;  // by the engine (Process::SetOutputPaused)
  bool doomed = false;  // its orphans are killed (Orphans::Doom)
  std::string cgroup;   // its own cgroup's directory, or empty
  absl::Time drain_deadline;
  std::shared_ptr<const OutputTargets> targets;  // held until the exit is reported
  // Output on its way to a target: one queue per stream, or, when both streams have the same
  // file (`shared`), queue 0 for both.
  struct Forward {
    int fd = -1;          // the target; -1 when there is none, or no longer
    std::string pending;  // read but not yet taken by the target, from `written` on
    size_t written = 0;
    bool watched = false;  // fd is in the epoll set, waiting for EPOLLOUT
  };
  Forward forward[2];
  bool shared = false;
};

int QueueOf(const Job& job, int stream) { return job.shared ? 0 : stream; }

// The umask and soft limits this process gives its children, read once: distd never changes
// them while it runs (the listener's umask while it binds is set and put back at once).
struct OwnSettings {
  mode_t umask = 022;
  std::map<int, rlimit> limits;
};

OwnSettings ReadOwnSettings() {
  OwnSettings own;
  own.umask = CurrentUmask();
  for (int resource : {RLIMIT_NOFILE, RLIMIT_CORE, RLIMIT_STACK, RLIMIT_CPU, RLIMIT_AS}) {
    rlimit limit;
    if (getrlimit(static_cast<__rlimit_resource>(resource), &limit) == 0)
      own.limits[resource] = limit;
  }
  return own;
}

std::string HelperNextToUs() {
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) return "distd-exec";
  std::string path(self, static_cast<size_t>(n));
  return path.substr(0, path.rfind('/') + 1) + "distd-exec";
}

// The flags for distd-exec that give a job `wanted` where it differs from `own`; none when
// the job would get the same from posix_spawn alone. A soft limit above the hard one counts
// as the hard one, as distd-exec lowers it to that.
std::vector<std::string> HelperFlags(const ProcessSettings& wanted, const OwnSettings& own) {
  std::vector<std::string> flags;
  if (wanted.umask.has_value() && *wanted.umask != own.umask) {
    flags.push_back("-u");
    flags.push_back(absl::StrFormat("%03o", *wanted.umask));
  }
  for (const ProcessSettings::Limit& limit : wanted.limits) {
    auto it = own.limits.find(limit.resource);
    if (it == own.limits.end()) continue;
    const rlimit& mine = it->second;
    rlim_t soft = static_cast<rlim_t>(limit.soft);
    if (mine.rlim_max != RLIM_INFINITY && (soft == RLIM_INFINITY || soft > mine.rlim_max)) {
      soft = mine.rlim_max;
    }
    if (soft == mine.rlim_cur) continue;
    flags.push_back("-l");
    flags.push_back(soft == RLIM_INFINITY ? absl::StrCat(limit.resource, ":inf")
                                          : absl::StrCat(limit.resource, ":", soft));
  }
  return flags;
}

class PosixSpawner;

class PosixProcess final : public Process {
 public:
  PosixProcess(PosixSpawner* spawner, std::shared_ptr<Job> job)
      : spawner_(spawner), job_(std::move(job)) {}
  int pid() const override { return job_->pid; }
  void Signal(int sig) override {
    absl::MutexLock lock(&job_->mu);
    if (job_->reaped) return;
    job_->signalled = true;
    kill(-job_->pid, sig);
  }
  void SetOutputPaused(bool paused) override;
  void StopForwarding() override;

 private:
  PosixSpawner* const spawner_;  // outlives every process handle
  std::shared_ptr<Job> job_;
};

class PosixSpawner final : public Spawner {
 public:
  PosixSpawner(const PosixSpawnerOptions& options, int epoll_fd, int wake_fd)
      : options_(options),
        own_(ReadOwnSettings()),
        helper_(options.exec_helper.empty() ? HelperNextToUs() : options.exec_helper),
        instance_marker_(
            options.instance.empty() ? "" : absl::StrCat(kInstanceVariable, "=", options.instance)),
        epoll_fd_(epoll_fd),
        wake_fd_(wake_fd),
        thread_([this] { Run(); }) {}

  ~PosixSpawner() override {
    // No callback starts after this store; one already running ends before join returns.
    stopping_.store(true);
    Wake();
    thread_.join();
    close(epoll_fd_);
    close(wake_fd_);
  }

  absl::StatusOr<std::unique_ptr<Process>> Start(const SpawnRequest& request,
                                                 ProcessEvents* events) override;

  enum class Request { kPause, kResume, kStopForwarding };

  // Applied by the I/O thread, which owns the epoll set and the fds.
  void Ask(uint64_t key, Request request) {
    {
      absl::MutexLock lock(&mu_);
      requests_.emplace_back(key, request);
    }
    Wake();
  }

 private:
  void Wake() {
    uint64_t one = 1;
    // Fails only when the counter is full, and then a wake-up is pending anyway.
    [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof(one));
  }

  void Run() {
    // A write to a target whose reader is gone raises SIGPIPE in this thread. Blocked, it
    // cannot kill the process (if SIGPIPE is not ignored anyway), and the write fails with
    // EPIPE. (The jobs start with an empty mask and no pending signals.)
    sigset_t sigpipe;
    sigemptyset(&sigpipe);
    sigaddset(&sigpipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &sigpipe, nullptr);
    buffer_.resize(std::max<size_t>(options_.read_chunk, 1));
    epoll_event ready[kMaxEvents];
    while (true) {
      if (stopping_.load()) break;
      std::vector<std::pair<uint64_t, std::shared_ptr<Job>>> fresh;
      std::vector<std::pair<uint64_t, Request>> requests;
      {
        absl::MutexLock lock(&mu_);
        fresh.swap(new_jobs_);
        requests.swap(requests_);
      }
      for (auto& [key, job] : fresh) Adopt(key, std::move(job));
      for (auto [key, request] : requests) Apply(key, request);
      int timeout_ms = -1;
      std::optional<absl::Time> wake_at = NextPass();
      if (!draining_.empty()) {
        wake_at = std::min(wake_at.value_or(absl::InfiniteFuture()), draining_.begin()->first);
      }
      if (wake_at.has_value()) {
        absl::Duration left =
            std::clamp(*wake_at - absl::Now(), absl::ZeroDuration(), absl::Hours(1));
        timeout_ms = static_cast<int>(absl::ToInt64Milliseconds(absl::Ceil(left, kMs)));
      }
      int n = epoll_wait(epoll_fd_, ready, kMaxEvents, timeout_ms);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) break;  // only a bug gets here (EBADF, EFAULT); Shutdown still reaps
      for (int i = 0; i < n; ++i) {
        const uint64_t data = ready[i].data.u64;
        if (data == 0) {
          uint64_t count;
          [[maybe_unused]] ssize_t r = read(wake_fd_, &count, sizeof(count));
          continue;
        }
        const uint64_t key = data >> 3;
        auto it = jobs_.find(key);
        if (it == jobs_.end()) continue;  // reaped earlier in this batch
        Job& job = *it->second;
        const int kind = static_cast<int>(data & 7);
        if (kind < 2 && job.fds[kind] >= 0) Drain(job, kind);
        if (kind >= 3) Flush(job, kind - 3);
        if (kind == 2 && !job.leader_exited) {
          OnLeaderExit(key, job);
          // Usually nothing else holds the pipes by now: take their rest and their EOF here
          // rather than in another round of epoll_wait. Whatever still holds them (a
          // descendant the group kill has not ended yet) is waited for as before.
          for (int stream : {0, 1}) {
            if (job.fds[stream] >= 0) Drain(job, stream);
          }
        }
        if (Finished(job)) Reap(key, true);
      }
      // A descendant that escaped the group kill holds these pipes: take what is there
      // and stop waiting for an EOF that may never come.
      while (!draining_.empty() && draining_.begin()->first <= absl::Now()) {
        const uint64_t key = draining_.begin()->second;
        draining_.erase(draining_.begin());
        Job& job = *jobs_[key];
        for (int stream : {0, 1}) {
          if (job.fds[stream] >= 0) Drain(job, stream, /*whatever_is_pending=*/true);
          CloseStream(job, stream);
        }
        if (Finished(job)) Reap(key, true);
      }
      if (std::optional<absl::Time> pass = NextPass(); pass && *pass <= absl::Now()) Pass();
    }
    Shutdown();
  }

  // When the next pass over the orphans is due: soon after a signalled job's end (its
  // orphans arrive as their parents die), else once a second while jobs end or orphans live.
  std::optional<absl::Time> NextPass() const {
    if (!options_.reap_orphans) return std::nullopt;
    std::optional<absl::Time> next;
    if (!passes_.empty()) next = *passes_.begin();
    if (job_ended_ || orphans_.Watching() || !cgroups_left_.empty()) {
      next = std::min(next.value_or(absl::InfiniteFuture()), last_pass_ + absl::Seconds(1));
    }
    return next;
  }

  // Returns how many orphans were killed.
  int Pass() {
    const absl::Time now = absl::Now();
    std::vector<pid_t> orphans;
    {
      absl::MutexLock lock(&mu_);
      if (spawning_ > 0) {  // a leader not yet registered would pass for an orphan
        passes_.erase(passes_.begin(), passes_.upper_bound(now));
        passes_.insert(now + absl::Milliseconds(2));  // the retry, and no tick due before it
        last_pass_ = now;
        return 0;
      }
      for (pid_t pid : Orphans::ListChildren()) {
        if (!leaders_.contains(pid)) orphans.push_back(pid);
      }
    }
    const Orphans::Outcome outcome = orphans_.Handle(orphans, now);
    for (auto it = cgroups_left_.begin(); it != cgroups_left_.end();) {
      it = RemoveCgroup(it->first) ? cgroups_left_.erase(it) : std::next(it);
    }
    last_pass_ = now;
    job_ended_ = false;
    passes_.erase(passes_.begin(), passes_.upper_bound(now));
    if (outcome.killed > 0) passes_.insert(now + absl::Milliseconds(20));  // to reap them
    return outcome.killed;
  }

  // A job's leader has exited, or the job is reaped: if distd signalled it, what it left
  // behind outside its group is killed from now on.
  void NoteEnd(Job& job, bool signalled) {
    if (!options_.reap_orphans) return;
    job_ended_ = true;
    if (!signalled || job.doomed) return;
    job.doomed = true;
    // Everything in its cgroup, whatever group, session or environment it moved to.
    if (!job.cgroup.empty()) KillCgroup(job.cgroup);
    const absl::Time now = absl::Now();
    orphans_.Doom(job.id, now);
    for (absl::Duration after : {absl::ZeroDuration(), absl::Milliseconds(20),
                                 absl::Milliseconds(100), absl::Milliseconds(500)}) {
      passes_.insert(now + after);
    }
  }

  void Adopt(uint64_t key, std::shared_ptr<Job> job) {
    Job& j = *jobs_.emplace(key, std::move(job)).first->second;
    bool ok = true;
    const int fds[3] = {j.fds[0], j.fds[1], j.pidfd};
    for (uint64_t kind = 0; kind < 3; ++kind) {
      epoll_event ev = {.events = EPOLLIN, .data = {.u64 = key << 3 | kind}};
      ok = ok && epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fds[kind], &ev) == 0;
    }
    if (ok) return;
    // Unwatched, it would never be reported: end it now, so that it still gets an outcome.
    kill(-j.pid, SIGKILL);
    if (!j.cgroup.empty()) KillCgroup(j.cgroup);
    j.leader_exited = true;
    Reap(key, true);
  }

  void Apply(uint64_t key, Request request) {
    auto it = jobs_.find(key);
    if (it == jobs_.end()) return;
    Job& job = *it->second;
    if (request == Request::kStopForwarding) {
      for (int queue : {0, 1}) StopForward(job, queue);
      job.targets.reset();  // a reader of them need not wait for the job's end
      if (Finished(job)) Reap(key, true);
      return;
    }
    if (job.leader_exited) return;  // drained regardless from then on
    job.paused = request == Request::kPause;
    for (int stream : {0, 1}) UpdateInterest(job, stream);
  }

  // A pipe is read unless the engine paused the job or the stream's target has not taken
  // the last chunk yet: the job blocks once the pipe is full, as it would at a slow terminal,
  // and its output waits in the pipe instead of in our memory. Once the leader has exited
  // the engine's pause no longer counts (the rest is at most a pipe's capacity), and events
  // for an fd that is not read (EPOLLHUP is reported whatever the interest) are drained too.
  void UpdateInterest(Job& job, int stream) {
    if (job.fds[stream] < 0) return;
    const bool read =
        (!job.paused || job.leader_exited) && job.forward[QueueOf(job, stream)].pending.empty();
    epoll_event ev = {.events = read ? static_cast<uint32_t>(EPOLLIN) : 0u,
                      .data = {.u64 = job.key << 3 | static_cast<uint64_t>(stream)}};
    epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, job.fds[stream], &ev);
  }

  // `whatever_is_pending`: read on even while the target has not taken the last chunk (the
  // pipe is about to be closed, and what is in it would be lost to the record too).
  void Drain(Job& job, int stream, bool whatever_is_pending = false) {
    const OutputStream which = stream == 0 ? OutputStream::kStdout : OutputStream::kStderr;
    // Bounded: one job writing gigabytes must not starve the others. Level-triggered epoll
    // reports whatever is left.
    for (int i = 0; i < kMaxReadsPerWakeup; ++i) {
      ssize_t n = read(job.fds[stream], buffer_.data(), buffer_.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) return;
      if (n <= 0) return CloseStream(job, stream);  // EOF, or an error no retry fixes
      const absl::string_view chunk(buffer_.data(), n);
      Forward(job, stream, chunk);
      if (!stopping_.load()) job.events->OnProcessOutput(job.id, which, chunk);
      if (job.fds[stream] < 0) return;  // its target failed
      const int queue = QueueOf(job, stream);
      if (!job.forward[queue].pending.empty() && !whatever_is_pending) {
        return UpdateQueue(job, queue);
      }
    }
  }

  // The interest of the pipes that feed `queue`.
  void UpdateQueue(Job& job, int queue) {
    for (int stream : {0, 1}) {
      if (QueueOf(job, stream) == queue) UpdateInterest(job, stream);
    }
  }

  // Writes what `data` the target takes now; 0, or the errno that stopped it.
  static int WriteNow(int fd, absl::string_view& data) {
    while (!data.empty()) {
      ssize_t n = write(fd, data.data(), data.size());
      if (n > 0) {
        data.remove_prefix(static_cast<size_t>(n));
      } else if (n < 0 && errno == EAGAIN) {
        return 0;
      } else if (n == 0 || errno != EINTR) {
        return n == 0 ? EIO : errno;
      }
    }
    return 0;
  }

  // Sends a chunk just read to the stream's target; what it does not take waits for Flush.
  void Forward(Job& job, int stream, absl::string_view data) {
    const int queue = QueueOf(job, stream);
    Job::Forward& f = job.forward[queue];
    if (f.fd < 0) return;
    if (!f.pending.empty()) {  // the other stream of a shared file, or a drain at the end
      f.pending.append(data.data(), data.size());
      return;
    }
    if (int err = WriteNow(f.fd, data); err != 0) return TargetFailed(job, queue);
    if (data.empty()) return;
    f.pending.assign(data.data(), data.size());
    f.written = 0;
    epoll_event ev = {.events = EPOLLOUT,
                      .data = {.u64 = job.key << 3 | static_cast<uint64_t>(3 + queue)}};
    // A file that cannot be polled (EPERM) but made us wait could never be written again.
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, f.fd, &ev) != 0) return TargetFailed(job, queue);
    f.watched = true;
  }

  // The target of `queue` can take more.
  void Flush(Job& job, int queue) {
    Job::Forward& f = job.forward[queue];
    if (f.fd < 0 || f.pending.empty()) return;
    absl::string_view rest = absl::string_view(f.pending).substr(f.written);
    if (int err = WriteNow(f.fd, rest); err != 0) return TargetFailed(job, queue);
    f.written = f.pending.size() - rest.size();
    if (!rest.empty()) return;
    f.pending.clear();
    f.written = 0;
    epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, f.fd, nullptr);
    f.watched = false;
    UpdateQueue(job, queue);
  }

  void StopForward(Job& job, int queue) {
    Job::Forward& f = job.forward[queue];
    if (f.watched) epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, f.fd, nullptr);
    f = Job::Forward();
    UpdateQueue(job, queue);
  }

  // Its reader is gone (EPIPE), or it failed otherwise: the job finds the pipes that fed it
  // closed, as it would at a broken pipe (SIGPIPE), and what it still writes there is lost
  // as it would be.
  void TargetFailed(Job& job, int queue) {
    StopForward(job, queue);
    for (int stream : {0, 1}) {
      if (QueueOf(job, stream) == queue) CloseStream(job, stream);
    }
  }

  bool Finished(const Job& job) const {
    return job.leader_exited && job.fds[0] < 0 && job.fds[1] < 0 &&
           job.forward[0].pending.empty() && job.forward[1].pending.empty();
  }

  void CloseStream(Job& job, int stream) {
    if (job.fds[stream] < 0) return;
    // Explicitly: a concurrent posix_spawn may briefly hold a copy of the fd, and epoll
    // forgets an fd only when its last copy closes.
    epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, job.fds[stream], nullptr);
    CloseFd(job.fds[stream]);
  }

  void OnLeaderExit(uint64_t key, Job& job) {
    job.leader_exited = true;
    bool signalled;
    {
      absl::MutexLock lock(&job.mu);
      signalled = job.signalled;
    }
    NoteEnd(job, signalled);
    // Drain what is left even if paused; unpaused, the interest is already what it should be.
    if (job.paused) {
      for (int stream : {0, 1}) UpdateInterest(job, stream);
    }
    kill(-job.pid, SIGKILL);  // the leader is an unreaped zombie: the pgid is still the job's
    epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, job.pidfd, nullptr);  // it would stay readable
    job.drain_deadline = absl::Now() + options_.orphan_drain;
    draining_.emplace(job.drain_deadline, key);
  }

  void Reap(uint64_t key, bool deliver) {
    std::shared_ptr<Job> job = std::move(jobs_.extract(key).mapped());
    CloseStream(*job, 0);
    CloseStream(*job, 1);
    if (job->leader_exited) draining_.erase({job->drain_deadline, key});
    int status = 0;
    pid_t reaped;
    bool signalled;
    {
      // Before the pid is free for another leader to register; a pass, which would take it
      // for an orphan now, runs on this thread only.
      absl::MutexLock lock(&mu_);
      leaders_.erase(job->pid);
    }
    {
      absl::MutexLock lock(&job->mu);  // Signal checks `reaped` under it: no recycled pgid
      do {
        reaped = waitpid(job->pid, &status, 0);
      } while (reaped < 0 && errno == EINTR);
      job->reaped = true;
      signalled = job->signalled;
    }
    NoteEnd(*job, signalled);
    // Still busy if it was killed a moment ago, or if what it left runs on: a later pass.
    if (!job->cgroup.empty() && !RemoveCgroup(job->cgroup)) {
      cgroups_left_.emplace(job->cgroup, job->doomed);
    }
    if (!job->leader_exited) epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, job->pidfd, nullptr);
    CloseFd(job->pidfd);
    for (int queue : {0, 1}) StopForward(*job, queue);
    job->targets.reset();  // before the exit is told: nobody waits on our copy of the fds
    ExitStatus exit;
    if (reaped != job->pid) {
      exit.exit_code = -1;  // reaped behind our back (SIGCHLD ignored?): status lost
    } else if (WIFSIGNALED(status)) {
      exit.signal = WTERMSIG(status);
    } else {
      exit.exit_code = WEXITSTATUS(status);
    }
    if (deliver && !stopping_.load()) job->events->OnProcessExit(job->id, exit);
  }

  void Shutdown() {
    {
      absl::MutexLock lock(&mu_);
      for (auto& [key, job] : new_jobs_) jobs_.emplace(key, std::move(job));
      new_jobs_.clear();
    }
    // Kill all first so that they die in parallel; none is reaped, so each pgid is theirs.
    for (const auto& [key, job] : jobs_) {
      kill(-job->pid, SIGKILL);
      NoteEnd(*job, /*signalled=*/true);
    }
    while (!jobs_.empty()) Reap(jobs_.begin()->first, false);
    // What they left outside their groups, as it comes to distd (bounded: a process in the
    // kernel's uninterruptible sleep may take its time to die).
    if (!options_.reap_orphans) return;
    for (int round = 0; round < 50; ++round) {
      if (Pass() == 0 && round > 0 && !KilledCgroupsLeft()) break;
      absl::SleepFor(absl::Milliseconds(20));
    }
  }

  const PosixSpawnerOptions options_;
  const OwnSettings own_;
  const std::string helper_;           // distd-exec
  const std::string instance_marker_;  // DISTD_INSTANCE=..., or empty
  const int epoll_fd_;
  const int wake_fd_;
  std::atomic<bool> stopping_{false};

  absl::Mutex mu_;
  uint64_t next_key_ ABSL_GUARDED_BY(mu_) = 1;
  // Started but not yet adopted: only the I/O thread touches epoll and the maps below.
  std::vector<std::pair<uint64_t, std::shared_ptr<Job>>> new_jobs_ ABSL_GUARDED_BY(mu_);
  std::vector<std::pair<uint64_t, Request>> requests_ ABSL_GUARDED_BY(mu_);
  int spawning_ ABSL_GUARDED_BY(mu_) = 0;  // Starts between posix_spawn and registering
  absl::flat_hash_set<pid_t> leaders_ ABSL_GUARDED_BY(mu_);  // spawned and not yet reaped

  // Keyed by a serial that is never reused (not by JobId), so that a stale epoll event of
  // a reaped job finds nothing. Epoll data is key << 3 | 0 stdout, 1 stderr, 2 pidfd,
  // 3 the target of queue 0, 4 that of queue 1.
  std::map<uint64_t, std::shared_ptr<Job>> jobs_;
  std::set<std::pair<absl::Time, uint64_t>> draining_;  // leader gone: until when to wait
  Orphans orphans_;
  std::set<absl::Time> passes_;  // when passes over the orphans are due
  absl::Time last_pass_;
  bool job_ended_ = false;  // since the last pass
  // Job cgroups not removed yet, and whether they were killed (else what is left in one
  // runs on by right, and it goes when that ends).
  std::map<std::string, bool> cgroups_left_;
  bool KilledCgroupsLeft() const {
    return std::any_of(cgroups_left_.begin(), cgroups_left_.end(),
                       [](const auto& entry) { return entry.second; });
  }
  std::vector<char> buffer_;
  std::thread thread_;  // last: it starts in the constructor and uses everything above
};

absl::StatusOr<std::unique_ptr<Process>> PosixSpawner::Start(const SpawnRequest& request,
                                                             ProcessEvents* events) {
  static const std::vector<std::string> kNoEnv;
  const std::vector<std::string>& env = request.env != nullptr ? *request.env : kNoEnv;
  const std::string& cwd = *request.cwd;
  const std::string& program = request.argv->front();
  auto cwd_ok = [&cwd] {
    struct stat st;
    return stat(cwd.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
  };
  // The directory first: with a missing directory, "program not found" would mislead.
  if (!cwd_ok()) return absl::FailedPreconditionError(absl::StrCat("no such directory: ", cwd));
  absl::StatusOr<std::string> path = ResolveProgram(program, cwd, env);
  if (!path.ok()) return path.status();

  int out[2] = {-1, -1}, err[2] = {-1, -1};
  FdCloser closer{{&out[0], &out[1], &err[0], &err[1]}};
  // O_CLOEXEC: a pipe end inherited by a job that another thread spawns at the same time
  // would hold this job's EOF hostage for as long as that job lives.
  if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
    return absl::ResourceExhaustedError(absl::StrCat("pipe2: ", strerror(errno)));
  }
  // Best effort: beyond pipe-max-size the pipe keeps its default size. Each running job holds
  // up to 1 MiB of pipe pages: an unprivileged user past pipe-user-pages-soft (64 MiB by
  // default, so more than ~60 running jobs) gets only small pipes from then on, its jobs'
  // own pipes included.
  fcntl(out[0], F_SETPIPE_SZ, static_cast<int>(options_.read_chunk));
  // A job whose client's umask or limits are not ours starts as distd-exec, which sets them
  // and execs the program resolved here.
  std::vector<std::string> helper_flags;
  if (request.settings != nullptr) helper_flags = HelperFlags(*request.settings, own_);
  // A cgroup of its own, which distd-exec joins before the program runs: no process of the
  // job ever starts outside it. Removed again if the job does not start.
  std::string cgroup;
  if (options_.reap_orphans && !options_.cgroup_dir.empty()) {
    cgroup = JobCgroup(options_.cgroup_dir, request.id);
    if (mkdir(cgroup.c_str(), 0755) != 0 && errno != EEXIST) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot make the job's cgroup ", cgroup, ": ", strerror(errno)));
    }
    // First: before a limit the job asked for (a low RLIMIT_NOFILE) could stop the join.
    helper_flags.insert(helper_flags.begin(), {"-c", cgroup + "/cgroup.procs"});
  }
  absl::Cleanup remove_cgroup = [&cgroup] {
    if (!cgroup.empty()) RemoveCgroup(cgroup);
  };
  const std::string* exec_path = &*path;
  std::vector<char*> argv, envp;
  if (!helper_flags.empty()) {
    if (access(helper_.c_str(), X_OK) != 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "cannot give the job its client's umask and limits, or its cgroup: ", helper_, ": ",
          strerror(errno)));
    }
    exec_path = &helper_;
    argv.push_back(const_cast<char*>("distd-exec"));
    for (std::string& flag : helper_flags) argv.push_back(flag.data());
    argv.push_back(const_cast<char*>("--"));
    argv.push_back(const_cast<char*>(path->c_str()));
  }
  for (const std::string& arg : *request.argv) argv.push_back(const_cast<char*>(arg.c_str()));
  // Ours alone: one the client sent goes (a shell takes the last of two, getenv the first).
  std::string job_marker;
  if (options_.reap_orphans) {
    job_marker = absl::StrCat(kJobIdVariable, "=", request.id);
    envp.push_back(job_marker.data());
    if (!instance_marker_.empty()) envp.push_back(const_cast<char*>(instance_marker_.c_str()));
  }
  // A jobserver the client's environment names is not the job's; the job's own, if it has
  // one, takes its place.
  JobserverChanges jobserver = ChangesForJobserver(
      env, request.tokens != nullptr ? request.tokens->Auth() : "", request.jobserver_slots);
  size_t next_drop = 0;
  for (size_t i = 0; i < env.size(); ++i) {
    const std::string& var = env[i];
    if (next_drop < jobserver.drop.size() && jobserver.drop[next_drop] == i) {
      ++next_drop;
      continue;
    }
    if (options_.reap_orphans && (EnvironmentValue(var, kJobIdVariable).has_value() ||
                                  EnvironmentValue(var, kInstanceVariable).has_value())) {
      continue;
    }
    envp.push_back(const_cast<char*>(var.c_str()));
  }
  for (std::string& var : jobserver.add) envp.push_back(var.data());
  argv.push_back(nullptr);
  envp.push_back(nullptr);

  // Every call is checked: each can fail for want of memory, and a job started without one of
  // them (its own process group, stdin from /dev/null, its directory) must not start at all.
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  if (int init = posix_spawn_file_actions_init(&actions); init != 0) {
    return absl::ResourceExhaustedError(
        absl::StrCat("posix_spawn_file_actions_init: ", strerror(init)));
  }
  if (int init = posix_spawnattr_init(&attr); init != 0) {
    posix_spawn_file_actions_destroy(&actions);
    return absl::ResourceExhaustedError(absl::StrCat("posix_spawnattr_init: ", strerror(init)));
  }
  int rc = 0;
  const char* step = "";
  auto check = [&rc, &step](const char* name, int result) {
    if (rc == 0 && result != 0) {
      rc = result;
      step = name;
    }
  };
  check("adddup2", posix_spawn_file_actions_adddup2(&actions, out[1], 1));
  check("adddup2", posix_spawn_file_actions_adddup2(&actions, err[1], 2));
  check("addopen", posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0));
  check("addchdir", posix_spawn_file_actions_addchdir_np(&actions, cwd.c_str()));
  // What the daemon holds without CLOEXEC (inherited from its parent, opened by a library)
  // is none of the job's business: it sees exactly 0, 1 and 2, and its jobserver's pipe.
  int first_closed = 3;
  if (request.tokens != nullptr && request.tokens->job_read_fd() >= 0) {
    check("adddup2", posix_spawn_file_actions_adddup2(&actions, request.tokens->job_read_fd(),
                                                      kJobserverReadFd));
    check("adddup2", posix_spawn_file_actions_adddup2(&actions, request.tokens->job_write_fd(),
                                                      kJobserverWriteFd));
    first_closed = kJobserverWriteFd + 1;
  }
  check("addclosefrom", posix_spawn_file_actions_addclosefrom_np(&actions, first_closed));
  // Its own process group, so that the whole job and nothing else can be signalled; and a
  // clean signal state, since the daemon blocks INT/TERM/HUP and the mask is inherited.
  sigset_t mask, defaults;
  sigemptyset(&mask);
  sigfillset(&defaults);
  check("setsigmask", posix_spawnattr_setsigmask(&attr, &mask));
  check("setsigdefault", posix_spawnattr_setsigdefault(&attr, &defaults));
  check("setpgroup", posix_spawnattr_setpgroup(&attr, 0));
  check("setflags", posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                                        POSIX_SPAWN_SETSIGDEF));
  const bool prepared = rc == 0;
  pid_t pid = 0;
  // Until the leader is registered (or known not to run), no pass over the orphans may list
  // distd's children: it would take the leader for one.
  {
    absl::MutexLock lock(&mu_);
    ++spawning_;
  }
  auto not_started = [this] {
    absl::MutexLock lock(&mu_);
    --spawning_;
  };
  if (prepared) {
    rc = posix_spawn(&pid, exec_path->c_str(), &actions, &attr, argv.data(), envp.data());
  }
  if (!prepared || rc != 0) not_started();
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (!prepared) {
    return absl::ResourceExhaustedError(absl::StrCat("posix_spawn ", step, ": ", strerror(rc)));
  }
  CloseFd(out[1]);
  CloseFd(err[1]);
  if (rc != 0) {
    // The directory may have gone since we looked: say so rather than blame the program.
    if (rc == ENOENT && !cwd_ok()) {
      return absl::FailedPreconditionError(absl::StrCat("no such directory: ", cwd));
    }
    return SpawnError(rc, program);
  }
  // Race-free: nobody else reaps our children, so `pid` cannot have been recycled yet.
  int pidfd = pidfd_open(pid, 0);
  if (pidfd < 0) {
    // Without a pidfd its end would go unnoticed: take it down and reap it right here.
    absl::Status status = absl::InternalError(absl::StrCat("pidfd_open: ", strerror(errno)));
    kill(-pid, SIGKILL);
    if (!cgroup.empty()) KillCgroup(cgroup);
    while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    not_started();
    return status;
  }
  auto job = std::make_shared<Job>();
  job->id = request.id;
  job->pid = pid;
  job->cgroup = std::move(cgroup);  // the I/O thread's from now on
  std::move(remove_cgroup).Cancel();
  job->events = events;
  job->fds[0] = std::exchange(out[0], -1);
  job->fds[1] = std::exchange(err[0], -1);
  job->pidfd = pidfd;
  for (int fd : job->fds) fcntl(fd, F_SETFL, O_NONBLOCK);
  if (request.targets != nullptr) {
    job->targets = request.targets;
    job->shared = job->targets->shared();
    job->forward[0].fd = job->targets->fd(OutputStream::kStdout);
    if (!job->shared) job->forward[1].fd = job->targets->fd(OutputStream::kStderr);
  }
  {
    absl::MutexLock lock(&mu_);
    job->key = next_key_++;
    new_jobs_.emplace_back(job->key, job);
    // With the hand-over: the I/O thread may reap it as soon as the lock is released.
    leaders_.insert(pid);
    --spawning_;
  }
  Wake();  // never an event from here: the I/O thread delivers them all
  return std::make_unique<PosixProcess>(this, std::move(job));
}

void PosixProcess::SetOutputPaused(bool paused) {
  spawner_->Ask(job_->key, paused ? PosixSpawner::Request::kPause : PosixSpawner::Request::kResume);
}

void PosixProcess::StopForwarding() {
  spawner_->Ask(job_->key, PosixSpawner::Request::kStopForwarding);
}

}  // namespace

std::unique_ptr<Spawner> NewPosixSpawner(const PosixSpawnerOptions& options) {
  int epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  int wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  epoll_event ev = {.events = EPOLLIN, .data = {.u64 = 0}};  // job keys start at 1
  if (epoll_fd < 0 || wake_fd < 0 || epoll_ctl(epoll_fd, EPOLL_CTL_ADD, wake_fd, &ev) != 0) {
    // Only at start-up, out of fds or memory: a daemon that cannot watch its jobs must not
    // pretend to run them.
    perror("distd: cannot create the spawner's epoll set");
    std::abort();
  }
  PosixSpawnerOptions checked = options;
  if (!checked.cgroup_dir.empty()) {
    const std::string helper = checked.exec_helper.empty() ? HelperNextToUs() : checked.exec_helper;
    if (access(helper.c_str(), X_OK) != 0) {
      // Every job would fail: without cgroups, only those that need the helper do.
      fprintf(stderr, "distd: jobs run without cgroups of their own: %s: %s\n", helper.c_str(),
              strerror(errno));
      checked.cgroup_dir.clear();
    }
  }
  if (options.reap_orphans) {
    if (absl::Status s = Orphans::BecomeSubreaper(); !s.ok()) {
      // Still a spawner: escapees then go to init, out of reach, as without the option.
      fprintf(stderr, "distd: %s\n", std::string(s.message()).c_str());
    }
  }
  return std::make_unique<PosixSpawner>(checked, epoll_fd, wake_fd);
}

}  // namespace distd::spawn
