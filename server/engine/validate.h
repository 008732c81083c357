// The one validation layer every request passes before it touches engine state. Limits (and,
// later, authorisation) hook in here. Each check returns InvalidArgument with a message that
// names what was wrong, or ResourceExhausted for a limit.
#ifndef DISTD_SERVER_ENGINE_VALIDATE_H_
#define DISTD_SERVER_ENGINE_VALIDATE_H_

#include <cstddef>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "server/engine/types.h"

namespace distd::engine {

struct Limits {
  // Linux refuses a single argument or environment string longer than 128 KiB
  // (MAX_ARG_STRLEN) and, by default, argv plus envp beyond 2 MiB: refuse them up front with
  // a message instead of a failed exec.
  size_t max_arg_bytes = 128 * 1024;
  size_t max_exec_bytes = 2 * 1024 * 1024;
  size_t max_args = 64 * 1024;
  size_t max_name_bytes = 128;
  // Back-pressure: jobs queued (not yet running) across all builds.
  size_t max_queued_jobs = 1'000'000;
  size_t max_jobs_per_request = 200'000;
  absl::Duration max_timeout = absl::Hours(24 * 7);
};

// Build and group names: 1..max_name_bytes of [A-Za-z0-9._:@+/-], not starting with '-' or
// '.'. `what` names the field in the message ("build", "group").
absl::Status ValidateName(absl::string_view what, absl::string_view name, const Limits& limits);

// Argv non-empty with a non-empty program, sizes within limits, cwd absolute, environment
// entries of the form K=V, timeout positive and bounded, group name valid if given.
absl::Status ValidateJobSpec(const JobSpec& spec, const Limits& limits);

}  // namespace distd::engine

#endif  // DISTD_SERVER_ENGINE_VALIDATE_H_
