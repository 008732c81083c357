// `distctl run`: one command in the foreground (run_foreground.cc), or background jobs
// queued with Submit, from the command line or a batch file.
#include "client/run.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/commands.h"
#include "client/connect.h"
#include "client/print.h"
#include "client/rpc.h"
#include "common/command_rules.h"
#include "common/current_umask.h"
#include "common/exit_codes.h"
#include "common/shell_words.h"

extern char** environ;

namespace distd::client {
namespace {

constexpr char kDescription[] = R"(runs CMD on distd's pool, in the foreground or queued (--bg)
Runs CMD on distd's pool, where and as it would run here: in this directory, with this
environment, this umask and these soft limits (ulimit -n, -c, -s, -t, -v; each at most
distd's hard limit). In the foreground its output streams live to distctl's (a local distd
writes it there itself when they are pipes or /dev/null: a reader of the pipe that goes
away gives CMD SIGPIPE) and distctl exits with its code (128+N when killed by signal N,
124 timed out, 126 could not start, 127 not found). The job belongs to this distctl: Ctrl-C
cancels it, and so does killing distctl (any signal, even SIGKILL, as distd sees the
connection close). With --bg it is queued, its id printed, and distctl exits 0.

The flags end at CMD (or at --): what follows is the command's. With --bg, -f FILE (- for
stdin) queues every command of FILE instead, all or nothing: one a line, shell words and
quotes (no expansion), # comments, and a trailing \ to continue a line; the flags apply to
each.)";

struct RunFlags {
  bool background = false;
  std::string dir;
  std::vector<std::string> env;
  std::string group;
  std::string timeout;  // DUR, checked
  std::optional<bool> check;
  std::string file;  // -f, never empty when given
  std::vector<std::string> argv;
};

absl::StatusOr<std::string> CurrentDirectory() {
  std::vector<char> buffer(4096);
  while (getcwd(buffer.data(), buffer.size()) == nullptr) {
    if (errno != ERANGE || buffer.size() > (1 << 20)) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot tell the current directory: ", std::strerror(errno)));
    }
    buffer.resize(buffer.size() * 2);
  }
  return std::string(buffer.data());
}

std::vector<std::string> Environment() {
  std::vector<std::string> env;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    env.emplace_back(*entry);
  }
  return env;
}

// What a shell user sets for the commands they start (ulimit, umask), for distd to give the
// jobs: they run as they would have here.
v1::ProcessSettings OwnSettings() {
  v1::ProcessSettings settings;
  settings.set_umask(CurrentUmask());
  const std::pair<__rlimit_resource, v1::ResourceLimit::Resource> carried[] = {
      {RLIMIT_NOFILE, v1::ResourceLimit::NOFILE}, {RLIMIT_CORE, v1::ResourceLimit::CORE},
      {RLIMIT_STACK, v1::ResourceLimit::STACK},   {RLIMIT_CPU, v1::ResourceLimit::CPU},
      {RLIMIT_AS, v1::ResourceLimit::AS},
  };
  for (const auto& [resource, name] : carried) {
    rlimit limit;
    if (getrlimit(resource, &limit) != 0) continue;
    v1::ResourceLimit* out = settings.add_limits();
    out->set_resource(name);
    if (limit.rlim_cur == RLIM_INFINITY) {
      out->set_unlimited(true);
    } else {
      out->set_soft(limit.rlim_cur);
    }
  }
  return settings;
}

absl::StatusOr<std::string> ReadAll(const std::string& file) {
  const bool stdin_file = file == "-";
  int fd = stdin_file ? STDIN_FILENO : open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read ", file, ": ", std::strerror(errno)));
  }
  std::string text;
  char buffer[65536];
  int error = 0;
  while (true) {
    ssize_t n = read(fd, buffer, sizeof(buffer));
    if (n > 0) {
      text.append(buffer, static_cast<size_t>(n));
    } else if (n == 0) {
      break;
    } else if (errno != EINTR) {
      error = errno;
      break;
    }
  }
  if (!stdin_file) close(fd);
  if (error != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read ", file, ": ", std::strerror(error)));
  }
  return text;
}

