// The dashboard: a read-only live page of the builds, the queue, the running jobs with their
// elapsed time, each failure with what its job printed, and the builds closed lately (from
// the journal). The page (dashboard_assets.cc) is plain HTML and script with no framework; it
// follows /events, server-sent events that carry the whole state as JSON whenever it changes
// (checked four times a second), and /api/state gives the same once.
//
// Who may read it is decided as for the API (access.h): distd's own uid sees everything; a
// token sees the builds its limits allow. The page and its script hold no data and are
// served to anyone who reaches the port.
#ifndef DISTD_SERVER_HTTP_DASHBOARD_H_
#define DISTD_SERVER_HTTP_DASHBOARD_H_

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/engine/engine.h"
#include "server/http/server.h"
#include "server/service/history.h"
#include "server/service/remote.h"

namespace distd::http {

// What the page shows of each stream of a failed job: its end.
inline constexpr size_t kFailureTail = 16 * 1024;

class Dashboard {
 public:
  // `history` and `remote` may be null (no journal; no tokens).
  Dashboard(engine::Engine* engine, service::History* history, uid_t own_uid,
            const service::Remote* remote);

  std::map<std::string, Route> Routes();

  // The state as `caller` may see it, as a JSON object, without the time it was taken.
  std::string StateJson(const service::Authorized& caller);

 private:
  struct FailureOutput {
    std::string reason;
    std::string stdout_tail;
    std::string stderr_tail;
  };
  const FailureOutput& OutputOf(const engine::BuildInfo& build) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The builds closed lately; `open` is the number of builds open now.
  std::vector<service::ClosedBuild> History(size_t open) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Response Authorized(const Request& request, service::Authorized* caller);

  engine::Engine* const engine_;
  service::History* const history_;
  const uid_t own_uid_;
  const service::Remote* const remote_;
  absl::Mutex mu_;
  // The ends of the failures' output, by build: fetched once, not at every look.
  absl::flat_hash_map<std::string, FailureOutput> failures_ ABSL_GUARDED_BY(mu_);
  std::vector<service::ClosedBuild> history_cache_ ABSL_GUARDED_BY(mu_);
  absl::Time history_read_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  size_t history_builds_ ABSL_GUARDED_BY(mu_) = 0;  // open builds when it was read
};

// The page, its script and its icon.
extern const char kDashboardHtml[];
extern const char kDashboardScript[];
extern const char kDashboardIcon[];

}  // namespace distd::http

#endif  // DISTD_SERVER_HTTP_DASHBOARD_H_
