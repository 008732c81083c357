// distctl's flag parser: small and hand-written, so that every usage error says exactly what
// was wrong (which flag is unknown, which lacks its value, which value is bad and why).
//
//   ArgParser parser;
//   parser.Flag({"--bg"}, [&] { background = true; });
//   parser.Option({"-C"}, "DIR", [&](const std::string& v) { dir = v; return absl::OkStatus(); });
//   std::vector<std::string> rest;
//   absl::Status status = parser.Parse(args, /*stop_at_positional=*/true, &rest);
//
// Accepted forms: `--name`, `--name VALUE`, `--name=VALUE`, `-n`, `-n VALUE`, `-nVALUE`; `--`
// ends the flags; `-` alone is an argument. `-h` and `--help` are always known: they stop
// parsing and set help().
#ifndef DISTD_CLIENT_ARGS_H_
#define DISTD_CLIENT_ARGS_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace distd::client {

class ArgParser {
 public:
  // A flag without a value.
  void Flag(std::vector<std::string> names, std::function<void()> set);
  // A flag with a value, named `metavar` in messages. An error from `parse` becomes
  // "bad value for NAME: <its message>".
  void Option(std::vector<std::string> names, std::string metavar,
              std::function<absl::Status(const std::string&)> parse);

  // Parses `args`; arguments that are not flags go to `positional`. With
  // `stop_at_positional`, the first of them ends the flags and everything from it on is
  // positional (run's command and its own flags). Errors are InvalidArgument, worded for the
  // user.
  absl::Status Parse(const std::vector<std::string>& args, bool stop_at_positional,
                     std::vector<std::string>* positional);

  bool help() const { return help_; }

 private:
  struct Spec {
    std::vector<std::string> names;
    std::string metavar;  // empty: a flag without a value
    std::function<void()> set;
    std::function<absl::Status(const std::string&)> parse;
  };

  const Spec* Find(absl::string_view name) const;

  std::vector<Spec> specs_;
  bool help_ = false;
};

// DUR as absl::ParseDuration reads it ("500ms", "2s", "1m30s"), finite and > 0.
absl::StatusOr<absl::Duration> ParsePositiveDuration(absl::string_view text);

// A duration in whole milliseconds for the API, rounded up so that a positive duration never
// becomes 0 (which means "none" there).
int64_t ToApiMilliseconds(absl::Duration duration);

}  // namespace distd::client

#endif  // DISTD_CLIENT_ARGS_H_