// Submit, all or nothing, and the ids one a line. A refusal of one command of a batch read
// from `file` names the file's line rather than the command's number.
int Submit(const Connection& connection, const v1::SubmitRequest& request, const std::string& file,
           const std::vector<int>& lines) {
  v1::SubmitResponse response;
  const auto name_the_line = [&](v1::Error* error) {
    const uint32_t n = error->command();
    if (n == 0 || n > lines.size()) return;
    std::string message = error->message();
    const std::string prefix = absl::StrCat("command ", n, ": ");
    if (absl::StartsWith(message, prefix)) message.erase(0, prefix.size());
    error->set_message(absl::StrCat(file, ": line ", lines[n - 1], ": ", message));
  };
  if (int code =
          CallDistd(connection, &v1::Distd::Stub::Submit, request, &response,
                    lines.empty() ? nullptr : std::function<void(v1::Error*)>(name_the_line));
      code != kExitOk) {
    return code;
  }
  if (response.job_ids_size() != request.commands_size()) {
    Err(absl::StrCat("distd answered ", response.job_ids_size(), " job ids for ",
                     request.commands_size(), " commands"));
    return kExitDistdError;
  }
  std::string ids;
  for (uint64_t id : response.job_ids()) absl::StrAppend(&ids, id, "\n");
  Out(ids);
  return kExitOk;
}

}  // namespace

std::string ResolveDirectory(absl::string_view cwd, absl::string_view dir) {
  std::vector<absl::string_view> parts;
  const std::string joined =
      dir.substr(0, 1) == "/" ? std::string(dir) : absl::StrCat(cwd, "/", dir);
  for (absl::string_view part : absl::StrSplit(joined, '/', absl::SkipEmpty())) {
    if (part == ".") continue;
    if (part == "..") {
      if (!parts.empty()) parts.pop_back();
      continue;
    }
    parts.push_back(part);
  }
  return parts.empty() ? "/" : absl::StrCat("/", absl::StrJoin(parts, "/"));
}

namespace {

int Run(const GlobalOptions& global, const RunFlags& flags) {
  absl::StatusOr<std::string> cwd = CurrentDirectory();
  if (!cwd.ok()) {
    Err(cwd.status().message());
    return kExitDistdError;
  }

  // What every command of this invocation shares.
  v1::Command common;
  if (!flags.dir.empty()) {
    common.set_cwd(ResolveDirectory(*cwd, flags.dir));
  }
  for (const std::string& entry : flags.env) common.add_env(entry);
  if (!flags.timeout.empty()) {
    common.set_timeout_ms(ToApiMilliseconds(*ParsePositiveDuration(flags.timeout)));
  }
  common.set_check(flags.check.value_or(flags.background));
  common.set_group(flags.group);

  // A batch is read and parsed before anything is sent (or a daemon started): bad input
  // queues nothing.
  std::vector<BatchLine> batch;
  const std::string file = flags.file == "-" ? "stdin" : flags.file;
  if (!flags.file.empty()) {
    const std::string& name = file;
    absl::StatusOr<std::string> text = ReadAll(flags.file);
    if (!text.ok()) return UsageError("run", text.status().message());
    absl::StatusOr<std::vector<BatchLine>> parsed = ParseBatch(*text);
    if (!parsed.ok()) {
      Err(absl::StrCat(name, ": ", parsed.status().message()));
      return kExitUsage;
    }
    if (parsed->empty()) return UsageError("run", absl::StrCat("no commands in ", name));
    for (const BatchLine& line : *parsed) {
      if (absl::Status command = CheckCommand(line.words); !command.ok()) {
        Err(absl::StrCat(name, ": line ", line.line, ": ", command.message()));
        return kExitUsage;
      }
    }
    batch = *std::move(parsed);
  }

  absl::StatusOr<Connection> connection = Connect(global);
  if (!connection.ok()) return ReportConnectError(connection.status());

  if (!flags.background) {
    v1::RunRequest request;
    request.set_build(global.build);
    request.set_cwd(*cwd);
    for (std::string& entry : Environment()) request.add_env(std::move(entry));
    *request.mutable_settings() = OwnSettings();
    *request.mutable_command() = common;
    for (const std::string& word : flags.argv) request.mutable_command()->add_argv(word);
    OfferOwnFiles(&request);
    return RunForeground(*connection, request);
  }

  v1::SubmitRequest request;
  request.set_build(global.build);
  request.set_cwd(*cwd);
  for (std::string& entry : Environment()) request.add_env(std::move(entry));
  *request.mutable_settings() = OwnSettings();
  if (batch.empty()) {
    v1::Command* command = request.add_commands();
    *command = common;
    for (const std::string& word : flags.argv) command->add_argv(word);
  }
  std::vector<int> lines;
  for (BatchLine& line : batch) {
    v1::Command* command = request.add_commands();
    *command = common;
    for (std::string& word : line.words) command->add_argv(std::move(word));
    lines.push_back(line.line);
  }
  return Submit(*connection, request, file, lines);
}

}  // namespace

