#include "common/command_rules.h"

namespace distd {

absl::Status CheckCommand(absl::Span<const std::string> argv) {
  if (argv.empty()) return absl::InvalidArgumentError("empty command: no program given");
  if (argv.front().empty()) return absl::InvalidArgumentError("empty program name");
  return absl::OkStatus();
}

}  // namespace distd
