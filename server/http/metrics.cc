#include "server/http/metrics.h"

#include <sstream>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "prometheus/metric_family.h"
#include "prometheus/text_serializer.h"
#include "server/http/access.h"

namespace distd::http {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

// From a millisecond to half an hour: compiles, links, test suites.
const prometheus::Histogram::BucketBoundaries kJobBuckets = {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1,
                                                             5,     10,    30,   60,   300, 1800};
// How long a stop takes: milliseconds when it goes well, the grace when a job ignores SIGTERM.
const prometheus::Histogram::BucketBoundaries kStopBuckets = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};

MetricFamily Gauge(std::string name, std::string help) {
  MetricFamily family;
  family.name = std::move(name);
  family.help = std::move(help);
  family.type = MetricType::Gauge;
  return family;
}

void Add(MetricFamily* family, double value, std::vector<ClientMetric::Label> labels = {}) {
  ClientMetric metric;
  metric.label = std::move(labels);
  metric.gauge.value = value;
  family->metric.push_back(std::move(metric));
}

double Seconds(absl::Time from, absl::Time to) {
  return to > from ? absl::ToDoubleSeconds(to - from) : 0.0;
}

}  // namespace

Metrics::Metrics(engine::Engine* engine)
    : engine_(engine), registry_(std::make_shared<prometheus::Registry>()) {
  queued_ = &prometheus::BuildCounter()
                 .Name("distd_jobs_queued_total")
                 .Help("Jobs submitted")
                 .Register(*registry_)
                 .Add({});
  auto& finished = prometheus::BuildCounter()
                       .Name("distd_jobs_finished_total")
                       .Help("Jobs that ended, by how")
                       .Register(*registry_);
  for (engine::Outcome outcome :
       {engine::Outcome::kSucceeded, engine::Outcome::kFailed, engine::Outcome::kKilled,
        engine::Outcome::kTimedOut, engine::Outcome::kCancelled, engine::Outcome::kCannotStart,
        engine::Outcome::kLost}) {
    finished_[outcome] = &finished.Add({{"outcome", engine::OutcomeName(outcome)}});
  }
  auto& spawn = prometheus::BuildCounter()
                    .Name("distd_spawn_errors_total")
                    .Help("Jobs that could not start")
                    .Register(*registry_);
  spawn_not_found_ = &spawn.Add({{"reason", "not_found"}});
  spawn_other_ = &spawn.Add({{"reason", "other"}});
  auto& stopped = prometheus::BuildCounter()
                      .Name("distd_builds_stopped_total")
                      .Help("Builds that died, by a checked job's failure or by an abort")
                      .Register(*registry_);
  stopped_by_failure_ = &stopped.Add({{"cause", "failure"}});
  stopped_by_abort_ = &stopped.Add({{"cause", "abort"}});
  queue_wait_ = &prometheus::BuildHistogram()
                     .Name("distd_job_queue_wait_seconds")
                     .Help("From a job's submission to its start")
                     .Register(*registry_)
                     .Add({}, kJobBuckets);
  run_time_ = &prometheus::BuildHistogram()
                   .Name("distd_job_run_seconds")
                   .Help("From a job's start to its end")
                   .Register(*registry_)
                   .Add({}, kJobBuckets);
  auto& stop = prometheus::BuildHistogram()
                   .Name("distd_build_stop_seconds")
                   .Help("From a build's failure or abort until nothing of it runs")
                   .Register(*registry_);
  stop_after_failure_ = &stop.Add({{"cause", "failure"}}, kStopBuckets);
  stop_after_abort_ = &stop.Add({{"cause", "abort"}}, kStopBuckets);
}

