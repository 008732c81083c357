// distctl's command line, parsed by CLI11: the global options (before the command or after
// its name, the last one winning; DISTD_ADDR and DISTD_BUILD as their defaults), one command
// with its flags and arguments, `help [COMMAND]`, --help and --version. The help is generated
// from the flags; the exit codes are in its footer.
#ifndef DISTD_CLIENT_CLI_H_
#define DISTD_CLIENT_CLI_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "client/commands.h"

namespace distd::client {

class CommandLine {
 public:
  CommandLine() = default;
  CommandLine(const CommandLine&) = delete;
  CommandLine& operator=(const CommandLine&) = delete;

  // Parses `args` (argv without argv[0]), with `getenv` for the environment. Returns nullopt
  // when a command is to run: action() runs it. Otherwise the exit code, having printed what
  // was asked (help, the version: 0) or what was wrong (a usage error: 2). Once per object.
  std::optional<int> Parse(const std::vector<std::string>& args,
                           const std::function<const char*(const char*)>& getenv);

  const GlobalOptions& global() const { return global_; }
  const Action& action() const { return action_; }

  // The help of distctl (`path` empty) or of one of its commands ({"build", "close"}), or
  // nullptr if there is no such command.
  const CLI::App* Find(const std::vector<std::string>& path) const;

 private:
  // A fresh command line: every command whole if `wanted` is empty, else that one whole and
  // the others by name.
  void Build(const std::string& wanted);

  std::unique_ptr<CLI::App> app_;
  GlobalOptions global_;
  Action action_;
  std::vector<std::string> help_path_;
};

}  // namespace distd::client

#endif  // DISTD_CLIENT_CLI_H_
