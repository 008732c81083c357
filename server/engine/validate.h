// The one validation layer every request passes before it touches engine state, with the
// limits that bound a request. Each check returns InvalidArgument with a message that
// names what was wrong, or ResourceExhausted for a limit.
#ifndef DISTD_SERVER_ENGINE_VALIDATE_H_
#define DISTD_SERVER_ENGINE_VALIDATE_H_

#include <cstddef>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "server/engine/types.h"

namespace distd::engine {

// ARG_MAX of this process (sysconf), which its children inherit with its stack limit.
size_t ExecBytesLimit();

struct Limits {
  // Linux refuses a single argument or environment string longer than 128 KiB
  // (MAX_ARG_STRLEN) and argv plus envp (strings and pointers) beyond ARG_MAX, a quarter of
  // the stack limit: refuse them up front with a message instead of a failed exec. There is
  // no limit on the number of arguments but these bytes, as in execve.
  size_t max_arg_bytes = 128 * 1024;
  size_t max_exec_bytes = ExecBytesLimit();
  size_t max_name_bytes = 128;
  // Back-pressure: jobs queued (not yet running) across all builds.
  size_t max_queued_jobs = 1'000'000;
  // ... and in one build: one build (one CI pipeline) cannot fill the queue alone.
  size_t max_queued_per_build = 500'000;
  // Builds with jobs queued or running that one caller (its principal: uid:N, token:NAME,
  // cert:NAME) opened. Dead builds, and builds whose jobs have all ended, do not count.
  size_t max_builds_per_caller = 1000;
  size_t max_jobs_per_request = 200'000;
  absl::Duration max_timeout = absl::Hours(24 * 7);
  // Between SIGTERM and SIGKILL: a job that ignores SIGTERM holds up an abort, and distd's
  // own shutdown, for at most this long.
  absl::Duration max_grace = absl::Minutes(10);
};

// Build and group names: 1..max_name_bytes of [A-Za-z0-9._:@+/-], not starting with '-' or
// '.'. `what` names the field in the message ("build", "group").
absl::Status ValidateName(absl::string_view what, absl::string_view name, const Limits& limits);

// Argv non-empty with a non-empty program, sizes within limits, cwd absolute, environment
// entries of the form K=V, timeout positive and bounded, group name valid if given.
absl::Status ValidateJobSpec(const JobSpec& spec, const Limits& limits);

}  // namespace distd::engine

#endif  // DISTD_SERVER_ENGINE_VALIDATE_H_
