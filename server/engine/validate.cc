#include "server/engine/validate.h"

#include <unistd.h>

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/command_rules.h"

namespace distd::engine {
namespace {

bool IsNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == ':' || c == '@' || c == '+' || c == '/' || c == '-';
}

// For messages: a possibly huge or binary string cut to something printable.
std::string Excerpt(absl::string_view s) {
  constexpr size_t kMax = 40;
  std::string out;
  for (char c : s.substr(0, kMax)) {
    out += (c >= 0x20 && c < 0x7f) ? c : '?';
  }
  if (s.size() > kMax) out += "...";
  return out;
}

}  // namespace

absl::Status ValidateName(absl::string_view what, absl::string_view name, const Limits& limits) {
  if (name.empty()) return absl::InvalidArgumentError(absl::StrCat(what, " name is empty"));
  if (name.size() > limits.max_name_bytes) {
    return absl::InvalidArgumentError(absl::StrFormat("%s name is %d bytes; the limit is %d", what,
                                                      name.size(), limits.max_name_bytes));
  }
  if (name[0] == '-' || name[0] == '.') {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s name \"%s\" must not start with '%c'", what, Excerpt(name), name[0]));
  }
  for (char c : name) {
    if (!IsNameChar(c)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s name \"%s\" has a character outside [A-Za-z0-9._:@+/-]", what, Excerpt(name)));
    }
  }
  return absl::OkStatus();
}

size_t ExecBytesLimit() {
  static const size_t limit = [] {
    long value = sysconf(_SC_ARG_MAX);
    return value > 0 ? static_cast<size_t>(value) : size_t{128 * 1024};
  }();
  return limit;
}

absl::Status ValidateJobSpec(const JobSpec& spec, const Limits& limits) {
  if (absl::Status command = CheckCommand(spec.argv); !command.ok()) return command;
  if (spec.settings != nullptr) {
    const ProcessSettings& settings = *spec.settings;
    if (settings.umask.has_value() && *settings.umask > 0777) {
      return absl::InvalidArgumentError(
          absl::StrFormat("umask %o is not from 0 to 0777", *settings.umask));
    }
    std::vector<int> seen;
    for (const ProcessSettings::Limit& limit : settings.limits) {
      if (limit.resource < 0) return absl::InvalidArgumentError("a resource limit of unknown kind");
      if (std::find(seen.begin(), seen.end(), limit.resource) != seen.end()) {
        return absl::InvalidArgumentError("a resource limit is given twice");
      }
      seen.push_back(limit.resource);
    }
  }
  size_t exec_bytes = 0;
  for (size_t i = 0; i < spec.argv.size(); ++i) {
    const std::string& arg = spec.argv[i];
    if (arg.size() >= limits.max_arg_bytes) {
      return absl::InvalidArgumentError(
          absl::StrFormat("argument %d (\"%s\") is %d bytes; the limit is %d", i, Excerpt(arg),
                          arg.size(), limits.max_arg_bytes - 1));
    }
    if (arg.find('\0') != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrFormat("argument %d (\"%s\") contains a NUL byte", i, Excerpt(arg)));
    }
    exec_bytes += arg.size() + 1 + sizeof(char*);
  }
  if (spec.env != nullptr) {
    for (const std::string& kv : *spec.env) {
      size_t eq = kv.find('=');
      if (eq == std::string::npos || eq == 0) {
        return absl::InvalidArgumentError(
            absl::StrFormat("environment entry \"%s\" is not of the form NAME=VALUE", Excerpt(kv)));
      }
      if (kv.size() >= limits.max_arg_bytes || kv.find('\0') != std::string::npos) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "environment entry \"%s\" is too long or contains a NUL byte", Excerpt(kv)));
      }
      exec_bytes += kv.size() + 1 + sizeof(char*);
    }
  }
  if (exec_bytes > limits.max_exec_bytes) {
    return absl::InvalidArgumentError(
        absl::StrFormat("arguments and environment take %d bytes; the limit is %d", exec_bytes,
                        limits.max_exec_bytes));
  }
  if (spec.cwd.empty() || spec.cwd[0] != '/') {
    return absl::InvalidArgumentError(
        absl::StrFormat("working directory \"%s\" is not an absolute path", Excerpt(spec.cwd)));
  }
  if (spec.timeout.has_value() &&
      (*spec.timeout <= absl::ZeroDuration() || *spec.timeout > limits.max_timeout)) {
    return absl::InvalidArgumentError(absl::StrCat("timeout ", absl::FormatDuration(*spec.timeout),
                                                   " is not in (0, ",
                                                   absl::FormatDuration(limits.max_timeout), "]"));
  }
  if (!spec.group.empty()) return ValidateName("group", spec.group, limits);
  return absl::OkStatus();
}

}  // namespace distd::engine
