#include "client/relay.h"

#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "client/print.h"

namespace distd::client {

void OutputRelay::Write(const v1::Output& output) {
  const bool is_stderr = output.stream() == v1::STDERR;
  if (!open_[is_stderr]) return;
  const int err = WriteAll(is_stderr ? STDERR_FILENO : STDOUT_FILENO, output.data());
  if (err == 0) return;
  open_[is_stderr] = false;
  if (err != EPIPE) {
    Err(absl::StrCat("cannot write the job's ", is_stderr ? "stderr" : "stdout", ": ",
                     std::strerror(err)));
  }
  stop_->Stop(err == EPIPE ? SIGPIPE : kStopOwnFault);
}

}  // namespace distd::client
