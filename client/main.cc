// distctl: the global options, then one subcommand. The process-wide set-up happens here,
// in this order: signals blocked before any thread exists (gRPC starts threads with its
// first channel, and they must inherit the mask), then the one thread that receives them.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/args.h"
#include "client/commands.h"
#include "client/connect.h"
#include "client/print.h"
#include "client/signals.h"
#include "common/exit_codes.h"
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

constexpr char kUsage[] = R"(usage: distctl [--addr ADDR] [--build NAME] COMMAND [ARGS...]

Runs build commands on distd, the host's shared build-command daemon.

commands:
  run [--bg] [-C DIR] [-e K=V]... [--group G] [--timeout DUR] [--check|--no-check] -- CMD [ARG...]
  run --bg [--group G] -f FILE|-     queue one command a line, all or nothing
  wait [--group G] [--progress]      wait for the build's background jobs
  abort [--reason TEXT] [--drain] [--grace DUR]
  status [--json] [--watch]
  logs JOB [--follow]
  build list | build close NAME
  help [COMMAND]

global options (also accepted after the command's name):
  --addr ADDR    distd's address: unix:PATH or tcp:HOST:PORT (env DISTD_ADDR). Without
                 one, the default socket ($DISTD_SOCKET, else $XDG_RUNTIME_DIR/distd/distd.sock,
                 else /tmp/distd-$UID/distd.sock), where distctl starts distd if none answers.
  --build NAME   the build to act on (env DISTD_BUILD; default "default")
  --version      print distctl's version
  -h, --help     this text; `distctl COMMAND --help` for a command's

exit codes: run passes the command's code through (128+N for signal N, 124 timed out,
126 could not start, 127 not found); otherwise 0 success, 1 the build failed; 2 usage
error (a bad command line, or input that distd refused as invalid: a bad build name, an
empty program, arguments over ARG_MAX, a timeout or grace over the maximum); 125 an error
of distctl or distd, or a daemon that is not ours (another user's, or one that does not
answer).

the socket's directory must be the user's own: owned by them, mode 0700 and not a symbolic
link (links above it are followed only when root or the user owns them, and no directory
above it may be writable by others without the sticky bit). distctl and distd make it so
when they create it, and refuse one that is not, naming it and what is wrong.
)";

using CommandFunction = int (*)(GlobalOptions, const std::vector<std::string>&);

CommandFunction FindCommand(const std::string& name) {
  if (name == "run") return RunCommand;
  if (name == "wait") return WaitCommand;
  if (name == "abort") return AbortCommand;
  if (name == "status") return StatusCommand;
  if (name == "logs") return LogsCommand;
  if (name == "build") return BuildCommand;
  return nullptr;
}

int Main(const std::vector<std::string>& args) {
  GlobalOptions global;
  // The environment gives defaults; flags, parsed next, win.
  if (const char* addr = std::getenv("DISTD_ADDR"); addr != nullptr && *addr != '\0') {
    global.addr = addr;
    global.addr_source = "DISTD_ADDR";
  }
  if (const char* build = std::getenv("DISTD_BUILD"); build != nullptr) {
    // Set but empty is a mistake (an unset variable in a script), as --build "" is: acting
    // on the default build instead could abort someone else's.
    if (*build == '\0') return UsageError("", "DISTD_BUILD: the build name is empty");
    global.build = build;
    global.build_given = true;
  }
  bool version = false;
  ArgParser parser;
  AddGlobalFlags(&parser, &global);
  parser.Flag({"--version"}, [&] { version = true; });
  std::vector<std::string> rest;
  if (absl::Status status = parser.Parse(args, /*stop_at_positional=*/true, &rest); !status.ok()) {
    return UsageError("", status.message());
  }
  if (parser.help()) {
    Out(kUsage);
    return kExitOk;
  }
  if (version) {
    Out(absl::StrCat("distctl ", DISTD_VERSION, "\n"));
    return kExitOk;
  }
  if (rest.empty()) return UsageError("", "missing command");
  const std::string name = rest.front();
  std::vector<std::string> command_args(rest.begin() + 1, rest.end());
  if (name == "help") {
    if (command_args.empty()) {
      Out(kUsage);
      return kExitOk;
    }
    CommandFunction command = FindCommand(command_args.front());
    if (command == nullptr) {
      return UsageError("", absl::StrCat("unknown command \"", command_args.front(), "\""));
    }
    return command(global, {"--help"});
  }
  CommandFunction command = FindCommand(name);
  if (command == nullptr) return UsageError("", absl::StrCat("unknown command \"", name, "\""));
  return command(global, command_args);
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
