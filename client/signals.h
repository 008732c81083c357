// Ctrl-C and friends, in a process that runs gRPC threads.
//
// main calls BlockSignals() before anything starts a thread, so that every thread (gRPC's
// included) inherits a mask with SIGINT, SIGTERM and SIGHUP blocked, then creates one
// SignalThread, which receives them with sigwait. A command that must react (cancel its
// job, abort its build, stop watching) registers an OnSignal handler for as long as it
// needs one. There are no async-signal handlers anywhere: a handler is ordinary code on an
// ordinary thread, so it may take locks and make RPCs.
//
// SIGPIPE is ignored rather than blocked: a write to a closed pipe then fails with EPIPE,
// which the writer handles where it knows what the output was for (run and logs stop the
// job's relay and exit 128+SIGPIPE, as the command itself would have died). Blocking it
// instead would leave it pending forever, and its disposition would still kill the process
// the moment anything unblocked it.
#ifndef DISTD_CLIENT_SIGNALS_H_
#define DISTD_CLIENT_SIGNALS_H_

#include <cstdint>
#include <functional>
#include <thread>

#include "absl/time/time.h"

namespace distd::client {

// Blocks SIGINT, SIGTERM and SIGHUP in the calling thread and ignores SIGPIPE. Call first
// in main, before any thread exists. SIGHUP stays ignored if it was (nohup).
void BlockSignals();

// While it lives, a thread receives the blocked signals and hands each to the registered
// handlers. Exactly one, created in main after BlockSignals().
class SignalThread {
 public:
  SignalThread();
  ~SignalThread();
  SignalThread(const SignalThread&) = delete;
  SignalThread& operator=(const SignalThread&) = delete;

 private:
  std::thread thread_;
};

// The first signal received (by the SignalThread), or 0.
int ReceivedSignal();

// Sleeps for `timeout`, returning early when a signal arrives. Returns ReceivedSignal().
int SleepUnlessSignalled(absl::Duration timeout);

// Runs `handler(signal)` on the signal thread for each signal that arrives while this object
// lives. If a signal came before it was created, the handler runs once in the constructor
// (on the constructing thread) with the first signal, so that none falls between the
// cracks. The handler may run concurrently with the owner's thread; the destructor waits
// until no call of it is running.
class OnSignal {
 public:
  explicit OnSignal(std::function<void(int)> handler);
  ~OnSignal();
  OnSignal(const OnSignal&) = delete;
  OnSignal& operator=(const OnSignal&) = delete;

 private:
  std::function<void(int)> handler_;
  uint64_t id_ = 0;
};

}  // namespace distd::client

#endif  // DISTD_CLIENT_SIGNALS_H_
