// How distd's and distctl's --help read (CLI11 generates them from the flags): the usage
// line first, then what the command does, its arguments and flags, its commands and the
// footer (exit codes, signals), under lower-case headings and with FLAGS for CLI11's OPTIONS.
// A command's description opens with a one-line summary, which is all that its parent's list
// of commands shows of it.
#ifndef DISTD_COMMON_CLI_HELP_H_
#define DISTD_COMMON_CLI_HELP_H_

#include <string>

#include "CLI/CLI.hpp"

namespace distd {

class HelpFormatter : public CLI::Formatter {
 public:
  HelpFormatter();
  std::string make_help(const CLI::App* app, std::string name,
                        CLI::AppFormatMode mode) const override;
  // A command in its parent's list: its name and the first line of its description.
  std::string make_subcommand(const CLI::App* sub) const override;
  // A flag: its names and value (`-e NAME=VALUE ...`), then its description, wrapped to the
  // width of a terminal.
  std::string make_option(const CLI::Option* option, bool is_positional) const override;
  std::string make_option_opts(const CLI::Option* option) const override;
};

// Gives `app` the formatter above, and its flags (--help included) the group "flags".
void UseHelpFormatter(CLI::App* app);

// What was wrong with a command line, from CLI11's error while parsing `command` (the deepest
// command chosen), in our words where CLI11's are vague: an argument that nobody expected is
// an unknown flag (named without its value), an unknown command or an unexpected argument;
// a missing command lists those there are.
std::string DescribeParseError(const CLI::ParseError& error, const CLI::App& command);

}  // namespace distd

#endif  // DISTD_COMMON_CLI_HELP_H_
