#include "client/stop.h"

#include <utility>

#include "common/exit_codes.h"

namespace distd::client {

CallStop::CallStop(std::function<void(int)> stop)
    : stop_(std::move(stop)), on_signal_([this](int signo) { Stop(signo); }) {}

void CallStop::Stop(int reason) {
  int nth = 0;
  {
    absl::MutexLock lock(&mu_);
    if (finished_) return;
    if (reason_ == 0) reason_ = reason;
    nth = ++requests_;
  }
  stop_(nth);
}

int CallStop::Finish() {
  absl::MutexLock lock(&mu_);
  finished_ = true;
  return reason_;
}

int StopExitCode(int reason) { return reason > 0 ? kExitSignalBase + reason : kExitDistdError; }

}  // namespace distd::client
