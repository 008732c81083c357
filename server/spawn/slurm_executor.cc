// The Slurm executor (spawner.h): a job is an srun process, started by the local spawner, so
// everything the engine knows of a local job (its process group, its pipes, its exit code, the
// orphans it leaves) holds for srun, which stands for the job on the cluster:
//  - srun exits with the remote job's exit code, and prints its output as it comes;
//  - SIGTERM to srun's group cancels its job step and allocation (Slurm then signals the
//    remote processes, SIGKILL after the cluster's KillWait); a job still waiting for an
//    allocation is withdrawn;
//  - a build that is stopped with jobs running gets `scancel --name=distd-BUILD --user=UID` as
//    well (with the SLURM_CONF its jobs used), run on a thread of the executor's own, never
//    under the engine's lock, and killed after 10 s. It takes what SIGTERM cannot reach: the
//    job of an srun that was killed, or that has not connected yet. It runs moments after the
//    stop: a build closed and opened again under the same name at once may lose a job to it.
// The remote job's environment is the job's (--export=ALL) less the client's own SLURM_*
// variables, and its directory the job's (-D).
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
// glibc 2.36 (Debian 12) ships <sys/pidfd.h> without __BEGIN_DECLS: in C++ its functions
// would get C++ linkage and fail to link.
extern "C" {
#include <sys/pidfd.h>
}

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "server/spawn/spawner.h"

extern char** environ;

namespace distd::spawn {
namespace {

bool IsExecutable(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(path.c_str(), X_OK) == 0;
}

// What a job runs as: srun, standing for it on the cluster.
std::vector<std::string> SrunCommand(const SlurmOptions& options, absl::string_view build,
                                     const std::string& cwd, const std::vector<std::string>& argv) {
  std::vector<std::string> command = {options.srun,   absl::StrCat("--job-name=distd-", build),
                                      "-D",           cwd,
                                      "--export=ALL", "--ntasks=1",
                                      "--quiet"};
  if (!options.partition.empty())
    command.push_back(absl::StrCat("--partition=", options.partition));
  command.push_back("--");
  command.insert(command.end(), argv.begin(), argv.end());
  return command;
}

class SlurmExecutor final : public Spawner {
 public:
  SlurmExecutor(const SlurmOptions& options, std::unique_ptr<Spawner> local)
      : options_(options), local_(std::move(local)), thread_([this] { Run(); }) {}

  ~SlurmExecutor() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    wake_.notify_one();
    thread_.join();  // after the scancels already asked for
  }

  absl::StatusOr<std::unique_ptr<Process>> Start(const SpawnRequest& request,
                                                 ProcessEvents* events) override {
    const std::string& build = *request.build;
    const std::vector<std::string> argv = SrunCommand(options_, build, *request.cwd, *request.argv);
    // A client inside an allocation of its own (a CI agent run by Slurm) passes its SLURM_JOB_ID
    // and the rest: srun would take them for the job's and run it as a step of the client's
    // allocation. Only the configuration's place is kept.
    std::vector<std::string> env;
    std::optional<std::string> own_conf;  // the job's SLURM_CONF (the last, if several)
    if (request.env != nullptr) {
      for (const std::string& entry : *request.env) {
        if (absl::StartsWith(entry, "SLURM_CONF=")) {
          own_conf = entry.substr(11);
        } else if (absl::StartsWith(entry, "SLURM_")) {
          continue;
        }
        env.push_back(entry);
      }
    }
    if (own_conf.has_value()) {
      // The build's scancel must reach the cluster its jobs went to.
      std::lock_guard<std::mutex> lock(mu_);
      confs_[build] = *own_conf;
    } else if (!options_.slurm_conf.empty()) {
      env.push_back(absl::StrCat("SLURM_CONF=", options_.slurm_conf));
    }
    SpawnRequest srun = request;
    srun.argv = &argv;
    srun.env = &env;
    srun.tokens = nullptr;  // a jobserver's pipes do not reach the cluster
    // The local spawner reads what it needs from the request before Start returns.
    return local_->Start(srun, events);
  }

