// distd's metrics, in the Prometheus text format (prometheus-cpp makes and writes them):
//
//   distd_pool_jobs, distd_pool_running, distd_pool_queued        the pool, as of the scrape
//   distd_builds{state}                                           builds alive, by state
//   distd_build_jobs_queued{build}, distd_build_jobs_running{build}  of each build with work
//   distd_jobs_queued_total                                       jobs submitted
//   distd_jobs_finished_total{outcome}                            every end, once
//   distd_spawn_errors_total{reason="not_found"|"other"}          jobs that could not start
//   distd_builds_stopped_total{cause="failure"|"abort"}           builds that died
//   distd_job_queue_wait_seconds                                  queued to started
//   distd_job_run_seconds                                         started to ended
//   distd_build_stop_seconds{cause}                               from the failure or the
//       abort until nothing of the build runs: what fail-fast and abort cost
//
// Counts and times come from the engine's events (an EngineObserver: a few atomic additions
// under the engine's lock); the gauges are read from the engine at each scrape.
#ifndef DISTD_SERVER_HTTP_METRICS_H_
#define DISTD_SERVER_HTTP_METRICS_H_

#include <map>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "server/engine/engine.h"
#include "server/engine/observer.h"
#include "server/http/server.h"
#include "server/service/remote.h"

namespace distd::http {

class Metrics final : public engine::EngineObserver {
 public:
  // Observe `engine` from AddObserver until RemoveObserver; `engine` outlives this.
  explicit Metrics(engine::Engine* engine);

  // The text a scrape gets.
  std::string Scrape();

  // The route of /metrics: distd's own uid, or an admin token (the labels name every build).
  Route MetricsRoute(uid_t own_uid, const service::Remote* remote);

  void OnJobsQueued(absl::Span<const engine::JobInfo> jobs) override;
  void OnJobStarted(const engine::JobInfo& job) override;
  void OnJobFinished(const engine::JobInfo& job) override;
  void OnJobsCancelled(absl::string_view build, absl::Span<const engine::JobId> ids) override;
  void OnBuildDying(const engine::BuildInfo& build) override;
  void OnBuildDead(const engine::BuildInfo& build) override;
  void OnBuildClosed(absl::string_view build) override;

 private:
  engine::Engine* const engine_;
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Counter* queued_;
  std::map<engine::Outcome, prometheus::Counter*> finished_;
  prometheus::Counter* spawn_not_found_;
  prometheus::Counter* spawn_other_;
  prometheus::Counter* stopped_by_failure_;
  prometheus::Counter* stopped_by_abort_;
  prometheus::Histogram* queue_wait_;
  prometheus::Histogram* run_time_;
  prometheus::Histogram* stop_after_failure_;
  prometheus::Histogram* stop_after_abort_;
  absl::Mutex mu_;
  // When each dying build began to die.
  absl::flat_hash_map<std::string, absl::Time> dying_since_ ABSL_GUARDED_BY(mu_);
};

}  // namespace distd::http

#endif  // DISTD_SERVER_HTTP_METRICS_H_
