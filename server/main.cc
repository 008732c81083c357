// distd: flags -> Options -> run. The command-line contract is docs/cli.md.
#include <signal.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/cleanup/cleanup.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "common/address.h"
#include "common/cli_help.h"
#include "common/exit_codes.h"
#include "common/private_dir.h"
#include "common/process_setup.h"
#include "grpcpp/grpcpp.h"
#include "server/engine/engine.h"
#include "server/engine/validate.h"
#include "server/http/dashboard.h"
#include "server/http/metrics.h"
#include "server/http/server.h"
#include "server/journal/journal.h"
#include "server/journal/recorder.h"
#include "server/service/activation.h"
#include "server/service/listener.h"
#include "server/service/queue_keeper.h"
#include "server/service/remote.h"
#include "server/service/service.h"
#include "server/spawn/cgroups.h"
#include "server/spawn/jobserver.h"
#include "server/spawn/leftovers.h"
#include "server/spawn/orphans.h"
#include "spdlog/sinks/stdout_color_sinks.h"
#include "spdlog/spdlog.h"

namespace distd {
namespace {

constexpr char kDescription[] =
    "Runs build commands for distctl on one bounded pool shared by every build on the host.";

constexpr char kFooter[] =
    "SIGTERM or SIGINT: stop accepting, abort every build, wait until no job runs, exit 0.";

struct Options {
  Options() {
    engine.idle_abort = absl::Minutes(30);
    engine.jobserver = spawn::JobserverStyle::kPipe;
  }
  std::vector<Address> listen;
  std::vector<int> passed;  // sockets from a service manager (service/activation.h)
  std::optional<Address> metrics_listen;
  std::optional<Address> http_listen;
  service::RemoteOptions remote;
  int max_request_bytes = service::kMaxRequestBytes;
  std::string state_dir;  // empty: the default
  bool journal = true;
  bool cgroups = true;  // where the host delegates them
  bool slurm = false;   // --executor slurm
  bool jobserver_given = false;
  spawn::SlurmOptions slurm_options;
  engine::EngineOptions engine;
  service::ServiceOptions service;
  journal::OutputLimits output;
  journal::Retention retention;
  absl::Duration history_keep = journal::RecorderOptions().history_keep;
  spdlog::level::level_enum log_level = spdlog::level::info;
};

// Stores in *out the whole number `value` of flag `name` times `scale`, if it is from `min` to
// `max`; else throws CLI11's error for it.
template <typename T>
std::function<void(const std::string&)> Number(const char* name, uint64_t min, uint64_t max,
                                               uint64_t scale, const char* unit, T* out) {
  return [=](const std::string& value) {
    uint64_t number = 0;
    if (!absl::SimpleAtoi(value, &number) || number < min || number > max) {
      throw CLI::ValidationError(
          name, absl::StrCat("\"", value, "\" is not a number", unit, " from ", min, " to ", max));
    }
    *out = static_cast<T>(number * scale);
  };
}

// Stores in *out the duration `value` of flag `name`, if it is finite and not negative; else
// throws CLI11's error for it, with `examples`.
std::function<void(const std::string&)> Duration(const char* name, const char* examples,
                                                 absl::Duration* out) {
  return [=](const std::string& value) {
    absl::Duration d;
    if (!absl::ParseDuration(value, &d) || d < absl::ZeroDuration() ||
        d == absl::InfiniteDuration()) {
      throw CLI::ValidationError(
          name, absl::StrCat("\"", value, "\" is not a duration such as ", examples));
    }
    *out = d;
  };
}

// Parses the command line into *options. Returns nullopt when distd is to run, else the exit
// code, having printed the help or the version (0) or what was wrong (2).
std::optional<int> ParseFlags(int argc, char** argv, Options* options) {
  CLI::App app(kDescription, "distd");
  UseHelpFormatter(&app);
  app.footer(kFooter);
  app.set_version_flag("--version", "distd 0.1.0", "print distd's version");
  app.add_option_function<std::string>(
         "--listen",
         [options](const std::string& text) {
           absl::StatusOr<Address> address = ParseAddress(text);
           if (!address.ok()) {
             throw CLI::ValidationError("--listen", std::string(address.status().message()));
           }
           options->listen.push_back(*address);
         },
         "unix:PATH or tcp:HOST:PORT to listen on (repeatable; TCP needs --tls-cert and "
         "--tls-key, and --token-file or --tls-client-ca). Default: $DISTD_SOCKET, else "
         "$XDG_RUNTIME_DIR/distd/distd.sock, else /tmp/distd-$UID/distd.sock")
      ->type_name("ADDR")
      ->allow_extra_args(false)
      ->trigger_on_parse();
  const auto http_address = [](const char* flag, std::optional<Address>* to) {
    return [flag, to](const std::string& text) {
      absl::StatusOr<Address> address = ParseAddress(
          absl::StartsWith(text, "tcp:") || absl::StartsWith(text, "unix:") ? text : "tcp:" + text);
      if (!address.ok()) throw CLI::ValidationError(flag, std::string(address.status().message()));
      if (address->kind != Address::Kind::kTcp || !IsLoopbackAddress(address->host)) {
        throw CLI::ValidationError(
            flag, absl::StrCat(text,
                               ": plain HTTP is served on a numeric loopback address only "
                               "(127.0.0.1:PORT, [::1]:PORT); put a TLS proxy in front of "
                               "it for other machines"));
      }
      *to = *address;
    };
  };
  app.add_option_function<std::string>(
         "--metrics-listen", http_address("--metrics-listen", &options->metrics_listen),
         "serve Prometheus metrics at http://HOST:PORT/metrics (loopback only; distd's user, "
         "or an admin token of --token-file)")
      ->type_name("HOST:PORT");
  app.add_option_function<std::string>(
         "--http-listen", http_address("--http-listen", &options->http_listen),
         "serve the live dashboard at http://HOST:PORT/ (loopback only; distd's user, or a "
         "token of --token-file, with its limits)")
      ->type_name("HOST:PORT");
  app.add_option("--tls-cert", options->remote.tls_cert,
                 "the server's certificate chain (PEM) for the TCP listeners")
      ->type_name("FILE");
  app.add_option("--tls-key", options->remote.tls_key,
                 "the private key (PEM) of --tls-cert; a file only distd's user may read")
      ->type_name("FILE");
  app.add_option("--tls-client-ca", options->remote.tls_client_ca,
                 "TCP clients may authenticate with a certificate this CA (PEM) signed; its "
                 "common name names them")
      ->type_name("FILE");
  app.add_option("--token-file", options->remote.token_file,
                 "TCP clients' tokens, a line each: NAME TOKEN [builds=PREFIX] [admin]; a file "
                 "only distd's user may read")
      ->type_name("FILE");
  app.add_flag("--insecure-loopback", options->remote.insecure_loopback,
               "allow TCP without TLS on numeric loopback addresses (127.0.0.0/8, ::1) only; "
               "tokens are still required");
  const engine::Limits limits;
  app.add_option_function<std::string>(
         "--max-queued",
         Number("--max-queued", 1, 100'000'000, 1, "", &options->engine.limits.max_queued_jobs),
         absl::StrCat("jobs queued across all builds; beyond it a submission is refused "
                      "(default ",
                      limits.max_queued_jobs, ")"))
      ->type_name("N");
  app.add_option_function<std::string>(
         "--max-queued-per-build",
         Number("--max-queued-per-build", 1, 100'000'000, 1, "",
                &options->engine.limits.max_queued_per_build),
         absl::StrCat("jobs queued in one build (default ", limits.max_queued_per_build, ")"))
      ->type_name("N");
  app.add_option_function<std::string>(
         "--max-builds-per-client",
         Number("--max-builds-per-client", 1, 1'000'000, 1, "",
                &options->engine.limits.max_builds_per_caller),
         absl::StrCat("builds with jobs queued or running that one client (a uid, token or "
                      "certificate) may open at once "
                      "(default ",
                      limits.max_builds_per_caller, ")"))
      ->type_name("N");
  app.add_option_function<std::string>(
         "--max-streams-per-client",
         Number("--max-streams-per-client", 1, 1'000'000, 1, "",
                &options->service.max_streams_per_client),
         absl::StrCat("run, wait and logs calls open at once per TCP client (default ",
                      service::ServiceOptions().max_streams_per_client, ")"))
      ->type_name("N");
  app.add_option_function<std::string>(
         "--max-request-size",
         Number("--max-request-size", 1, 1024, 1 << 20, " of MiB", &options->max_request_bytes),
         absl::StrCat("the largest request, in MiB (default ", service::kMaxRequestBytes >> 20,
                      ")"))
      ->type_name("MIB");
  app.add_option_function<std::string>("-j,--jobs",
                                       Number("--jobs", 1, 4096, 1, "", &options->engine.jobs),
                                       "jobs running at once, across all builds (default: "
                                       "number of CPUs)")
      ->type_name("N");
  const absl::Duration max_grace = engine::Limits().max_grace;
  app.add_option_function<std::string>(
         "--grace",
         [options, max_grace](const std::string& text) {
           absl::Duration grace;
           if (!absl::ParseDuration(text, &grace) || grace < absl::ZeroDuration() ||
               grace > max_grace) {
             throw CLI::ValidationError(
                 "--grace", absl::StrCat("\"", text, "\" is not a duration from 0 to ",
                                         absl::FormatDuration(max_grace), " such as 500ms or 2s"));
           }
           options->engine.grace = grace;
         },
         absl::StrCat("between SIGTERM and SIGKILL when a job is stopped (default 5s, at most ",
                      absl::FormatDuration(max_grace), ")"))
      ->type_name("DUR");
  app.add_option_function<std::string>(
         "--idle-abort",
         Duration("--idle-abort", "30m or 2h (0: never)", &options->engine.idle_abort),
         "abort a build with jobs queued or running that no client (wait, run, logs --follow) "
         "attends for this long (default 30m; 0: never)")
      ->type_name("DUR");
  app.add_option_function<std::string>(
         "--output-memory",
         Number("--output-memory", 1, uint64_t{1} << 20, uint64_t{1} << 20, " of MiB",
                &options->engine.max_output_bytes),
         "all the jobs' kept output together, in MiB (default 256): beyond it the output of "
         "the oldest finished jobs is dropped, and their logs say so")
      ->type_name("MIB");
  app.add_option("--state-dir", options->state_dir,
                 "where distd keeps its journal of builds and jobs (default: "
                 "$XDG_STATE_HOME/distd, else ~/.local/state/distd); one distd at a time")
      ->type_name("DIR");
  app.add_option_function<std::string>(
         "--output-cap",
         Number("--output-cap", 1, uint64_t{1} << 20, uint64_t{1} << 20, " of MiB",
                &options->output.cap),
         "what the state directory keeps of each job's stdout and of its stderr, in MiB "
         "(default 16): the start and the last 256 KiB, with a line that says how much is "
         "left out")
      ->type_name("MIB");
  app.add_option_function<std::string>(
         "--output-keep", Duration("--output-keep", "168h or 30m", &options->retention.age),
         "remove the output of jobs that ended this long ago (default 168h; the journal's "
         "record of how they ended stays)")
      ->type_name("DUR");
  app.add_option_function<std::string>(
         "--history-keep", Duration("--history-keep", "720h or 30m", &options->history_keep),
         "forget builds closed this long ago, with their jobs (default 720h)")
      ->type_name("DUR");
  app.add_option_function<std::string>(
         "--output-disk",
         Number("--output-disk", 1, uint64_t{1} << 30, uint64_t{1} << 20, " of MiB",
                &options->retention.bytes),
         "all the jobs' output in the state directory, in MiB (default 1024): beyond it the "
         "output of the oldest jobs is removed first")
      ->type_name("MIB");
  app.add_option_function<std::string>(
         "--jobserver",
         [options](const std::string& text) {
           std::optional<spawn::JobserverStyle> style = spawn::ParseJobserverStyle(text);
           if (!style.has_value()) {
             throw CLI::ValidationError(
                 "--jobserver", absl::StrCat("\"", text, "\" is not one of pipe, fifo, off"));
           }
           options->engine.jobserver = *style;
           options->jobserver_given = true;
         },
         "the GNU make jobserver each job is offered, so that a nested make, ninja or cargo "
         "takes its extra slots from the pool: pipe (make 4.3 and later, cargo; the default), "
         "fifo (make 4.4, ninja 1.13, cargo), off")
      ->type_name("STYLE");
  app.add_option_function<std::string>(
         "--executor",
         [options](const std::string& text) {
           if (text != "local" && text != "slurm") {
             throw CLI::ValidationError("--executor",
                                        absl::StrCat("\"", text, "\" is not one of local, slurm"));
           }
           options->slurm = text == "slurm";
         },
         "where jobs run: local (the default), or slurm: each job as srun --job-name=distd-BUILD "
         "on the cluster, --jobs then bounding the jobs in flight there")
      ->type_name("NAME");
  app.add_option("--slurm-partition", options->slurm_options.partition,
                 "with --executor slurm: the partition jobs run in (default: the cluster's)")
      ->type_name("NAME");
  app.add_flag_callback(
      "--no-cgroups", [options] { options->cgroups = false; },
      "run jobs without cgroups of their own even where distd's cgroup is delegated to it");
  app.add_flag_callback(
      "--no-journal", [options] { options->journal = false; },
      "keep no journal: how jobs ended is forgotten when distd stops (for throwaway daemons)");
  app.add_option_function<std::string>(
         "--log-level",
         [options](const std::string& text) {
           options->log_level = spdlog::level::from_str(text);
           if (options->log_level == spdlog::level::off && text != "off") {
             throw CLI::ValidationError(
                 "--log-level",
                 absl::StrCat("\"", text, "\" is not one of trace, debug, info, warn, error, off"));
           }
         },
         "trace, debug, info, warn, error or off (default info)")
      ->type_name("LEVEL");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::fputs(app.help().c_str(), stdout);
    return kExitOk;
  } catch (const CLI::CallForVersion& version) {
    std::puts(version.what());
    return kExitOk;
  } catch (const CLI::ParseError& error) {
    const std::string message = DescribeParseError(error, app);
    std::fprintf(stderr, "distd: %s\n(distd --help shows the usage)\n", message.c_str());
    return kExitUsage;
  }
  if (options->slurm) {
    if (options->jobserver_given && options->engine.jobserver != spawn::JobserverStyle::kOff) {
      std::fprintf(stderr,
                   "distd: --jobserver %s cannot be used with --executor slurm: a jobserver's "
                   "pipes do not reach jobs on other hosts\n(distd --help shows the usage)\n",
                   options->engine.jobserver == spawn::JobserverStyle::kPipe ? "pipe" : "fifo");
      return kExitUsage;
    }
    options->engine.jobserver = spawn::JobserverStyle::kOff;
  } else if (!options->slurm_options.partition.empty()) {
    std::fprintf(stderr,
                 "distd: --slurm-partition needs --executor slurm\n(distd --help shows the "
                 "usage)\n");
    return kExitUsage;
  }
  absl::StatusOr<std::vector<int>> passed = service::TakePassedSockets();
  if (!passed.ok()) {
    std::fprintf(stderr, "distd: %s\n", std::string(passed.status().message()).c_str());
    return kExitUsage;
  }
  options->passed = *std::move(passed);
  // A service manager's sockets replace the default one, not a --listen given with them.
  if (options->listen.empty() && options->passed.empty()) {
    options->listen.push_back(Address{Address::Kind::kUnix, DefaultSocketPath(), "", 0});
  }
  if (options->journal && options->state_dir.empty()) {
    absl::StatusOr<std::string> dir = journal::DefaultStateDir();
    if (!dir.ok()) {
      std::fprintf(stderr, "distd: %s\n", std::string(dir.status().message()).c_str());
      return kExitUsage;
    }
    options->state_dir = *dir;
  }
  return std::nullopt;
}

// The service's view of the journal.
class JournalHistory final : public service::History {
 public:
  JournalHistory(journal::Journal* journal, journal::OutputStore* outputs,
                 journal::Recorder* recorder)
      : journal_(journal), outputs_(outputs), recorder_(recorder) {}