std::string Metrics::Scrape() {
  const engine::PoolInfo pool = engine_->Pool();
  const std::vector<engine::BuildInfo> builds = engine_->ListBuilds(/*with_output=*/false);
  std::vector<MetricFamily> families = registry_->Collect();
  MetricFamily jobs = Gauge("distd_pool_jobs", "The pool's bound (--jobs)");
  Add(&jobs, pool.jobs);
  MetricFamily running = Gauge("distd_pool_running", "Jobs running");
  Add(&running, static_cast<double>(pool.running));
  MetricFamily queued = Gauge("distd_pool_queued", "Jobs queued");
  Add(&queued, static_cast<double>(pool.queued));
  MetricFamily lent = Gauge("distd_pool_lent", "Slots lent to running jobs as jobserver tokens");
  Add(&lent, static_cast<double>(pool.lent));
  MetricFamily alive = Gauge("distd_builds", "Builds distd knows (not closed), by state");
  MetricFamily build_queued = Gauge("distd_build_jobs_queued", "Jobs queued, by build");
  MetricFamily build_running = Gauge("distd_build_jobs_running", "Jobs running, by build");
  int by_state[3] = {0, 0, 0};
  for (const engine::BuildInfo& build : builds) {
    ++by_state[static_cast<int>(build.state)];
    if (build.queued == 0 && build.running == 0) continue;
    Add(&build_queued, static_cast<double>(build.queued), {{"build", build.name}});
    Add(&build_running, static_cast<double>(build.running), {{"build", build.name}});
  }
  for (engine::BuildState state :
       {engine::BuildState::kRunning, engine::BuildState::kDying, engine::BuildState::kDead}) {
    Add(&alive, by_state[static_cast<int>(state)], {{"state", engine::BuildStateName(state)}});
  }
  for (MetricFamily* family :
       {&jobs, &running, &queued, &lent, &alive, &build_queued, &build_running}) {
    families.push_back(std::move(*family));
  }
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, families);
  return out.str();
}

Route Metrics::MetricsRoute(uid_t own_uid, const service::Remote* remote) {
  Route route;
  route.serve = [this, own_uid, remote](const Request& request) {
    absl::StatusOr<service::Authorized> caller = Authorize(request, own_uid, remote);
    if (!caller.ok()) return Refusal(caller.status());
    if (absl::Status s = service::MayAdminister(*caller, "reading the metrics"); !s.ok()) {
      return Refusal(s);
    }
    return Response{200, "text/plain; version=0.0.4; charset=utf-8", Scrape()};
  };
  return route;
}

void Metrics::OnJobsQueued(absl::Span<const engine::JobInfo> jobs) {
  queued_->Increment(static_cast<double>(jobs.size()));
}

void Metrics::OnJobStarted(const engine::JobInfo& job) {
  queue_wait_->Observe(Seconds(job.queued_at, job.started_at));
}

void Metrics::OnJobFinished(const engine::JobInfo& job) {
  auto counter = finished_.find(job.result.outcome);
  if (counter != finished_.end()) counter->second->Increment();
  if (job.result.outcome == engine::Outcome::kCannotStart) {
    (job.result.program_not_found ? spawn_not_found_ : spawn_other_)->Increment();
  }
  // One that could not start never ran (though its start was noted before the spawn).
  if (job.started_at != absl::InfinitePast() &&
      job.result.outcome != engine::Outcome::kCannotStart) {
    run_time_->Observe(Seconds(job.started_at, job.ended_at));
  }
}

void Metrics::OnJobsCancelled(absl::string_view /*build*/, absl::Span<const engine::JobId> ids) {
  finished_.at(engine::Outcome::kCancelled)->Increment(static_cast<double>(ids.size()));
}

void Metrics::OnBuildDying(const engine::BuildInfo& build) {
  const bool by_failure = build.failure.has_value() && build.failure->job.has_value();
  (by_failure ? stopped_by_failure_ : stopped_by_abort_)->Increment();
  absl::MutexLock lock(&mu_);
  dying_since_[build.name] = engine_->clock()->Now();
}

void Metrics::OnBuildDead(const engine::BuildInfo& build) {
  absl::Time since;
  {
    absl::MutexLock lock(&mu_);
    auto it = dying_since_.find(build.name);
    if (it == dying_since_.end()) return;
    since = it->second;
    dying_since_.erase(it);
  }
  const bool by_failure = build.failure.has_value() && build.failure->job.has_value();
  (by_failure ? stop_after_failure_ : stop_after_abort_)
      ->Observe(Seconds(since, engine_->clock()->Now()));
}

void Metrics::OnBuildClosed(absl::string_view build) {
  absl::MutexLock lock(&mu_);
  dying_since_.erase(build);
}

}  // namespace distd::http
