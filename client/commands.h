// distctl's subcommands. Each takes the global options and its own arguments (after the
// command's name), prints what it has to say, and returns distctl's exit code (exit_codes.h):
// only main exits.
#ifndef DISTD_CLIENT_COMMANDS_H_
#define DISTD_CLIENT_COMMANDS_H_

#include <string>
#include <vector>

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
};

class ArgParser;

// Lets the global options also follow the command's name (`distctl wait --build b`).
void AddGlobalFlags(ArgParser* parser, GlobalOptions* global);

int RunCommand(GlobalOptions global, const std::vector<std::string>& args);
int WaitCommand(GlobalOptions global, const std::vector<std::string>& args);
int AbortCommand(GlobalOptions global, const std::vector<std::string>& args);
int StatusCommand(GlobalOptions global, const std::vector<std::string>& args);
int LogsCommand(GlobalOptions global, const std::vector<std::string>& args);
int BuildCommand(GlobalOptions global, const std::vector<std::string>& args);

}  // namespace distd::client

#endif  // DISTD_CLIENT_COMMANDS_H_
