// The rule every command to run follows, in one place: distd checks it before a job is queued
// (server/engine/validate.cc), and distctl before it sends anything, so that a bad command
// line is a usage error whether or not a daemon answers.
#ifndef DISTD_COMMON_COMMAND_RULES_H_
#define DISTD_COMMON_COMMAND_RULES_H_

#include <string>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace distd {

// A command has a program: argv is not empty and argv[0] is not empty. InvalidArgument
// otherwise, saying which.
absl::Status CheckCommand(absl::Span<const std::string> argv);

}  // namespace distd

#endif  // DISTD_COMMON_COMMAND_RULES_H_
