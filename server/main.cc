// distd: flags -> Options -> run. The command-line contract is docs/cli.md.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "common/address.h"
#include "common/exit_codes.h"
#include "common/process_setup.h"
#include "grpcpp/grpcpp.h"
#include "server/engine/engine.h"
#include "server/engine/validate.h"
#include "server/service/listener.h"
#include "server/service/queue_keeper.h"
#include "server/service/service.h"
#include "spdlog/sinks/stdout_color_sinks.h"
#include "spdlog/spdlog.h"

namespace distd {
namespace {

constexpr char kUsage[] =
    R"(usage: distd [--listen ADDR]... [--jobs N] [--grace DUR] [--output-memory MIB]
             [--log-level LEVEL]

Runs build commands for distctl on one bounded pool shared by every build on the host.

  --listen ADDR      unix:PATH to listen on (repeatable). Default: $DISTD_SOCKET, else
                     $XDG_RUNTIME_DIR/distd/distd.sock, else /tmp/distd-$UID/distd.sock
  --jobs N           jobs running at once, across all builds (default: number of CPUs)
  --grace DUR        between SIGTERM and SIGKILL when a job is stopped (default 5s, at most 10m)
  --output-memory MIB  all the jobs' kept output together, in MiB (default 256): beyond it the
                     output of the oldest finished jobs is dropped, and their logs say so
  --log-level LEVEL  trace, debug, info, warn, error or off (default info)
  --help, --version

SIGTERM or SIGINT: stop accepting, abort every build, wait until no job runs, exit 0.
)";

struct Options {
  std::vector<Address> listen;
  engine::EngineOptions engine;
  spdlog::level::level_enum log_level = spdlog::level::info;
};

[[noreturn]] void UsageError(const std::string& message) {
  std::fprintf(stderr, "distd: %s\n(distd --help shows the usage)\n", message.c_str());
  std::exit(kExitUsage);
}

Options ParseFlags(int argc, char** argv) {
  Options options;
  std::vector<std::string> args(argv + 1, argv + argc);
  for (size_t i = 0; i < args.size(); ++i) {
    std::string flag = args[i];
    std::string value;
    bool has_value = false;
    if (size_t eq = flag.find('='); flag.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
      has_value = true;
    }
    auto take = [&]() -> std::string {
      if (has_value) return value;
      if (i + 1 >= args.size()) UsageError(absl::StrCat(flag, " needs a value"));
      return args[++i];
    };
    if (flag == "--help" || flag == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(kExitOk);
    } else if (flag == "--version") {
      std::puts("distd 0.1.0");
      std::exit(kExitOk);
    } else if (flag == "--listen") {
      absl::StatusOr<Address> address = ParseAddress(take());
      if (!address.ok()) UsageError(absl::StrCat("--listen: ", address.status().message()));
      options.listen.push_back(*address);
    } else if (flag == "--jobs" || flag == "-j") {
      std::string text = take();
      if (!absl::SimpleAtoi(text, &options.engine.jobs) || options.engine.jobs < 1 ||
          options.engine.jobs > 4096) {
        UsageError(absl::StrCat("--jobs: \"", text, "\" is not a number from 1 to 4096"));
      }
    } else if (flag == "--output-memory") {
      std::string text = take();
      uint64_t mib = 0;
      if (!absl::SimpleAtoi(text, &mib) || mib < 1 || mib > (uint64_t{1} << 20)) {
        UsageError(absl::StrCat("--output-memory: \"", text,
                                "\" is not a number of MiB from 1 to 1048576"));
      }
      options.engine.max_output_bytes = mib << 20;
    } else if (flag == "--grace") {
      std::string text = take();
      const absl::Duration max_grace = engine::Limits().max_grace;
      if (!absl::ParseDuration(text, &options.engine.grace) ||
          options.engine.grace < absl::ZeroDuration() || options.engine.grace > max_grace) {
        UsageError(absl::StrCat("--grace: \"", text, "\" is not a duration from 0 to ",
                                absl::FormatDuration(max_grace), " such as 500ms or 2s"));
      }
    } else if (flag == "--log-level") {
      std::string text = take();
      options.log_level = spdlog::level::from_str(text);
      if (options.log_level == spdlog::level::off && text != "off") {
        UsageError(absl::StrCat("--log-level: \"", text, "\" is not one of trace, debug, info, ",
                                "warn, error, off"));
      }
    } else if (flag == "--state-dir" || flag == "--metrics-listen" || flag == "--tls-cert" ||
               flag == "--tls-key" || flag == "--tls-client-ca" || flag == "--token-file") {
      UsageError(absl::StrCat(flag, " is not supported by this version of distd"));
    } else {
      UsageError(absl::StrCat("unknown flag \"", flag, "\""));
    }
  }
  if (options.listen.empty()) {
    options.listen.push_back(Address{Address::Kind::kUnix, DefaultSocketPath(), "", 0});
  }
  for (const Address& address : options.listen) {
    if (address.kind == Address::Kind::kTcp) {
      // Whoever reaches distd runs commands as its user: TCP only with TLS and a token,
      // which this version does not have yet.
      UsageError(absl::StrCat("--listen ", address.ToString(),
                              ": TCP needs TLS and a token, which this version does not support;"
                              " use unix:PATH"));
    }
  }
  return options;
}

int Run(const Options& options) {
  std::vector<std::unique_ptr<service::Listener>> listeners;
  for (const Address& address : options.listen) {
    absl::StatusOr<std::unique_ptr<service::Listener>> listener =
        service::Listener::Open(address.path);
    if (!listener.ok()) {
      spdlog::error("{}", std::string(listener.status().message()));
      return kExitBuildFailed;
    }
    listeners.push_back(*std::move(listener));
  }

  // A large cancelled queue's records are finished 100 ms after its build died, once the
  // abort or the failing build's barrier has been answered (see EngineOptions::sweep_delay).
  engine::EngineOptions engine_options = options.engine;
  engine_options.sweep_delay = absl::Milliseconds(100);
  engine::Engine engine(engine_options, spawn::NewPosixSpawner(), spawn::NewRealClock());
  service::Peers peers(getuid());
  service::Service service(service::ServiceOptions(), &engine, &peers);
  grpc::ServerBuilder builder;
  builder.RegisterService(&service);
  builder.SetMaxReceiveMessageSize(service::kMaxRequestBytes);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr) {
    spdlog::error("cannot start the gRPC server");
    return kExitBuildFailed;
  }
  auto keeper = std::make_unique<service::QueueKeeper>(server.get());
  std::vector<std::string> names;
  for (auto& listener : listeners) {
    // Nobody can reach a daemon whose socket cannot be put back: it stops as on SIGTERM.
    listener->Start(server.get(), &peers, [] { kill(getpid(), SIGTERM); });
    names.push_back(listener->path());
  }
  spdlog::info("distd {} serving {} with {} jobs", getpid(), absl::StrJoin(names, ", "),
               engine.Pool().jobs);

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  int sig = 0;
  while (sigwait(&signals, &sig) == 0 && sig == SIGHUP) {
    spdlog::info("SIGHUP ignored");
  }
  spdlog::info("{}: stopping", strsignal(sig));
  for (auto& listener : listeners) listener->Stop();
  // Abort every build and wait for every process group first, so that waiting clients get
  // their answers; then end the calls that are left.
  engine.Shutdown(absl::StrCat("distd received ", strsignal(sig)));
  keeper.reset();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  server.reset();
  spdlog::info("stopped");
  return kExitOk;
}

}  // namespace
}  // namespace distd

int main(int argc, char** argv) {
  distd::SetUpProcess();
  // Before any thread starts, so that every thread inherits the mask and the signals reach
  // only sigwait. Jobs get an empty mask and default dispositions from the spawner.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  distd::Options options = distd::ParseFlags(argc, argv);
  // The log goes to stderr; stdout is not the daemon's to use.
  spdlog::set_default_logger(spdlog::stderr_color_mt("distd"));
  spdlog::set_level(options.log_level);
  return distd::Run(options);
}
