#include "client/args.h"

#include <optional>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace distd::client {

void ArgParser::Flag(std::vector<std::string> names, std::function<void()> set) {
  specs_.push_back(Spec{std::move(names), "", std::move(set), nullptr});
}

void ArgParser::Option(std::vector<std::string> names, std::string metavar,
                       std::function<absl::Status(const std::string&)> parse) {
  specs_.push_back(Spec{std::move(names), std::move(metavar), nullptr, std::move(parse)});
}

const ArgParser::Spec* ArgParser::Find(absl::string_view name) const {
  for (const Spec& spec : specs_) {
    for (const std::string& candidate : spec.names) {
      if (candidate == name) return &spec;
    }
  }
  return nullptr;
}

absl::Status ArgParser::Parse(const std::vector<std::string>& args, bool stop_at_positional,
                              std::vector<std::string>* positional) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--") {
      positional->insert(positional->end(), args.begin() + i + 1, args.end());
      return absl::OkStatus();
    }
    // "-" is an argument (stdin, by convention), and so is anything not starting with '-'.
    if (arg.size() < 2 || arg[0] != '-') {
      if (stop_at_positional) {
        positional->insert(positional->end(), args.begin() + i, args.end());
        return absl::OkStatus();
      }
      positional->push_back(arg);
      continue;
    }
    if (arg == "-h" || arg == "--help") {
      help_ = true;
      return absl::OkStatus();
    }
    const bool long_form = absl::StartsWith(arg, "--");
    std::string name;
    std::optional<std::string> attached;
    if (long_form) {
      size_t equals = arg.find('=');
      name = arg.substr(0, equals);
      if (equals != std::string::npos) attached = arg.substr(equals + 1);
    } else {
      name = arg.substr(0, 2);
      if (arg.size() > 2) attached = arg.substr(2);
    }
    const Spec* spec = Find(name);
    if (spec == nullptr) {
      // For a short flag show the whole word: "-bg" is more recognisable than "-b".
      return absl::InvalidArgumentError(absl::StrCat("unknown flag ", long_form ? name : arg));
    }
    if (spec->metavar.empty()) {
      if (attached.has_value()) {
        return absl::InvalidArgumentError(
            absl::StrCat("flag ", name, " takes no value (in \"", arg, "\")"));
      }
      spec->set();
      continue;
    }
    std::string value;
    if (attached.has_value()) {
      value = std::move(*attached);
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("flag ", name, " needs a value (", spec->metavar, ")"));
    }
    if (absl::Status status = spec->parse(value); !status.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("bad value for ", name, ": ", status.message()));
    }
  }
  return absl::OkStatus();
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

int64_t ToApiMilliseconds(absl::Duration duration) {
  return absl::ToInt64Milliseconds(absl::Ceil(duration, absl::Milliseconds(1)));
}

}  // namespace distd::client