  void StopBuild(absl::string_view build) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      // Once per stop: the engine may stop a build again (an abort escalating a drain).
      if (std::any_of(queue_.begin(), queue_.end(),
                      [build](const auto& queued) { return queued.first == build; })) {
        return;
      }
      std::string conf = options_.slurm_conf;
      if (auto it = confs_.find(build); it != confs_.end()) {
        conf = it->second;
        confs_.erase(it);
      }
      queue_.emplace_back(std::string(build), std::move(conf));
    }
    wake_.notify_one();
  }

 private:
  void Run() {
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and every scancel asked for has run
      auto [build, conf] = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      Cancel(build, conf);
      lock.lock();
    }
  }

  // scancel, with stdin and stdout on /dev/null and its complaints in distd's log (stderr);
  // killed if it has not finished within kScancelTimeout (a cluster that does not answer
  // must not hold up distd's shutdown).
  void Cancel(const std::string& build, const std::string& conf) {
    std::vector<std::string> args = {options_.scancel, "--quiet",
                                     absl::StrCat("--name=distd-", build),
                                     absl::StrCat("--user=", getuid())};
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    std::vector<std::string> env_strings = {"PATH=/usr/local/bin:/usr/bin:/bin"};
    if (!conf.empty()) env_strings.push_back("SLURM_CONF=" + conf);
    std::vector<char*> envp;
    for (std::string& e : env_strings) envp.push_back(e.data());
    envp.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    if (posix_spawn_file_actions_init(&actions) != 0) return;
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addclosefrom_np(&actions, 3);
    // distd's threads block INT, TERM and HUP; scancel starts with none blocked.
    posix_spawnattr_t attr;
    if (posix_spawnattr_init(&attr) != 0) {
      posix_spawn_file_actions_destroy(&actions);
      return;
    }
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
    pid_t pid = 0;
    int rc = posix_spawn(&pid, options_.scancel.c_str(), &actions, &attr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) {
      fprintf(stderr, "distd: cannot run %s for build %s: %s\n", options_.scancel.c_str(),
              build.c_str(), strerror(rc));
      return;
    }
    const int pidfd = pidfd_open(pid, 0);
    pollfd ended = {.fd = pidfd, .events = POLLIN, .revents = 0};
    if (pidfd < 0 ||
        poll(&ended, 1, static_cast<int>(absl::ToInt64Milliseconds(kScancelTimeout))) != 1) {
      fprintf(stderr, "distd: %s for build %s did not finish within %s; killed\n",
              options_.scancel.c_str(), build.c_str(),
              absl::FormatDuration(kScancelTimeout).c_str());
      kill(pid, SIGKILL);
    }
    if (pidfd >= 0) close(pidfd);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }

  static constexpr absl::Duration kScancelTimeout = absl::Seconds(10);

  const SlurmOptions options_;
  std::unique_ptr<Spawner> local_;
  std::mutex mu_;
  std::condition_variable wake_;
  // Builds to scancel, with the configuration to use, under mu_.
  std::deque<std::pair<std::string, std::string>> queue_;
  // The SLURM_CONF of the builds whose jobs brought their own, under mu_.
  std::map<std::string, std::string, std::less<>> confs_;
  bool stopping_ = false;  // under mu_
  std::thread thread_;     // last: it starts in the constructor
};

}  // namespace

absl::StatusOr<std::string> FindProgram(absl::string_view name, absl::string_view path) {
  if (absl::StrContains(name, '/')) {
    std::string program(name);
    if (IsExecutable(program)) return program;
    return absl::NotFoundError(absl::StrCat(name, " is not an executable file"));
  }
  for (absl::string_view dir : absl::StrSplit(path, ':', absl::SkipEmpty())) {
    if (dir.front() != '/') continue;  // only absolute directories: distd's cwd is no one's
    std::string candidate = absl::StrCat(dir, "/", name);
    if (IsExecutable(candidate)) return candidate;
  }
  return absl::NotFoundError(absl::StrCat(name, " is not on PATH (", path, ")"));
}

std::unique_ptr<Spawner> NewSlurmExecutor(const SlurmOptions& options,
                                          std::unique_ptr<Spawner> local) {
  return std::make_unique<SlurmExecutor>(options, std::move(local));
}

}  // namespace distd::spawn
