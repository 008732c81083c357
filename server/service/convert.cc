#include "server/service/convert.h"

#include <sys/resource.h>

#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/string_view.h"

namespace distd::service {
namespace {

int64_t ToMillis(absl::Time t) { return t == absl::InfinitePast() ? 0 : absl::ToUnixMillis(t); }

absl::string_view NameOf(absl::string_view entry) { return entry.substr(0, entry.find('=')); }

// The request's environment with `overrides` applied by name, in the request's order, new
// names appended.
std::vector<std::string> Merge(const std::vector<std::string>& base,
                               const google::protobuf::RepeatedPtrField<std::string>& overrides) {
  absl::flat_hash_map<absl::string_view, const std::string*> by_name;
  for (const std::string& entry : overrides) by_name[NameOf(entry)] = &entry;
  std::vector<std::string> merged;
  merged.reserve(base.size() + overrides.size());
  for (const std::string& entry : base) {
    auto it = by_name.find(NameOf(entry));
    if (it == by_name.end()) {
      merged.push_back(entry);
    } else if (it->second != nullptr) {
      merged.push_back(*it->second);
      it->second = nullptr;  // used
    }
  }
  for (const std::string& entry : overrides) {
    auto it = by_name.find(NameOf(entry));
    if (it->second == &entry) merged.push_back(entry);  // a new name (last one wins)
  }
  return merged;
}

// For the string fields of answers: bytes that are not UTF-8 become '?', so that a command
// with a Latin-1 file name can still be shown (the request itself carried bytes).
std::string Utf8Safe(absl::string_view text) {
  // The length of the well-formed UTF-8 sequence at `at` (RFC 3629: no overlong forms, no
  // surrogates, nothing above U+10FFFF), or 0.
  auto sequence = [&text](size_t at) -> size_t {
    auto byte = [&](size_t k) { return static_cast<unsigned char>(text[at + k]); };
    const unsigned char c = byte(0);
    if (c < 0x80) return 1;
    size_t n = 0;
    unsigned char low = 0x80, high = 0xbf;  // range of the second byte
    if (c >= 0xc2 && c <= 0xdf) {
      n = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
      n = 3;
      if (c == 0xe0) low = 0xa0;
      if (c == 0xed) high = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 4;
      if (c == 0xf0) low = 0x90;
      if (c == 0xf4) high = 0x8f;
    } else {
      return 0;
    }
    if (at + n > text.size() || byte(1) < low || byte(1) > high) return 0;
    for (size_t k = 2; k < n; ++k) {
      if ((byte(k) & 0xc0) != 0x80) return 0;
    }
    return n;
  };
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    if (size_t n = sequence(i); n > 0) {
      out.append(text.data() + i, n);
      i += n;
    } else {
      out.push_back('?');
      ++i;
    }
  }
  return out;
}

v1::Outcome ToProto(engine::Outcome outcome) {
  switch (outcome) {
    case engine::Outcome::kNone:
      return v1::OUTCOME_NONE;
    case engine::Outcome::kSucceeded:
      return v1::SUCCEEDED;
    case engine::Outcome::kFailed:
      return v1::FAILED;
    case engine::Outcome::kKilled:
      return v1::KILLED;
    case engine::Outcome::kTimedOut:
      return v1::TIMED_OUT;
    case engine::Outcome::kCancelled:
      return v1::CANCELLED;
    case engine::Outcome::kCannotStart:
      return v1::CANNOT_START;
    case engine::Outcome::kLost:
      return v1::LOST;
  }
  return v1::OUTCOME_NONE;
}

}  // namespace

v1::Error ToError(const absl::Status& status) {
  v1::Error error;
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return error;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      error.set_code(v1::Error::INVALID_ARGUMENT);
      break;
    case absl::StatusCode::kNotFound:
      error.set_code(v1::Error::NOT_FOUND);
      break;
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAlreadyExists:
      error.set_code(v1::Error::FAILED_PRECONDITION);
      break;
    case absl::StatusCode::kResourceExhausted:
      error.set_code(v1::Error::RESOURCE_EXHAUSTED);
      break;
    case absl::StatusCode::kUnavailable:
      error.set_code(v1::Error::UNAVAILABLE);
      break;
    default:
      error.set_code(v1::Error::INTERNAL);
      break;
  }
  if (absl::optional<absl::Cord> command = status.GetPayload(engine::kCommandPayload)) {
    uint32_t number = 0;
    if (absl::SimpleAtoi(std::string(*command), &number)) error.set_command(number);
  }
  error.set_message(Utf8Safe(status.message()));
  return error;
}

