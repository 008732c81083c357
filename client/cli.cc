#include "client/cli.h"

#include <algorithm>
#include <iterator>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/print.h"
#include "common/cli_help.h"
#include "common/exit_codes.h"

namespace distd::client {
namespace {

constexpr char kDescription[] =
    "Runs build commands on distd, the host's shared build-command daemon.";

constexpr char kFooter[] =
    R"(exit codes: run passes the command's code through (128+N for signal N, 124 timed out,
126 could not start, 127 not found); otherwise 0 success, 1 the build failed; 2 usage
error (a bad command line, or input that distd refused as invalid: a bad build name, an
empty program, arguments over ARG_MAX, a timeout or grace over the maximum); 125 an error
of distctl or distd, or a daemon that is not ours (another user's, or one that does not
answer).

The default socket is $DISTD_SOCKET, else $XDG_RUNTIME_DIR/distd/distd.sock, else
/tmp/distd-$UID/distd.sock. Its directory must be the user's own: owned by them, mode 0700
and not a symbolic link (links above it are followed only when root or the user owns them,
and no directory above it may be writable by others without the sticky bit). distctl and
distd make it so when they create it, and refuse one that is not, naming it and what is
wrong.)";

// The command whose part of the command line was being parsed: the deepest one chosen.
const CLI::App* Deepest(const CLI::App* app) {
  while (!app->get_subcommands().empty()) app = app->get_subcommands().front();
  return app;
}

// "run", "build close": the command's words after distctl.
std::string CommandName(const CLI::App* command) {
  std::vector<std::string> words;
  for (; command->get_parent() != nullptr; command = command->get_parent()) {
    words.insert(words.begin(), command->get_name());
  }
  return absl::StrJoin(words, " ");
}

// The command the arguments name: the first that is not a global option or its value, if it
// is one of distctl's (help aside, which shows the others); else "".
std::string CommandWord(const std::vector<std::string>& args) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--") break;
    if (std::find(std::begin(kGlobalValueFlags), std::end(kGlobalValueFlags), arg) !=
        std::end(kGlobalValueFlags)) {
      ++i;  // its value
      continue;
    }
    if (!arg.empty() && arg[0] == '-') continue;
    for (const char* command : {"run", "wait", "abort", "status", "logs", "build"}) {
      if (arg == command) return arg;
    }
    break;
  }
  return "";
}

}  // namespace

void CommandLine::Build(const std::string& wanted) {
  global_ = GlobalOptions();
  action_ = nullptr;
  help_path_.clear();
  app_ = std::make_unique<CLI::App>(kDescription, "distctl");
  CLI::App& app = *app_;
  UseHelpFormatter(&app);
  app.set_help_flag("-h,--help", "this help; distctl COMMAND --help, a command's");
  app.set_version_flag("--version", absl::StrCat("distctl ", DISTD_VERSION),
                       "print distctl's version");
  app.footer(kFooter);
  app.require_subcommand(1);
  AddGlobalOptions(&app, &global_);
  const CommandSite site{&app, &global_, &action_, wanted};
  AddRunCommand(site);
  AddWaitCommand(site);
  AddAbortCommand(site);
  AddStatusCommand(site);
  AddLogsCommand(site);
  AddBuildCommand(site);
  CLI::App* help = AddSubcommand(site, "help", "the help of distctl, or of COMMAND");
  if (help == nullptr) return;
  help->add_option("COMMAND", help_path_, "a command (and its own: build close)");
  help->callback([this] {
    if (Find(help_path_) == nullptr) {
      throw CLI::ValidationError(
          absl::StrCat("unknown command \"", absl::StrJoin(help_path_, " "), "\""));
    }
    action_ = [this] {
      std::vector<std::string> parents(help_path_.begin(),
                                       help_path_.end() - (help_path_.empty() ? 0 : 1));
      parents.insert(parents.begin(), "distctl");
      const CLI::App* command = Find(help_path_);
      Out(help_path_.empty() ? command->help() : command->help(absl::StrJoin(parents, " ")));
      return kExitOk;
    };
  });
}

const CLI::App* CommandLine::Find(const std::vector<std::string>& path) const {
  const CLI::App* app = app_.get();
  for (const std::string& word : path) {
    const CLI::App* next = nullptr;
    for (const CLI::App* sub : app->get_subcommands({})) {
      if (sub->get_name() == word) next = sub;
    }
    if (next == nullptr) return nullptr;
    app = next;
  }
  return app;
}

std::optional<int> CommandLine::Parse(const std::vector<std::string>& args,
                                      const std::function<const char*(const char*)>& getenv) {
  // Only the command named is built whole; should the parse fail, it is done again with
  // every command whole, so that the error is the one a whole command line gives.
  for (std::string wanted = CommandWord(args);; wanted.clear()) {
    Build(wanted);
    // The environment gives the defaults; the flags, parsed next, win.
    if (const char* addr = getenv("DISTD_ADDR"); addr != nullptr && *addr != '\0') {
      global_.addr = addr;
      global_.addr_source = "DISTD_ADDR";
    }
    if (const char* build = getenv("DISTD_BUILD"); build != nullptr) {
      // Set but empty is a mistake (an unset variable in a script), as --build "" is: acting
      // on the default build instead could abort someone else's.
      if (*build == '\0') return UsageError("", "DISTD_BUILD: the build name is empty");
      global_.build = build;
      global_.build_given = true;
    }
    for (auto [name, value] : {std::pair{"DISTD_TLS_CA", &global_.tls_ca},
                               std::pair{"DISTD_TLS_CERT", &global_.tls_cert},
                               std::pair{"DISTD_TLS_KEY", &global_.tls_key},
                               std::pair{"DISTD_TOKEN_FILE", &global_.token_file}}) {
      if (const char* text = getenv(name); text != nullptr && *text != '\0') *value = text;
    }
    if (const char* insecure = getenv("DISTD_INSECURE_LOOPBACK"); insecure != nullptr) {
      if (std::string(insecure) == "1") {
        global_.insecure_loopback = true;
      } else if (*insecure != '\0' && std::string(insecure) != "0") {
        return UsageError("", "DISTD_INSECURE_LOOPBACK: set it to 1 (or 0, or leave it unset)");
      }
    }
    // CLI11 takes the arguments last first.
    std::vector<std::string> reversed(args.rbegin(), args.rend());
    try {
      app_->parse(reversed);
    } catch (const CLI::CallForHelp&) {
      Out(app_->help());
      return kExitOk;
    } catch (const CLI::CallForVersion& version) {
      Out(absl::StrCat(version.what(), "\n"));
      return kExitOk;
    } catch (const CLI::ParseError& error) {
      if (!wanted.empty()) continue;
      const CLI::App* command = Deepest(app_.get());
      return UsageError(CommandName(command), DescribeParseError(error, *command));
    }
    return std::nullopt;
  }
}

}  // namespace distd::client
