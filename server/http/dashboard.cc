#include "server/http/dashboard.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/http/access.h"
#include "server/http/json.h"
#include "spdlog/spdlog.h"

namespace distd::http {
namespace {

constexpr int kHistoryShown = 20;
constexpr absl::Duration kLookEvery = absl::Milliseconds(250);
constexpr absl::Duration kHistoryEvery = absl::Seconds(5);
// An event at least this often, so that a proxy or the browser does not drop the stream.
constexpr absl::Duration kKeepAlive = absl::Seconds(15);

std::string Tail(const std::string& text) {
  if (text.size() <= kFailureTail) return text;
  return absl::StrCat("[... ", text.size() - kFailureTail, " bytes before]\n",
                      text.substr(text.size() - kFailureTail));
}

void AppendArgv(std::string* out, const std::vector<std::string>& argv) {
  out->push_back('[');
  for (size_t i = 0; i < argv.size(); ++i) {
    if (i > 0) out->push_back(',');
    AppendJsonString(out, argv[i]);
  }
  out->push_back(']');
}

void AppendCounts(std::string* out, const engine::BuildInfo& build) {
  absl::StrAppend(out, "\"queued\":", build.queued, ",\"running\":", build.running,
                  ",\"succeeded\":", build.succeeded, ",\"failed\":", build.failed,
                  ",\"cancelled\":", build.cancelled, ",\"submitted\":", build.submitted);
}

}  // namespace

Dashboard::Dashboard(engine::Engine* engine, service::History* history, uid_t own_uid,
                     const service::Remote* remote)
    : engine_(engine), history_(history), own_uid_(own_uid), remote_(remote) {}

const Dashboard::FailureOutput& Dashboard::OutputOf(const engine::BuildInfo& build) {
  FailureOutput& cached = failures_[build.name];
  if (cached.reason == build.failure->reason && !cached.reason.empty()) return cached;
  cached = FailureOutput{build.failure->reason, "", ""};
  absl::StatusOr<engine::BuildInfo> full = engine_->GetBuild(build.name);
  if (full.ok() && full->failure.has_value()) {
    cached.stdout_tail = Tail(full->failure->stdout_text);
    cached.stderr_tail = Tail(full->failure->stderr_text);
  }
  return cached;
}

std::vector<service::ClosedBuild> Dashboard::History(size_t open) {
  if (history_ == nullptr) return {};
  // Read again when a build may have closed, else now and then.
  if (absl::Now() - history_read_ >= kHistoryEvery || open != history_builds_) {
    history_cache_ = history_->RecentlyClosed(kHistoryShown);
    history_read_ = absl::Now();
    history_builds_ = open;
  }
  return history_cache_;
}

std::string Dashboard::StateJson(const service::Authorized& caller) {
  absl::StatusOr<engine::Snapshot> snapshot = engine_->TakeSnapshot("", /*with_output=*/false);
  if (!snapshot.ok()) return "{}";
  std::string out;
  absl::StrAppend(&out, "{\"pool\":{\"jobs\":", snapshot->pool.jobs,
                  ",\"running\":", snapshot->pool.running, ",\"queued\":", snapshot->pool.queued,
                  ",\"lent\":", snapshot->pool.lent, "},\"builds\":[");
  absl::MutexLock lock(&mu_);
  absl::flat_hash_map<std::string, FailureOutput> kept;
  bool first = true;
  for (const engine::BuildInfo& build : snapshot->builds) {
    if (!service::MayActOn(caller, build.name).ok()) continue;
    if (!first) out.push_back(',');
    first = false;
    out.append("{\"name\":");
    AppendJsonString(&out, build.name);
    absl::StrAppend(&out, ",\"state\":\"", engine::BuildStateName(build.state), "\",");
    AppendCounts(&out, build);
    if (build.failure.has_value()) {
      const FailureOutput& output = OutputOf(build);
      out.append(",\"failure\":{\"reason\":");
      AppendJsonString(&out, build.failure->reason);
      if (build.failure->job.has_value()) {
        absl::StrAppend(&out, ",\"job\":", build.failure->job->id, ",\"argv\":");
        AppendArgv(&out, build.failure->job->argv);
      }
      out.append(",\"stdout\":");
      AppendJsonString(&out, output.stdout_tail);
      out.append(",\"stderr\":");
      AppendJsonString(&out, output.stderr_tail);
      out.push_back('}');
      kept[build.name] = output;
    }
    out.push_back('}');
  }
  // The failures of builds still open are kept, those this caller may not see included.
  for (const engine::BuildInfo& build : snapshot->builds) {
    auto cached = failures_.find(build.name);
    if (build.failure.has_value() && cached != failures_.end() && !kept.contains(build.name)) {
      kept[build.name] = cached->second;
    }
  }
  out.append("],\"running\":[");
  first = true;
  for (const engine::JobInfo& job : snapshot->running) {
    if (!service::MayActOn(caller, job.build).ok()) continue;
    if (!first) out.push_back(',');
    first = false;
    absl::StrAppend(&out, "{\"id\":", job.id, ",\"build\":");
    AppendJsonString(&out, job.build);
    out.append(",\"argv\":");
    AppendArgv(&out, job.argv);
    out.append(",\"cwd\":");
    AppendJsonString(&out, job.cwd);
    absl::StrAppend(&out, ",\"started_ms\":", absl::ToUnixMillis(job.started_at), "}");
  }
  out.append("],\"history\":[");
  first = true;
  for (const service::ClosedBuild& closed : History(snapshot->builds.size())) {
    if (!service::MayActOn(caller, closed.build.name).ok()) continue;
    if (!first) out.push_back(',');
    first = false;
    out.append("{\"name\":");
    AppendJsonString(&out, closed.build.name);
    absl::StrAppend(&out, ",\"closed_ms\":", absl::ToUnixMillis(closed.closed_at), ",");
    AppendCounts(&out, closed.build);
    if (closed.build.failure.has_value()) {
      out.append(",\"failure\":");
      AppendJsonString(&out, closed.build.failure->reason);
    }
    out.push_back('}');
  }
  out.append("]}");
  failures_ = std::move(kept);
  return out;
}

Response Dashboard::Authorized(const Request& request, service::Authorized* caller) {
  absl::StatusOr<service::Authorized> authorized = Authorize(request, own_uid_, remote_);
  if (!authorized.ok()) return Refusal(authorized.status());
  *caller = *std::move(authorized);
  return Response{};
}

std::map<std::string, Route> Dashboard::Routes() {
  std::map<std::string, Route> routes;
  routes["/"].serve = [](const Request&) {
    return Response{200, "text/html; charset=utf-8", kDashboardHtml};
  };
  routes["/dashboard.js"].serve = [](const Request&) {
    return Response{200, "text/javascript; charset=utf-8", kDashboardScript};
  };
  routes["/favicon.svg"].serve = [](const Request&) {
    return Response{200, "image/svg+xml", kDashboardIcon};
  };
  routes["/api/state"].serve = [this](const Request& request) {
    service::Authorized caller;
    Response refusal = Authorized(request, &caller);
    if (refusal.status != 200) return refusal;
    return Response{200, "application/json", StateJson(caller)};
  };
  routes["/events"].serve = [this](const Request& request) {
    service::Authorized caller;
    return Authorized(request, &caller);
  };
  routes["/events"].stream = [this](const Request& request, EventStream& stream) {
    service::Authorized caller;
    if (Authorized(request, &caller).status != 200) return;
    std::string last;
    absl::Time sent = absl::InfinitePast();
    do {
      std::string state = StateJson(caller);
      if (state != last || absl::Now() - sent >= kKeepAlive) {
        // The time it was taken, for the elapsed times the page counts on from.
        const std::string event =
            absl::StrCat("{\"now_ms\":", absl::ToUnixMillis(absl::Now()), ",", state.substr(1));
        if (!stream.Send("state", event)) return;
        last = std::move(state);
        sent = absl::Now();
      }
    } while (stream.Wait(kLookEvery));
  };
  return routes;
}

}  // namespace distd::http
