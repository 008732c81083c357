// distctl: the command line (cli.h), then its command. The process-wide set-up happens here,
// in this order: signals blocked before any thread exists (gRPC starts threads with its
// first channel, and they must inherit the mask), then the one thread that receives them.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "client/cli.h"
#include "client/connect.h"
#include "client/signals.h"
#include "common/process_setup.h"
#include "grpc/support/log.h"

// Under AddressSanitizer, which checks for leaks when the process exits normally, distctl
// exits normally.
#if defined(__SANITIZE_ADDRESS__)
#define DISTD_NORMAL_EXIT 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DISTD_NORMAL_EXIT 1
#endif
#endif

namespace distd::client {
namespace {

int Main(const std::vector<std::string>& args) {
  CommandLine command_line;
  if (std::optional<int> code = command_line.Parse(args, std::getenv); code.has_value()) {
    return *code;
  }
  return command_line.action()();
}

}  // namespace
}  // namespace distd::client

int main(int argc, char** argv) {
  // Closed standard fds would be reused by the first files gRPC opens (its eventfds, the
  // socket to distd), and the job's output relayed "to stdout" would be written into them.
  // Point them at /dev/null instead, as daemons and ssh do.
  for (int fd = 0; fd <= 2; ++fd) {
    if (fcntl(fd, F_GETFD) == -1 && errno == EBADF) {
      (void)open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);  // takes the lowest free fd
    }
  }
  distd::SetUpProcess();
  distd::client::BlockSignals();
  // gRPC logs its own errors to stderr ("E1129 ... grpc_ares_wrapper.cc: ..."); distctl says
  // what went wrong itself, in lines that start with "distctl: ". GRPC_VERBOSITY brings
  // gRPC's log back for debugging.
  if (std::getenv("GRPC_VERBOSITY") == nullptr) gpr_set_log_function([](gpr_log_func_args*) {});
  int code;
  {
    distd::client::SignalThread signal_thread;
    code = distd::client::Main(std::vector<std::string>(argv + 1, argv + argc));
#ifndef DISTD_NORMAL_EXIT
    // The command is over: its calls have completed, its output is written (with write(2),
    // unbuffered; stdio is flushed all the same). A normal exit would now take the process
    // apart piece by piece: stop the signal thread, close the connections to distd and shut
    // gRPC down, joining its threads (see CloseChannels), run the static destructors. That
    // is 1 to 1.5 ms of every distctl run, for nothing that the kernel does not do at once when
    // the process ends. It closes the connections as if distctl had been killed, which distd
    // handles, and nothing is in flight on them any more.
    std::fflush(nullptr);
    _exit(code);
#endif
  }
  distd::client::CloseChannels();
  return code;
}