  absl::StatusOr<std::optional<engine::BuildInfo>> PastBuild(absl::string_view name) override {
    if (absl::Status behind = CaughtUp(absl::StrCat("how build ", name, " ended")); !behind.ok()) {
      return behind;
    }
    absl::StatusOr<std::optional<journal::BuildRecord>> found = journal_->FindBuild(name);
    if (!found.ok()) return absl::UnavailableError(found.status().message());
    if (!found->has_value()) return std::nullopt;
    return (*found)->ToInfo();
  }

  std::vector<service::ClosedBuild> RecentlyClosed(int limit) override {
    std::vector<service::ClosedBuild> closed;
    absl::StatusOr<std::vector<journal::BuildRecord>> builds =
        journal_->RecentBuilds(limit, /*closed_only=*/true);
    if (!builds.ok()) {
      spdlog::warn("{}", std::string(builds.status().message()));
      return closed;
    }
    for (const journal::BuildRecord& b : *builds) closed.push_back({b.ToInfo(), b.closed_at});
    return closed;
  }

  absl::StatusOr<std::optional<engine::JobOutput>> PastJob(engine::JobId id) override {
    if (absl::Status behind = CaughtUp(absl::StrCat("what job ", id, " printed")); !behind.ok()) {
      return behind;
    }
    absl::StatusOr<std::optional<journal::JobRecord>> found = journal_->FindJob(id);
    if (!found.ok()) return absl::UnavailableError(found.status().message());
    if (!found->has_value()) return std::nullopt;
    engine::JobOutput output;
    output.job = (*found)->job;
    const journal::OutputSizes& sizes = (*found)->kept;
    for (auto [stream, text, bytes] :
         {std::tuple(engine::OutputStream::kStdout, &output.stdout_text, sizes.stdout_bytes),
          std::tuple(engine::OutputStream::kStderr, &output.stderr_text, sizes.stderr_bytes)}) {
      absl::StatusOr<std::optional<std::string>> kept = outputs_->Read(id, stream);
      if (!kept.ok()) return absl::UnavailableError(kept.status().message());
      if (kept->has_value()) {
        *text = **std::move(kept);
      } else if (bytes > 0) {
        // Not silence: what it printed is gone.
        *text = absl::StrCat("[distd: the ", bytes, " bytes kept of this job's ",
                             stream == engine::OutputStream::kStdout ? "stdout" : "stderr",
                             " were removed (--output-keep, --output-disk)]\n");
      }
    }
    // Its files end where the distd that ran it died: say so, or they pass for whole.
    if (output.job.result.outcome == engine::Outcome::kLost) {
      absl::StrAppend(&output.stderr_text, "[distd: ", output.job.result.message,
                      "; what it printed after that is not known]\n");
    }
    return output;
  }

