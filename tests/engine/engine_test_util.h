// Helpers shared by the engine tests that drive a FakeSpawner and a FakeClock.
#ifndef DISTD_TESTS_ENGINE_ENGINE_TEST_UTIL_H_
#define DISTD_TESTS_ENGINE_ENGINE_TEST_UTIL_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "server/engine/engine.h"
#include "tests/engine/fake_clock.h"
#include "tests/engine/fake_spawner.h"

namespace distd::engine {

inline JobSpec Spec(std::vector<std::string> argv, bool check = true, std::string group = "") {
  JobSpec spec;
  spec.argv = std::move(argv);
  spec.cwd = "/";
  spec.check = check;
  spec.group = std::move(group);
  return spec;
}

// Ends one of the spawner's running jobs, chosen with `pick` (pick(n) is in [0, n)): one time
// in six killed by `signal`, else exited, with 1 one time in `fail_one_in`, else 0. False if
// none runs.
template <typename Pick>
bool EndOneRunningJob(FakeSpawner& spawner, Pick&& pick, int signal, int fail_one_in) {
  std::vector<JobId> running = spawner.Running();
  if (running.empty()) return false;
  const JobId id = running[pick(static_cast<int>(running.size()))];
  if (pick(6) == 0) return spawner.Kill(id, signal);
  return spawner.Exit(id, pick(fail_one_in) == 0 ? 1 : 0);
}

inline AbortOptions Reason(std::string reason, AbortMode mode = AbortMode::kKill) {
  AbortOptions options;
  options.reason = std::move(reason);
  options.mode = mode;
  return options;
}

// Catches the one answer of a WaitAsync or AbortAsync. The state is shared with the callback,
// so an answer that arrives after the test body (when the engine is torn down) is harmless.
class Answer {
 public:
  BuildCallback Callback() {
    return [state = state_](absl::StatusOr<BuildInfo> result) {
      absl::MutexLock lock(&state->mu);
      ++state->calls;
      state->result = std::move(result);
    };
  }
  bool done() { return calls() > 0; }
  int calls() {
    absl::MutexLock lock(&state_->mu);
    return state_->calls;
  }
  absl::StatusOr<BuildInfo> result() {
    absl::MutexLock lock(&state_->mu);
    return state_->result.value_or(absl::InternalError("no answer yet"));
  }

 private:
  struct State {
    absl::Mutex mu;
    int calls ABSL_GUARDED_BY(mu) = 0;
    std::optional<absl::StatusOr<BuildInfo>> result ABSL_GUARDED_BY(mu);
  };
  std::shared_ptr<State> state_ = std::make_shared<State>();
};

// An engine over fakes; the fixture keeps pointers to the fakes, which the engine owns.
struct FakeEngine {
  explicit FakeEngine(EngineOptions options) {
    auto spawner_owned = std::make_unique<FakeSpawner>();
    auto clock_owned = std::make_unique<FakeClock>();
    spawner = spawner_owned.get();
    clock = clock_owned.get();
    engine = std::make_unique<Engine>(options, std::move(spawner_owned), std::move(clock_owned));
  }
  ~FakeEngine() {
    // Stop everything the way a real process group would die, so the engine's destructor
    // (which waits for every job to end) can return.
    for (const BuildInfo& build : engine->ListBuilds()) {
      engine->AbortAsync(build.name, AbortOptions{}, [](absl::StatusOr<BuildInfo>) {});
    }
    while (spawner->DeliverSignals() > 0) {
    }
    engine.reset();
  }

  FakeSpawner* spawner;
  FakeClock* clock;
  std::unique_ptr<Engine> engine;
};

}  // namespace distd::engine

#endif  // DISTD_TESTS_ENGINE_ENGINE_TEST_UTIL_H_
