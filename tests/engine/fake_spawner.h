// A spawner that runs nothing: each "process" lives until the test ends it. Tests use it to
// force every interleaving of exits, signals, aborts and barriers deterministically.
//
// Signals are only recorded (the engine sends them with its lock held, and a process that
// died inside Signal would call back into the engine there). DeliverSignals() then ends, as a
// real process would, every process that has received SIGTERM or SIGKILL.
#ifndef DISTD_TESTS_ENGINE_FAKE_SPAWNER_H_
#define DISTD_TESTS_ENGINE_FAKE_SPAWNER_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "server/spawn/spawner.h"

namespace distd::engine {

// The spawn interface this test double stands behind.
using spawn::ExitStatus;
using spawn::JobId;
using spawn::OutputStream;
using spawn::OutputTargets;
using spawn::Process;
using spawn::ProcessEvents;
using spawn::Spawner;
using spawn::SpawnRequest;

class FakeSpawner : public Spawner {
 public:
  FakeSpawner();
  ~FakeSpawner() override;

  absl::StatusOr<std::unique_ptr<Process>> Start(const SpawnRequest& request,
                                                 ProcessEvents* events) override;

  void StopBuild(absl::string_view build) override;
  // The builds StopBuild was called for, in order.
  std::vector<std::string> StoppedBuilds();

  // Programs (argv[0]) that fail to start with this status.
  void FailStart(const std::string& program, absl::Status status);

  // Jobs started and not yet exited, in start order.
  std::vector<JobId> Running();
  std::vector<std::string> Argv(JobId id);
  std::vector<std::string> Env(JobId id);
  std::string Cwd(JobId id);
  std::vector<int> Signals(JobId id);
  bool OutputPaused(JobId id);
  // Running, with targets it has not been told to stop writing to.
  bool Forwarding(JobId id);
  size_t started();
  size_t max_running();

  // As the job's own make would use its jobserver (SpawnRequest::tokens): takes a token
  // without waiting, false if there is none (or no jobserver); puts one back.
  bool TakeToken(JobId id);
  bool ReturnToken(JobId id);
  bool HasJobserver(JobId id);
  int JobserverSlots(JobId id);

  // Each returns false if `id` is not running.
  bool Output(JobId id, OutputStream stream, const std::string& data);
  bool Exit(JobId id, int exit_code);
  bool Kill(JobId id, int signal);
  // Ends every running process that got SIGTERM or SIGKILL, with that signal; returns how many.
  int DeliverSignals();

 private:
  struct Proc;
  class Handle;
  bool End(JobId id, ExitStatus status);

  std::shared_ptr<absl::Mutex> mu_;
  std::map<JobId, std::shared_ptr<Proc>> running_ ABSL_GUARDED_BY(*mu_);
  std::map<std::string, absl::Status> fail_ ABSL_GUARDED_BY(*mu_);
  std::map<JobId, std::vector<int>> signals_ ABSL_GUARDED_BY(*mu_);
  std::map<JobId, bool> paused_ ABSL_GUARDED_BY(*mu_);
  std::vector<std::string> stopped_builds_ ABSL_GUARDED_BY(*mu_);
  size_t started_ ABSL_GUARDED_BY(*mu_) = 0;
  size_t max_running_ ABSL_GUARDED_BY(*mu_) = 0;
  int next_pid_ ABSL_GUARDED_BY(*mu_) = 1000;
};

}  // namespace distd::engine

#endif  // DISTD_TESTS_ENGINE_FAKE_SPAWNER_H_
