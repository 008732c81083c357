// What distd remembers beyond the engine's memory (its journal), as the service asks it.
#ifndef DISTD_SERVER_SERVICE_HISTORY_H_
#define DISTD_SERVER_SERVICE_HISTORY_H_

#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/engine/engine.h"
#include "server/engine/types.h"

namespace distd::service {

struct ClosedBuild {
  engine::BuildInfo build;
  absl::Time closed_at;
};

// Called from any thread.
class History {
 public:
  virtual ~History() = default;
  // The latest build of that name, if there ever was one: for a build the engine does not
  // know (closed, or of an earlier distd). An error if that cannot be told (the journal
  // cannot be read, or is behind the engine and cannot catch up).
  virtual absl::StatusOr<std::optional<engine::BuildInfo>> PastBuild(absl::string_view name) = 0;
  // A job the engine does not have (its build closed, or of an earlier distd), or whose
  // output it dropped: its record and what the journal kept of its output; nullopt if the
  // journal never had it. An error as for PastBuild.
  virtual absl::StatusOr<std::optional<engine::JobOutput>> PastJob(engine::JobId id) = 0;
  // Closed builds, most recent first, at most `limit`; a read that fails is logged and
  // answers none.
  virtual std::vector<ClosedBuild> RecentlyClosed(int limit) = 0;
};

}  // namespace distd::service

#endif  // DISTD_SERVER_SERVICE_HISTORY_H_