 private:
  // The engine has forgotten what is asked: the journal must have all the engine told it.
  absl::Status CaughtUp(absl::string_view what) {
    absl::Status behind = recorder_->Flush();
    if (behind.ok()) return behind;
    return absl::UnavailableError(
        absl::StrCat("the journal cannot tell ", what, ": ", behind.message()));
  }

  journal::Journal* const journal_;
  journal::OutputStore* const outputs_;
  journal::Recorder* const recorder_;
};

// This distd's DISTD_INSTANCE, told to every job (spawn/orphans.h): 128 random bits in hex,
// or the pid and the time if the kernel has no randomness to give yet.
std::string NewInstance() {
  char bytes[16];
  if (getrandom(bytes, sizeof bytes, GRND_NONBLOCK) == sizeof bytes) {
    return absl::BytesToHexString(absl::string_view(bytes, sizeof bytes));
  }
  return absl::StrCat(getpid(), "-", absl::ToUnixNanos(absl::Now()));
}

// Opens the journal and settles what a distd that died left unfinished: the ids go on after
// its last, its builds are known again by name (see Journal::Recover). `instance` is this
// distd's.
absl::StatusOr<std::unique_ptr<journal::Journal>> OpenJournal(const std::string& state_dir,
                                                              absl::string_view instance,
                                                              const std::string& delegated,
                                                              engine::EngineOptions* options,
                                                              journal::Recovery* recovery) {
  absl::StatusOr<std::unique_ptr<journal::Journal>> journal = journal::Journal::Open(state_dir);
  if (!journal.ok()) return journal.status();
  absl::StatusOr<engine::JobId> last = (*journal)->LastJobId();
  if (!last.ok()) return last.status();
  options->last_job_id = *last;
  const auto kill_group = [](int pid, absl::Time started_at) {
    const spawn::Leftovers left = spawn::KillLeftoverGroup(pid, started_at);
    if (left.killed > 0) {
      spdlog::warn("killed {} process(es) left of a job of the previous distd (group {})",
                   left.killed, pid);
    } else if (left.foreign) {
      spdlog::warn(
          "process {} is not the job of the previous distd that had its pid (it "
          "started at another time, or is another user's): left alone",
          pid);
    }
  };
  const auto kill_marked = [&delegated](absl::string_view previous,
                                        absl::FunctionRef<bool(engine::JobId)> wanted) {
    absl::flat_hash_set<engine::JobId> alive;
    if (!delegated.empty()) {
      for (const auto& [job, killed] : spawn::KillLeftoverCgroups(delegated, previous, wanted)) {
        spdlog::warn("killed {} process(es) left in the cgroup of job {} of the previous distd",
                     killed, job);
        alive.insert(job);
      }
    }
    for (const auto& [job, killed] : spawn::KillMarkedLeftovers(previous, wanted)) {
      spdlog::warn(
          "killed {} process(es) left of job {} of the previous distd, found by the {} and "
          "{} they were started with",
          killed, job, std::string(spawn::kInstanceVariable), std::string(spawn::kJobIdVariable));
      alive.insert(job);
    }
    return alive;
  };
  absl::StatusOr<journal::Recovery> recovered =
      (*journal)->Recover(absl::Now(), instance, kill_group, kill_marked);
  if (!recovered.ok()) return recovered.status();
  *recovery = *std::move(recovered);
  if (recovery->lost > 0 || recovery->cancelled > 0) {
    spdlog::warn(
        "the previous distd stopped with jobs unfinished: {} running (now lost), {} "
        "queued (now cancelled); failed: {}",
        recovery->lost, recovery->cancelled, absl::StrJoin(recovery->failed, ", "));
    if (recovery->unseen > 0) {
      spdlog::warn(
          "{} of the lost jobs had started too shortly before the previous distd died for the "
          "journal to know",
          recovery->unseen);
    }
  }
  return journal;
}

// Opens one HTTP listener of `flag` and logs its URL ("http://[::1]:9464" + `path`: the
// host keeps its brackets). False, with the reason logged, if it cannot listen.
bool OpenHttp(const char* flag, const Address& address, std::map<std::string, http::Route> routes,
              const http::ServerOptions& options, const char* what, const char* path,
              std::vector<std::unique_ptr<http::Server>>* servers) {
  absl::StatusOr<std::unique_ptr<http::Server>> opened =
      http::Server::Open(flag, address, std::move(routes), options);
  if (!opened.ok()) {
    spdlog::error("{}", std::string(opened.status().message()));
    return false;
  }
  spdlog::info("{} at http://{}:{}{}", what, address.host, (*opened)->port(), path);
  servers->push_back(*std::move(opened));
  return true;
}

int Run(const Options& options) {
  std::vector<Address> tcp;
  for (const Address& address : options.listen) {
    if (address.kind == Address::Kind::kTcp) tcp.push_back(address);
  }
  // Checked before anything else is set up: a mistake here must not half-start distd.
  absl::StatusOr<std::unique_ptr<service::Remote>> remote = service::Remote::Open(
      options.remote, tcp, options.metrics_listen.has_value() || options.http_listen.has_value());
  if (!remote.ok()) {
    spdlog::error("{}", std::string(remote.status().message()));
    return absl::IsInvalidArgument(remote.status()) ? kExitUsage : kExitBuildFailed;
  }
  std::vector<std::unique_ptr<service::Listener>> listeners;
  for (int fd : options.passed) {
    absl::StatusOr<std::unique_ptr<service::Listener>> listener = service::Listener::Adopt(fd);
    if (!listener.ok()) {
      spdlog::error("{}", std::string(listener.status().message()));
      return kExitBuildFailed;
    }
    spdlog::info("serving {}, passed by the service manager", (*listener)->path());
    listeners.push_back(*std::move(listener));
  }
  for (const Address& address : options.listen) {
    if (address.kind != Address::Kind::kUnix) continue;
    if (std::any_of(listeners.begin(), listeners.end(),
                    [&address](const auto& l) { return l->path() == address.path; })) {
      continue;  // passed by the service manager already
    }
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
  const std::string instance = NewInstance();
  // distd's own cgroup, if jobs get cgroups of their own below it (spawn/cgroups.h).
  std::string delegated;
  if (!options.cgroups) {
    spdlog::info("jobs run without cgroups of their own: --no-cgroups");
  } else {
    absl::StatusOr<std::string> own = spawn::DelegatedCgroup();
    if (own.ok()) {
      delegated = *own;
    } else {
      spdlog::info("jobs run without cgroups of their own: {}",
                   std::string(own.status().message()));
    }
  }
  engine::EngineOptions engine_options = options.engine;
  engine_options.sweep_delay = absl::Milliseconds(100);
  engine_options.watch_returns = true;
  if (engine_options.jobserver == spawn::JobserverStyle::kFifo) {
    // Beside the socket, in a directory that passed the socket's own check; for a distd on
    // TCP alone, in the default socket's.
    std::string dir = DirectoryOf(DefaultSocketPath());
    if (!listeners.empty()) dir = DirectoryOf(listeners.front()->path());
    absl::StatusOr<int> checked = OpenPrivateDirectory(dir, CreateMissing::kYes);
    if (!checked.ok()) {
      spdlog::error("the jobserver's fifos: {}", std::string(checked.status().message()));
      return kExitBuildFailed;
    }
    close(*checked);
    engine_options.jobserver_fifo_prefix = absl::StrCat(dir, "/jobserver-", instance, "-");
  }
  std::unique_ptr<journal::Journal> journal;
  journal::Recovery recovery;
  std::unique_ptr<journal::OutputStore> outputs;
  if (options.journal) {
    absl::StatusOr<std::unique_ptr<journal::Journal>> opened =
        OpenJournal(options.state_dir, instance, delegated, &engine_options, &recovery);
    if (!opened.ok()) {
      spdlog::error("{}", std::string(opened.status().message()));
      return kExitBuildFailed;
    }
    journal = *std::move(opened);
    absl::StatusOr<std::unique_ptr<journal::OutputStore>> store =
        journal::OutputStore::Open(options.state_dir, options.output, engine_options.last_job_id);
    if (!store.ok()) {
      spdlog::error("{}", std::string(store.status().message()));
      return kExitBuildFailed;
    }
    outputs = *std::move(store);
  }
  // Set before the server starts, so before any submission asks.
  std::unique_ptr<journal::Recorder> recorder;
  engine_options.admission = [&recorder]() -> absl::Status {
    if (recorder == nullptr) return absl::OkStatus();
    absl::Status health = recorder->healthy();
    if (health.ok()) return health;
    return absl::Status(health.code(),
                        absl::StrCat("distd cannot record new jobs: ", health.message()));
  };
  spawn::PosixSpawnerOptions spawner_options;
  spawner_options.reap_orphans = true;
  spawner_options.instance = instance;
  if (!delegated.empty()) {
    const std::string dir = spawn::InstanceCgroup(delegated, instance);
    if (mkdir(dir.c_str(), 0755) == 0) {
      spawner_options.cgroup_dir = dir;
      spdlog::info("each job runs in a cgroup of its own in {}", dir);
    } else {
      spdlog::warn("jobs run without cgroups of their own: cannot make {}: {}", dir,
                   strerror(errno));
    }
  }
  // After the engine (and its spawner, which removes the jobs' cgroups) is gone.
  absl::Cleanup remove_cgroup_dir = [&spawner_options] {
    if (!spawner_options.cgroup_dir.empty()) spawn::RemoveCgroup(spawner_options.cgroup_dir);
  };
  // Each running job holds about 3 fds in distd (its pipes and pidfd), and 4 more with a
  // jobserver; a pool beyond the limit fails jobs with EMFILE.
  if (rlimit files; getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur != RLIM_INFINITY) {
    const int per_job = engine_options.jobserver == spawn::JobserverStyle::kOff ? 3 : 7;
    const long jobs =
        engine_options.jobs > 0 ? engine_options.jobs : std::max(1L, sysconf(_SC_NPROCESSORS_ONLN));
    const rlim_t needed = static_cast<rlim_t>(jobs) * per_job + 256;
    if (files.rlim_cur < needed) {
      spdlog::warn(
          "the limit of open files ({}) is low for {} jobs at once, which need about {} "
          "(ulimit -n, or LimitNOFILE= under systemd)",
          files.rlim_cur, jobs, needed);
    }
  }
  std::unique_ptr<spawn::Spawner> spawner = spawn::NewPosixSpawner(spawner_options);
  if (options.slurm) {
    spawn::SlurmOptions slurm = options.slurm_options;
    const char* path = getenv("PATH");
    for (auto [name, found] : {std::pair{"srun", &slurm.srun}, {"scancel", &slurm.scancel}}) {
      absl::StatusOr<std::string> program = spawn::FindProgram(name, path ? path : "");
      if (!program.ok()) {
        spdlog::error("--executor slurm: {}", std::string(program.status().message()));
        return kExitBuildFailed;
      }
      *found = *program;
    }
    if (const char* conf = getenv("SLURM_CONF"); conf != nullptr) slurm.slurm_conf = conf;
    spdlog::info("jobs run on the Slurm cluster through {}{}", slurm.srun,
                 slurm.partition.empty() ? "" : absl::StrCat(", partition ", slurm.partition));
    spawner = spawn::NewSlurmExecutor(slurm, std::move(spawner));
  }
  engine::Engine engine(engine_options, std::move(spawner), spawn::NewRealClock());
  if (journal != nullptr) {
    for (const engine::BuildInfo& build : recovery.open) {
      if (absl::Status s = engine.Restore(build); !s.ok()) {
        spdlog::warn("the journal's build {} is not restored: {}", build.name,
                     std::string(s.message()));
      }
    }
    journal::RecorderOptions recorder_options;
    recorder_options.retention = options.retention;
    recorder_options.history_keep = options.history_keep;
    recorder = std::make_unique<journal::Recorder>(journal.get(), outputs.get(), engine.clock(),
                                                   recorder_options);
    engine.AddObserver(recorder.get());
  }
  service::Peers peers(getuid(), remote->get());
  service::ServiceOptions service_options = options.service;
  std::unique_ptr<JournalHistory> history;
  if (journal != nullptr) {
    history = std::make_unique<JournalHistory>(journal.get(), outputs.get(), recorder.get());
    service_options.history = history.get();
  }
  service::Service service(service_options, &engine, &peers);
  grpc::ServerBuilder builder;
  builder.RegisterService(&service);
  builder.SetMaxReceiveMessageSize(options.max_request_bytes);
  // A client that connects and never finishes the handshake, or then does nothing, holds a
  // connection for a while, not for ever; nor can one connection open streams without end.
  builder.AddChannelArgument(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS, 10'000);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS, 5 * 60'000);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, 1000);
  std::vector<int> ports(tcp.size(), 0);
  for (size_t i = 0; i < tcp.size(); ++i) {
    builder.AddListeningPort(tcp[i].GrpcTarget(), (*remote)->Credentials(), &ports[i]);
  }
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr) {
    spdlog::error("cannot start the gRPC server{}",
                  tcp.empty() ? "" : " (is a --listen tcp: address in use or not this host's?)");
    return kExitBuildFailed;
  }
  for (size_t i = 0; i < tcp.size(); ++i) {
    if (ports[i] == 0) {
      spdlog::error("cannot listen on {}", tcp[i].ToString());
      return kExitBuildFailed;
    }
  }
  // Declared before the servers that use them, so destroyed after.
  std::unique_ptr<http::Metrics> metrics;
  std::unique_ptr<http::Dashboard> dashboard;
  std::vector<std::unique_ptr<http::Server>> http_servers;
  http::ServerOptions http_options;
  http_options.own_uid = getuid();
  if (options.metrics_listen.has_value()) {
    metrics = std::make_unique<http::Metrics>(&engine);
    std::map<std::string, http::Route> routes;
    routes["/metrics"] = metrics->MetricsRoute(getuid(), remote->get());
    if (!OpenHttp("--metrics-listen", *options.metrics_listen, std::move(routes), http_options,
                  "metrics", "/metrics", &http_servers)) {
      return kExitBuildFailed;
    }
  }
  if (options.http_listen.has_value()) {
    dashboard = std::make_unique<http::Dashboard>(&engine, history.get(), getuid(), remote->get());
    if (!OpenHttp("--http-listen", *options.http_listen, dashboard->Routes(), http_options,
                  "dashboard", "/", &http_servers)) {
      return kExitBuildFailed;
    }
  }
  // Only once every server is open: a distd that stops here leaves no observer behind.
  if (metrics != nullptr) engine.AddObserver(metrics.get());
  absl::Cleanup remove_metrics = [&engine, &metrics] {
    if (metrics != nullptr) engine.RemoveObserver(metrics.get());
  };
  for (auto& http_server : http_servers) http_server->Start();
  auto keeper = std::make_unique<service::QueueKeeper>(server.get());
  std::vector<std::string> names;
  for (auto& listener : listeners) {
    // Nobody can reach a daemon whose socket cannot be put back: it stops as on SIGTERM.
    listener->Start(server.get(), &peers, [] { kill(getpid(), SIGTERM); });
    names.push_back(listener->path());
  }
  for (const Address& address : tcp) {
    names.push_back(absl::StrCat(address.ToString(), " (", (*remote)->Describe(), ")"));
  }
  spdlog::info("distd {} serving {} with {} jobs; journal: {}", getpid(),
               absl::StrJoin(names, ", "), engine.Pool().jobs,
               journal != nullptr ? options.state_dir : "none");

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
  for (auto& http_server : http_servers) http_server->Stop();
  // Abort every build and wait for every process group first, so that waiting clients get
  // their answers; then end the calls that are left.
  engine.Shutdown(absl::StrCat("distd received ", strsignal(sig)));
  keeper.reset();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  server.reset();
  // No call is left to ask for admission or to close a build: what is left to write is all
  // there is.
  if (recorder != nullptr) {
    engine.RemoveObserver(recorder.get());
    recorder.reset();
  }
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

  // distd's jobs get a jobserver of distd's, or none: never the one of a make distd was
  // started from (its fds are not theirs).
  distd::spawn::StripInheritedJobserver();
  distd::Options options;
  if (std::optional<int> code = distd::ParseFlags(argc, argv, &options); code.has_value()) {
    return *code;
  }
  // The log goes to stderr; stdout is not the daemon's to use.
  spdlog::set_default_logger(spdlog::stderr_color_mt("distd"));
  spdlog::set_level(options.log_level);
  return distd::Run(options);
}
