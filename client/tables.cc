#include "client/tables.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "client/print.h"

namespace distd::client {

std::string BuildStateName(v1::BuildState state) {
  switch (state) {
    case v1::BUILD_RUNNING:
      return "running";
    case v1::BUILD_DYING:
      return "dying";
    case v1::BUILD_DEAD:
      return "dead";
    default:
      return absl::StrCat("state ", static_cast<int>(state));
  }
}

std::string FormatBuilds(const google::protobuf::RepeatedPtrField<v1::Build>& builds, bool colour) {
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"BUILD", "STATE", "QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED",
                  "SUBMITTED", "FAILURE"});
  for (const v1::Build& build : builds) {
    const Colour state = build.state() == v1::BUILD_RUNNING ? Colour::kGreen : Colour::kRed;
    rows.push_back({OneLine(build.name()), Paint(BuildStateName(build.state()), state, colour),
                    absl::StrCat(build.queued()), absl::StrCat(build.running()),
                    absl::StrCat(build.succeeded()), absl::StrCat(build.failed()),
                    absl::StrCat(build.cancelled()), absl::StrCat(build.submitted()),
                    build.has_failure()
                        ? Paint(OneLine(build.failure().reason()), Colour::kRed, colour)
                        : ""});
  }
  return FormatTable(rows);
}

std::string FormatHistory(const google::protobuf::RepeatedPtrField<v1::Build>& builds, bool colour,
                          absl::Time now) {
  std::vector<std::vector<std::string>> rows;
  rows.push_back(
      {"CLOSED", "BUILD", "OUTCOME", "SUCCEEDED", "FAILED", "CANCELLED", "SUBMITTED", "FAILURE"});
  for (const v1::Build& build : builds) {
    std::string ago = "-";
    if (build.closed_at_ms() > 0) {
      ago = absl::StrCat(FormatElapsed(now - absl::FromUnixMillis(build.closed_at_ms())), " ago");
    }
    rows.push_back({ago, OneLine(build.name()),
                    build.has_failure() ? Paint("failed", Colour::kRed, colour)
                                        : Paint("succeeded", Colour::kGreen, colour),
                    absl::StrCat(build.succeeded()), absl::StrCat(build.failed()),
                    absl::StrCat(build.cancelled()), absl::StrCat(build.submitted()),
                    build.has_failure() ? OneLine(build.failure().reason()) : ""});
  }
  return FormatTable(rows);
}

std::string FormatRunningJobs(const google::protobuf::RepeatedPtrField<v1::Job>& jobs,
                              absl::Time now) {
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"JOB", "BUILD", "PID", "ELAPSED", "COMMAND"});
  for (const v1::Job& job : jobs) {
    std::string elapsed = "-";
    if (job.started_at_ms() > 0) {
      elapsed = FormatElapsed(now - absl::FromUnixMillis(job.started_at_ms()));
    }
    rows.push_back({absl::StrCat(job.id()), OneLine(job.build()),
                    job.pid() > 0 ? absl::StrCat(job.pid()) : "-", elapsed,
                    OneLine(ShellJoin(job.argv()))});
  }
  return FormatTable(rows);
}

}  // namespace distd::client
