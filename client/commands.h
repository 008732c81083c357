// distctl's subcommands. Each adds itself, with its flags and its help, to distctl's command
// line (cli.cc); once its part of the command line is parsed, it leaves the Action that runs
// it. An action prints what it has to say and returns distctl's exit code (exit_codes.h):
// only main exits.
#ifndef DISTD_CLIENT_COMMANDS_H_
#define DISTD_CLIENT_COMMANDS_H_

#include <cstdint>
#include <functional>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace distd::client {

// Where distd is and which build a command is about: --addr/--build, else DISTD_ADDR /
// DISTD_BUILD, else the defaults.
struct GlobalOptions {
  // Empty: the default socket, and distctl may start distd there.
  std::string addr;
  // Where `addr` came from, for messages: "--addr" or "DISTD_ADDR".
  std::string addr_source;
  std::string build = "default";
  // --build or DISTD_BUILD was given: status then shows only that build.
  bool build_given = false;
  // For tcp: addresses (--tls-ca etc., else DISTD_TLS_CA etc.). A token file holds the
  // token alone, or the NAME TOKEN line of distd's token file.
  std::string tls_ca;
  std::string tls_cert;
  std::string tls_key;
  std::string token_file;
  bool insecure_loopback = false;  // plain TCP, to a numeric loopback address only
};

// The global options that take a value, as the command line spells them.
inline constexpr const char* kGlobalValueFlags[] = {"--addr",     "--build",   "--tls-ca",
                                                    "--tls-cert", "--tls-key", "--token-file"};

using Action = std::function<int()>;

// Where a command adds itself: under `parent` (distctl's command line, or a command's own
// subcommands), with the global options (filled in by the time an action runs) and the action
// to set once its part of the command line has been parsed.
struct CommandSite {
  CLI::App* parent;
  GlobalOptions* global;
  Action* action;
  // The command that the command line names, if known ("" for any): the others are added by
  // name and summary only, for distctl's help, since building every command's flags is most
  // of distctl's start-up (see CommandLine::Parse).
  std::string wanted;
};

// A subcommand of the site's parent, with help in distctl's style and the global options, so
// that they may also follow the command's name (`distctl wait --build b`); the last one
// given wins. `description` opens with its one-line summary. nullptr when the site wants
// another command: the caller then adds nothing more.
CLI::App* AddSubcommand(const CommandSite& site, const std::string& name,
                        const std::string& description);

// --addr and --build on `app`.
void AddGlobalOptions(CLI::App* app, GlobalOptions* global);

void AddRunCommand(const CommandSite& site);
void AddWaitCommand(const CommandSite& site);
void AddAbortCommand(const CommandSite& site);
void AddStatusCommand(const CommandSite& site);
void AddLogsCommand(const CommandSite& site);
void AddBuildCommand(const CommandSite& site);

// DUR as absl::ParseDuration reads it ("500ms", "2s", "1m30s"), finite and > 0.
absl::StatusOr<absl::Duration> ParsePositiveDuration(absl::string_view text);

// A CLI11 check of a DUR flag by ParsePositiveDuration: its error says what is wrong.
CLI::Validator PositiveDuration();

// A duration in whole milliseconds for the API, rounded up so that a positive duration never
// becomes 0 (which means "none" there).
int64_t ToApiMilliseconds(absl::Duration duration);

}  // namespace distd::client

#endif  // DISTD_CLIENT_COMMANDS_H_
