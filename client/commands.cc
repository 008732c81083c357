#include "client/commands.h"

#include "absl/strings/str_cat.h"
#include "common/cli_help.h"

namespace distd::client {

void AddGlobalOptions(CLI::App* app, GlobalOptions* global) {
  // Parsed as they come (trigger_on_parse), so that the last one wins wherever it is: CLI11
  // would otherwise take a command's before distctl's own.
  app->add_option_function<std::string>(
         "--addr",
         [global](const std::string& value) {
           if (value.empty()) throw CLI::ValidationError("--addr", "the address is empty");
           global->addr = value;
           global->addr_source = "--addr";
         },
         "distd's address, unix:PATH or tcp:HOST:PORT (env DISTD_ADDR; default: the "
         "default socket, where distctl starts distd if none answers)")
      ->type_name("ADDR")
      ->trigger_on_parse();
  app->add_option_function<std::string>(
         "--build",
         [global](const std::string& value) {
           if (value.empty()) throw CLI::ValidationError("--build", "the build name is empty");
           global->build = value;
           global->build_given = true;
         },
         "the build to act on (env DISTD_BUILD; default \"default\")")
      ->type_name("NAME")
      ->trigger_on_parse();
}

CLI::App* AddSubcommand(const CommandSite& site, const std::string& name,
                        const std::string& description) {
  CLI::App* command = site.parent->add_subcommand(name, description);
  command->group("commands");
  UseHelpFormatter(command);
  if (!site.wanted.empty() && site.wanted != name) return nullptr;
  AddGlobalOptions(command, site.global);
  return command;
}

absl::StatusOr<absl::Duration> ParsePositiveDuration(absl::string_view text) {
  absl::Duration duration;
  if (!absl::ParseDuration(text, &duration)) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", text, "\" is not a duration such as 500ms, 2s or 1m"));
  }
  if (duration == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("\"", text, "\" is not finite"));
  }
  if (duration <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("\"", text, "\" is not more than 0"));
  }
  return duration;
}

CLI::Validator PositiveDuration() {
  return CLI::Validator(
      [](std::string& value) {
        absl::StatusOr<absl::Duration> duration = ParsePositiveDuration(value);
        return duration.ok() ? std::string() : std::string(duration.status().message());
      },
      "");
}

int64_t ToApiMilliseconds(absl::Duration duration) {
  return absl::ToInt64Milliseconds(absl::Ceil(duration, absl::Milliseconds(1)));
}

}  // namespace distd::client