void AddRunCommand(const CommandSite& site) {
  CLI::App* run = AddSubcommand(site, "run", kDescription);
  if (run == nullptr) return;
  auto flags = std::make_shared<RunFlags>();
  CLI::Option* bg = run->add_flag("--bg", flags->background,
                                  "queue in the background; `distctl wait` is the barrier");
  run->add_option("-C", flags->dir, "run in DIR (relative to the current directory)")
      ->type_name("DIR")
      ->check(CLI::Validator(
          [](std::string& value) { return value.empty() ? "the directory is empty" : ""; }, ""));
  run->add_option("-e", flags->env, "add or override an environment variable (repeatable)")
      ->type_name("NAME=VALUE")
      ->allow_extra_args(false)
      ->check(CLI::Validator(
          [](std::string& value) {
            return value.find('=') == std::string::npos || value[0] == '='
                       ? absl::StrCat("\"", value, "\" is not NAME=VALUE")
                       : std::string();
          },
          ""));
  run->add_option("--group", flags->group,
                  "the barrier group within the build (`distctl wait --group G`)")
      ->type_name("G");
  run->add_option("--timeout", flags->timeout,
                  "stop the job after DUR (500ms, 2s, 1m); its code is then 124")
      ->type_name("DUR")
      ->check(PositiveDuration());
  // As they come, so that the last of them wins.
  run->add_flag_callback(
         "--check", [flags] { flags->check = true; },
         "a failure of this job fails the whole build (default with --bg)")
      ->trigger_on_parse();
  run->add_flag_callback(
         "--no-check", [flags] { flags->check = false; },
         "a failure of this job does not fail the build (default in the foreground)")
      ->trigger_on_parse();
  run->add_option("-f", flags->file, "with --bg: queue every command of FILE (- for stdin)")
      ->type_name("FILE")
      ->needs(bg)
      ->check(CLI::Validator(
          [](std::string& value) { return value.empty() ? "the file name is empty" : ""; }, ""));
  // At least one word, so that a `--` is CMD's mark, not the end of the command's part of the
  // command line (an empty command is refused with the others, below).
  run->add_option("CMD", flags->argv, "the command and its arguments")
      ->type_name("ARG")
      ->expected(1, -1);
  // Everything from CMD on is the command's, its flags included.
  run->positionals_at_end();
  run->callback([site, flags] {
    if (!flags->file.empty()) {
      if (!flags->argv.empty()) {
        throw CLI::ValidationError(
            absl::StrCat("give either -f FILE or a command, not both (found \"", flags->argv[0],
                         "\" after the flags)"));
      }
    } else if (absl::Status command = CheckCommand(flags->argv); !command.ok()) {
      throw CLI::ValidationError(absl::StrCat(command.message(), ": distctl run [FLAGS] -- CMD"));
    }
    *site.action = [global = site.global, flags] { return Run(*global, *flags); };
  });
}

}  // namespace distd::client
