#include "tests/engine/fake_spawner.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <utility>

namespace distd::engine {

struct FakeSpawner::Proc {
  JobId id = 0;
  int pid = 0;
  std::vector<std::string> argv;
  std::vector<std::string> env;
  std::string cwd;
  ProcessEvents* events = nullptr;
  // Held while it runs and let go before its exit is reported, as the real spawner does.
  std::shared_ptr<const OutputTargets> targets;
  // Copies of the job's ends of its jobserver, as a real job has its own.
  int token_fds[2] = {-1, -1};
  int slots = 0;
  ~Proc() {
    for (int fd : token_fds) {
      if (fd >= 0) close(fd);
    }
  }
};

class FakeSpawner::Handle : public Process {
 public:
  Handle(FakeSpawner* spawner, JobId id, int pid) : spawner_(spawner), id_(id), pid_(pid) {}
  int pid() const override { return pid_; }
  void Signal(int sig) override {
    absl::MutexLock lock(spawner_->mu_.get());
    // Like kill(-pgid) on a reaped group: refused once the process has ended.
    if (spawner_->running_.contains(id_)) spawner_->signals_[id_].push_back(sig);
  }
  void SetOutputPaused(bool paused) override {
    absl::MutexLock lock(spawner_->mu_.get());
    spawner_->paused_[id_] = paused;
  }
  void StopForwarding() override {
    absl::MutexLock lock(spawner_->mu_.get());
    if (auto it = spawner_->running_.find(id_); it != spawner_->running_.end()) {
      it->second->targets.reset();
    }
  }