std::shared_ptr<const engine::ProcessSettings> ToSettings(const v1::ProcessSettings& settings) {
  if (!settings.has_umask() && settings.limits().empty()) return nullptr;
  auto out = std::make_shared<engine::ProcessSettings>();
  if (settings.has_umask()) out->umask = settings.umask();
  for (const v1::ResourceLimit& limit : settings.limits()) {
    engine::ProcessSettings::Limit& to = out->limits.emplace_back();
    switch (limit.resource()) {
      case v1::ResourceLimit::NOFILE:
        to.resource = RLIMIT_NOFILE;
        break;
      case v1::ResourceLimit::CORE:
        to.resource = RLIMIT_CORE;
        break;
      case v1::ResourceLimit::STACK:
        to.resource = RLIMIT_STACK;
        break;
      case v1::ResourceLimit::CPU:
        to.resource = RLIMIT_CPU;
        break;
      case v1::ResourceLimit::AS:
        to.resource = RLIMIT_AS;
        break;
      default:
        to.resource = -1;
        break;
    }
    to.soft = limit.unlimited() ? RLIM_INFINITY : limit.soft();
  }
  return out;
}

std::vector<engine::JobSpec> ToJobSpecs(
    const std::string& request_cwd, const google::protobuf::RepeatedPtrField<std::string>& env,
    const google::protobuf::RepeatedPtrField<v1::Command>& commands,
    const v1::ProcessSettings& settings) {
  auto shared_env = std::make_shared<const std::vector<std::string>>(env.begin(), env.end());
  std::shared_ptr<const engine::ProcessSettings> shared_settings = ToSettings(settings);
  std::vector<engine::JobSpec> specs;
  specs.reserve(commands.size());
  for (const v1::Command& command : commands) {
    engine::JobSpec spec;
    spec.argv.assign(command.argv().begin(), command.argv().end());
    spec.cwd = command.cwd().empty() ? request_cwd : command.cwd();
    spec.env =
        command.env().empty()
            ? shared_env
            : std::make_shared<const std::vector<std::string>>(Merge(*shared_env, command.env()));
    // Negative timeouts are left for the engine to refuse with its message.
    if (command.timeout_ms() != 0) spec.timeout = absl::Milliseconds(command.timeout_ms());
    spec.check = command.check();
    spec.group = command.group();
    spec.settings = shared_settings;
    specs.push_back(std::move(spec));
  }
  return specs;
}

void ToProto(const engine::JobResult& result, engine::JobId id, v1::JobResult* out) {
  out->set_job_id(id);
  out->set_outcome(ToProto(result.outcome));
  out->set_exit_code(result.exit_code);
  out->set_signal(result.signal);
  out->set_program_not_found(result.program_not_found);
  out->set_stopped(result.stopped);
  out->set_message(Utf8Safe(result.message));
}

void ToProto(const engine::JobInfo& job, v1::Job* out) {
  out->set_id(job.id);
  out->set_build(job.build);
  out->set_group(job.group);
  for (const std::string& arg : job.argv) out->add_argv(Utf8Safe(arg));
  out->set_cwd(Utf8Safe(job.cwd));
  out->set_check(job.check);
  switch (job.state) {
    case engine::JobState::kQueued:
      out->set_state(v1::QUEUED);
      break;
    case engine::JobState::kRunning:
      out->set_state(v1::RUNNING);
      break;
    case engine::JobState::kFinished:
      out->set_state(v1::FINISHED);
      break;
  }
  ToProto(job.result, job.id, out->mutable_result());
  out->set_pid(job.pid);
  out->set_queued_at_ms(ToMillis(job.queued_at));
  out->set_started_at_ms(ToMillis(job.started_at));
  out->set_ended_at_ms(ToMillis(job.ended_at));
  out->set_caller(job.caller.principal);
}

void ToProto(const engine::BuildInfo& build, v1::Build* out) {
  out->set_name(build.name);
  switch (build.state) {
    case engine::BuildState::kRunning:
      out->set_state(v1::BUILD_RUNNING);
      break;
    case engine::BuildState::kDying:
      out->set_state(v1::BUILD_DYING);
      break;
    case engine::BuildState::kDead:
      out->set_state(v1::BUILD_DEAD);
      break;
  }
  out->set_queued(build.queued);
  out->set_running(build.running);
  out->set_succeeded(build.succeeded);
  out->set_failed(build.failed);
  out->set_cancelled(build.cancelled);
  out->set_submitted(build.submitted);
  if (build.failure.has_value()) {
    v1::Failure* failure = out->mutable_failure();
    failure->set_reason(Utf8Safe(build.failure->reason));
    if (build.failure->job.has_value()) ToProto(*build.failure->job, failure->mutable_job());
    failure->set_stdout(build.failure->stdout_text);
    failure->set_stderr(build.failure->stderr_text);
  }
}

v1::Stream ToProto(engine::OutputStream stream) {
  return stream == engine::OutputStream::kStdout ? v1::STDOUT : v1::STDERR;
}

}  // namespace distd::service
