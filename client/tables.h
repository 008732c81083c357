// The tables of status and build list.
#ifndef DISTD_CLIENT_TABLES_H_
#define DISTD_CLIENT_TABLES_H_

#include <string>

#include "absl/time/time.h"
#include "distd/v1/distd.pb.h"

namespace distd::client {

// "running", "dying", "dead".
std::string BuildStateName(v1::BuildState state);

// One row per build: name, state, its jobs by state, and its first failure.
// With `colour`, states and outcomes are coloured (see ColourOn).
std::string FormatBuilds(const google::protobuf::RepeatedPtrField<v1::Build>& builds,
                         bool colour = false);
// Closed builds, most recent first, with when they were closed and how they ended.
std::string FormatHistory(const google::protobuf::RepeatedPtrField<v1::Build>& builds, bool colour,
                          absl::Time now);

// One row per running job: id, build, pid, time since it started (by `now`), command.
std::string FormatRunningJobs(const google::protobuf::RepeatedPtrField<v1::Job>& jobs,
                              absl::Time now);

}  // namespace distd::client

#endif  // DISTD_CLIENT_TABLES_H_
