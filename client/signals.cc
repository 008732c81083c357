#include "client/signals.h"

#include <pthread.h>
#include <signal.h>

#include <map>
#include <utility>
#include <vector>

#include "absl/base/const_init.h"
#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace distd::client {
namespace {

// The signals the thread waits for. Written once by BlockSignals, before any thread exists.
sigset_t watched;

// Process-wide, like the signals themselves. Never destroyed: the signal thread may still
// look at it while static destructors run.
ABSL_CONST_INIT absl::Mutex mu(absl::kConstInit);
int first_signal ABSL_GUARDED_BY(mu) = 0;
bool stopping ABSL_GUARDED_BY(mu) = false;
// The handler being run by the signal thread, 0 if none: OnSignal's destructor waits for it.
uint64_t running_handler ABSL_GUARDED_BY(mu) = 0;
uint64_t next_id ABSL_GUARDED_BY(mu) = 1;

std::map<uint64_t, std::function<void(int)>*>& Handlers() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
  static auto* handlers = new std::map<uint64_t, std::function<void(int)>*>();
  return *handlers;
}

void SignalLoop() {
  const sigset_t set = watched;
  while (true) {
    int signo = 0;
    if (sigwait(&set, &signo) != 0) continue;
    std::vector<std::pair<uint64_t, std::function<void(int)>*>> handlers;
    {
      absl::MutexLock lock(&mu);
      if (stopping) return;
      if (first_signal == 0) first_signal = signo;
      handlers.assign(Handlers().begin(), Handlers().end());
    }
    // Outside the lock, one at a time: a handler may make an RPC. A handler that was
    // unregistered meanwhile is skipped; one being run holds off its destructor.
    for (const auto& [id, handler] : handlers) {
      {
        absl::MutexLock lock(&mu);
        if (Handlers().count(id) == 0) continue;
        running_handler = id;
      }
      (*handler)(signo);
      absl::MutexLock lock(&mu);
      running_handler = 0;
    }
  }
}

}  // namespace

void BlockSignals() {
  sigemptyset(&watched);
  sigaddset(&watched, SIGINT);
  sigaddset(&watched, SIGTERM);
  // `nohup distctl ...` means: survive the hang-up. Blocked, SIGHUP would no longer be
  // discarded but queued for sigwait, so an inherited SIG_IGN is left alone. (SIGINT is
  // handled even when inherited ignored, as a non-interactive shell does for `cmd &`: the
  // point of Ctrl-C here is to stop the job or abort the build, not to spare distctl.)
  struct sigaction hup {};
  if (sigaction(SIGHUP, nullptr, &hup) != 0 || hup.sa_handler != SIG_IGN) {
    sigaddset(&watched, SIGHUP);
  }
  pthread_sigmask(SIG_BLOCK, &watched, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

SignalThread::SignalThread() : thread_(SignalLoop) {}

SignalThread::~SignalThread() {
  {
    absl::MutexLock lock(&mu);
    stopping = true;
  }
  // A signal aimed at the thread itself wakes its sigwait; it then sees `stopping`.
  pthread_kill(thread_.native_handle(), SIGTERM);
  thread_.join();
}

int ReceivedSignal() {
  absl::MutexLock lock(&mu);
  return first_signal;
}

int SleepUnlessSignalled(absl::Duration timeout) {
  absl::MutexLock lock(&mu);
  mu.AwaitWithTimeout(absl::Condition(
                          +[](int* signo) { return *signo != 0; }, &first_signal),
                      timeout);
  return first_signal;
}

OnSignal::OnSignal(std::function<void(int)> handler) : handler_(std::move(handler)) {
  int already = 0;
  {
    absl::MutexLock lock(&mu);
    id_ = next_id++;
    Handlers()[id_] = &handler_;
    already = first_signal;
  }
  // Registered and read in one step: a signal that arrived before was not given to this
  // handler by the thread, and one arriving now will be.
  if (already != 0) handler_(already);
}

OnSignal::~OnSignal() {
  absl::MutexLock lock(&mu);
  Handlers().erase(id_);
  const uint64_t id = id_;
  auto not_running = [id]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return running_handler != id; };
  mu.Await(absl::Condition(&not_running));
}

}  // namespace distd::client