 private:
  FakeSpawner* spawner_;
  JobId id_;
  int pid_;
};

FakeSpawner::FakeSpawner() : mu_(std::make_shared<absl::Mutex>()) {}
FakeSpawner::~FakeSpawner() = default;

absl::StatusOr<std::unique_ptr<Process>> FakeSpawner::Start(const SpawnRequest& request,
                                                            ProcessEvents* events) {
  absl::MutexLock lock(mu_.get());
  if (auto it = fail_.find(request.argv->at(0)); it != fail_.end()) return it->second;
  auto proc = std::make_shared<Proc>();
  proc->id = request.id;
  proc->pid = next_pid_++;
  proc->argv = *request.argv;
  if (request.env != nullptr) proc->env = *request.env;
  proc->cwd = *request.cwd;
  proc->events = events;
  proc->targets = request.targets;
  if (request.tokens != nullptr) {
    proc->token_fds[0] = fcntl(request.tokens->job_read_fd(), F_DUPFD_CLOEXEC, 0);
    proc->token_fds[1] = fcntl(request.tokens->job_write_fd(), F_DUPFD_CLOEXEC, 0);
    proc->slots = request.jobserver_slots;
  }
  running_.emplace(request.id, proc);
  ++started_;
  max_running_ = std::max(max_running_, running_.size());
  return std::make_unique<Handle>(this, request.id, proc->pid);
}

void FakeSpawner::StopBuild(absl::string_view build) {
  absl::MutexLock lock(mu_.get());
  stopped_builds_.emplace_back(build);
}

std::vector<std::string> FakeSpawner::StoppedBuilds() {
  absl::MutexLock lock(mu_.get());
  return stopped_builds_;
}

void FakeSpawner::FailStart(const std::string& program, absl::Status status) {
  absl::MutexLock lock(mu_.get());
  fail_[program] = std::move(status);
}

std::vector<JobId> FakeSpawner::Running() {
  absl::MutexLock lock(mu_.get());
  std::vector<JobId> ids;
  for (const auto& [id, proc] : running_) ids.push_back(id);
  return ids;
}

std::vector<std::string> FakeSpawner::Argv(JobId id) {
  absl::MutexLock lock(mu_.get());
  auto it = running_.find(id);
  return it == running_.end() ? std::vector<std::string>() : it->second->argv;
}

std::vector<std::string> FakeSpawner::Env(JobId id) {
  absl::MutexLock lock(mu_.get());
  auto it = running_.find(id);
  return it == running_.end() ? std::vector<std::string>() : it->second->env;
}

std::string FakeSpawner::Cwd(JobId id) {
  absl::MutexLock lock(mu_.get());
  auto it = running_.find(id);
  return it == running_.end() ? std::string() : it->second->cwd;
}

std::vector<int> FakeSpawner::Signals(JobId id) {
  absl::MutexLock lock(mu_.get());
  auto it = signals_.find(id);
  return it == signals_.end() ? std::vector<int>() : it->second;
}

bool FakeSpawner::OutputPaused(JobId id) {
  absl::MutexLock lock(mu_.get());
  auto it = paused_.find(id);
  return it != paused_.end() && it->second;
}

bool FakeSpawner::Forwarding(JobId id) {
  absl::MutexLock lock(mu_.get());
  auto it = running_.find(id);
  return it != running_.end() && it->second->targets != nullptr;
}

size_t FakeSpawner::started() {
  absl::MutexLock lock(mu_.get());
  return started_;
}

size_t FakeSpawner::max_running() {
  absl::MutexLock lock(mu_.get());
  return max_running_;
}

bool FakeSpawner::TakeToken(JobId id) {
  absl::MutexLock lock(mu_.get());
  auto it = running_.find(id);
  if (it == running_.end() || it->second->token_fds[0] < 0) return false;
  pollfd ready = {.fd = it->second->token_fds[0], .events = POLLIN, .revents = 0};
  char token;
  return poll(&ready, 1, 0) == 1 && read(ready.fd, &token, 1) == 1;
}

bool FakeSpawner::ReturnToken(JobId id) {
  absl::MutexLock lock(mu_.get());
  auto it = running_.find(id);
  if (it == running_.end() || it->second->token_fds[1] < 0) return false;
  return write(it->second->token_fds[1], "+", 1) == 1;
}

bool FakeSpawner::HasJobserver(JobId id) {
  absl::MutexLock lock(mu_.get());
  auto it = running_.find(id);
  return it != running_.end() && it->second->token_fds[0] >= 0;
}

int FakeSpawner::JobserverSlots(JobId id) {
  absl::MutexLock lock(mu_.get());
  auto it = running_.find(id);
  return it == running_.end() ? 0 : it->second->slots;
}

bool FakeSpawner::Output(JobId id, OutputStream stream, const std::string& data) {
  ProcessEvents* events = nullptr;
  {
    absl::MutexLock lock(mu_.get());
    auto it = running_.find(id);
    if (it == running_.end()) return false;
    events = it->second->events;
  }
  events->OnProcessOutput(id, stream, data);
  return true;
}

bool FakeSpawner::End(JobId id, ExitStatus status) {
  ProcessEvents* events = nullptr;
  {
    absl::MutexLock lock(mu_.get());
    auto it = running_.find(id);
    if (it == running_.end()) return false;
    events = it->second->events;
    running_.erase(it);
  }
  events->OnProcessExit(id, status);
  return true;
}

bool FakeSpawner::Exit(JobId id, int exit_code) { return End(id, ExitStatus{exit_code, 0}); }

bool FakeSpawner::Kill(JobId id, int signal) { return End(id, ExitStatus{0, signal}); }

int FakeSpawner::DeliverSignals() {
  std::vector<std::pair<JobId, int>> doomed;
  {
    absl::MutexLock lock(mu_.get());
    for (const auto& [id, proc] : running_) {
      auto it = signals_.find(id);
      if (it == signals_.end()) continue;
      for (int sig : it->second) {
        if (sig == SIGTERM || sig == SIGKILL) {
          doomed.emplace_back(id, sig);
          break;
        }
      }
    }
  }
  int ended = 0;
  for (auto [id, sig] : doomed) ended += Kill(id, sig) ? 1 : 0;
  return ended;
}

}  // namespace distd::engine
