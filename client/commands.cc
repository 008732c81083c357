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
  struct FileFlag {
    const char* name;
    std::string* value;
    const char* help;
  };
  for (const FileFlag& flag :
       {FileFlag{"--tls-ca", &global->tls_ca,
                 "for tcp: the CA (PEM) that signed distd's certificate (env DISTD_TLS_CA; "
                 "default: the system's)"},
        FileFlag{"--tls-cert", &global->tls_cert,
                 "for tcp: this client's certificate (PEM), with --tls-key (env "
                 "DISTD_TLS_CERT)"},
        FileFlag{"--tls-key", &global->tls_key,
                 "for tcp: the private key (PEM) of --tls-cert (env DISTD_TLS_KEY)"},
        FileFlag{"--token-file", &global->token_file,
                 "for tcp: a file only this user may read with the token to send (env "
                 "DISTD_TOKEN_FILE)"}}) {
    const std::string name = flag.name;
    std::string* value = flag.value;
    app->add_option_function<std::string>(
           name,
           [name, value](const std::string& text) {
             if (text.empty()) throw CLI::ValidationError(name, "the file name is empty");
             *value = text;
           },
           flag.help)
        ->type_name("FILE")
        ->trigger_on_parse();
  }
  app->add_flag_callback(
      "--insecure-loopback", [global] { global->insecure_loopback = true; },
      "for tcp: plain TCP, to a numeric loopback address only (env "
      "DISTD_INSECURE_LOOPBACK=1)");
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
