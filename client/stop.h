// One way for a call of distctl's to end early: for a signal (SIGINT, SIGTERM, SIGHUP) or for
// a fault of distctl's own (its output cannot be written), in the way that call stops.
#ifndef DISTD_CLIENT_STOP_H_
#define DISTD_CLIENT_STOP_H_

#include <functional>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "client/signals.h"

namespace distd::client {

// The reason of a stop that is not a signal: distctl's own fault (it exits 125 then).
inline constexpr int kStopOwnFault = -1;

// While it lives, each signal, and each Stop() by its owner, asks the call to stop. The first
// request calls `stop(1)`; later ones (a second Ctrl-C: the user is impatient) `stop(2)`,
// `stop(3)`, ..., so that a call can escalate. Once the call has reached its end (Finish), a
// request changes nothing: a Ctrl-C just after a result must not undo it.
//
// `stop` runs on the thread that asked (the signal thread for a signal), outside any lock of
// this class, and may make an RPC. If a signal arrived before the CallStop was made, `stop(1)`
// runs in the constructor.
class CallStop {
 public:
  explicit CallStop(std::function<void(int nth)> stop);
  CallStop(const CallStop&) = delete;
  CallStop& operator=(const CallStop&) = delete;

  // `reason`: a signal's number, or kStopOwnFault.
  void Stop(int reason);

  // The call has reached its end; later requests change nothing. Returns the reason of the
  // first request before it, or 0 if there was none. Idempotent.
  int Finish();

 private:
  const std::function<void(int)> stop_;
  absl::Mutex mu_;
  int reason_ ABSL_GUARDED_BY(mu_) = 0;
  int requests_ ABSL_GUARDED_BY(mu_) = 0;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  // Last: made once the rest is ready, and gone (its handler no longer running) before it.
  OnSignal on_signal_;
};

// distctl's exit code for a call stopped for `reason`: 128+signal, or 125 for its own fault.
int StopExitCode(int reason);

}  // namespace distd::client

#endif  // DISTD_CLIENT_STOP_H_
