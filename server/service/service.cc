#include "server/service/service.h"

#include <unistd.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/engine/validate.h"
#include "server/service/convert.h"
#include "server/service/reactors.h"
#include "server/service/remote.h"
#include "spdlog/spdlog.h"

namespace distd::service {
namespace {

constexpr char kVersion[] = "0.1.0";
constexpr size_t kMaxReasonBytes = 1000;

grpc::Status Denied(const absl::Status& status) {
  // absl's codes are gRPC's.
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

// A unary call: authorised, answered by `fill` (which puts any refusal into the response's
// Error), finished OK. `fill` may instead take over the reactor and return false, to finish
// it later itself; or return a refusal of the call itself (PERMISSION_DENIED).
template <typename Fill>
grpc::ServerUnaryReactor* Unary(service::Peers* peers, grpc::CallbackServerContext* context,
                                Fill fill) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<Authorized> who = peers->Authorize(*context);
  if (!who.ok()) {
    reactor->Finish(Denied(who.status()));
    return reactor;
  }
  absl::StatusOr<bool> done = fill(*who, reactor);
  if (!done.ok()) {
    reactor->Finish(Denied(done.status()));
  } else if (*done) {
    reactor->Finish(grpc::Status::OK);
  }
  return reactor;
}

// Whether a build of `name` is one `who` may see in a listing.
bool Visible(const Authorized& who, absl::string_view name) { return MayActOn(who, name).ok(); }

}  // namespace

Service::Service(const ServiceOptions& options, engine::Engine* engine, Peers* peers)
    : options_(options), engine_(engine), peers_(peers), clock_(spawn::NewRealClock()) {
  SetMessageAllocatorFor_Submit(&submit_allocator_);
}

Service::~Service() { clock_.reset(); }

absl::StatusOr<std::shared_ptr<void>> Service::TakeStream(const Authorized& who) {
  if (!who.remote) return std::shared_ptr<void>();
  std::shared_ptr<StreamCounts> counts = streams_;
  const std::string& principal = who.caller.principal;
  {
    absl::MutexLock lock(&counts->mu);
    int& open = counts->open[principal];
    if (open >= options_.max_streams_per_client) {
      return absl::ResourceExhaustedError(
          absl::StrCat(principal, " has ", open, " streams open (run, wait, logs); the limit is ",
                       options_.max_streams_per_client));
    }
    ++open;
  }
  // Any non-null pointer: what counts is the deleter.
  return std::shared_ptr<void>(counts.get(), [counts, principal](void*) {
    absl::MutexLock lock(&counts->mu);
    auto it = counts->open.find(principal);
    if (--it->second == 0) counts->open.erase(it);
  });
}

absl::StatusOr<Service::Stream> Service::OpenStream(
    const grpc::CallbackServerContext& context,
    absl::FunctionRef<absl::Status(const Authorized&)> allowed) {
  absl::StatusOr<Authorized> who = peers_->Authorize(context);
  if (!who.ok()) return who.status();
  if (absl::Status s = allowed(*who); !s.ok()) return s;
  absl::StatusOr<std::shared_ptr<void>> hold = TakeStream(*who);
  if (!hold.ok()) return hold.status();
  return Stream{*std::move(who), *std::move(hold)};
}

absl::Status Service::MayActOnJob(const Authorized& who, engine::JobId id) {
  if (who.access.builds.empty() || who.access.admin) return absl::OkStatus();
  // A job of another build is answered as one that does not exist, so that ids do not tell
  // what the caller may not see; one distd does not know is refused here too, before it can
  // appear between this check and the call's own lookup.
  absl::Status not_found =
      absl::NotFoundError(absl::StrCat("no job ", id, " of ", who.caller.principal, "'s builds"));
  if (absl::StatusOr<engine::JobInfo> job = engine_->GetJob(id); job.ok()) {
    return MayActOn(who, job->build).ok() ? absl::OkStatus() : not_found;
  }
  if (options_.history != nullptr) {
    absl::StatusOr<std::optional<engine::JobOutput>> past = options_.history->PastJob(id);
    if (past.ok() && past->has_value() && MayActOn(who, (*past)->job.build).ok()) {
      return absl::OkStatus();
    }
  }
  return not_found;
}

grpc::ServerWriteReactor<v1::RunEvent>* Service::Run(grpc::CallbackServerContext* context,
                                                     const v1::RunRequest* request) {
  absl::StatusOr<Stream> stream =
      OpenStream(*context, [&](const Authorized& who) { return MayActOn(who, request->build()); });
  if (!stream.ok()) return NewFinishedReactor<v1::RunEvent>(Denied(stream.status()));
  return NewRunReactor(engine_, stream->who.caller, *request, std::move(stream->hold));
}

grpc::ServerUnaryReactor* Service::Submit(grpc::CallbackServerContext* context,
                                          const v1::SubmitRequest* request,
                                          v1::SubmitResponse* response) {
  return Unary(peers_, context,
               [&](const Authorized& who, grpc::ServerUnaryReactor*) -> absl::StatusOr<bool> {
                 if (absl::Status s = MayActOn(who, request->build()); !s.ok()) return s;
                 std::string build = request->build();
                 std::vector<engine::JobSpec> specs = ToJobSpecs(
                     request->cwd(), request->env(), request->commands(), request->settings());
                 // Everything is copied out: give the (possibly large) request back before
                 // the jobs are queued, so that its memory is not resident alongside theirs.
                 context->GetRpcAllocatorState()->FreeRequest();
                 auto ids = engine_->Submit(build, std::move(specs), who.caller);
                 if (ids.ok()) {
                   for (engine::JobId id : *ids) response->add_job_ids(id);
                 } else {
                   *response->mutable_error() = ToError(ids.status());
                 }
                 return true;
               });
}

grpc::ServerWriteReactor<v1::WaitEvent>* Service::Wait(grpc::CallbackServerContext* context,
                                                       const v1::WaitRequest* request) {
  absl::StatusOr<Stream> stream =
      OpenStream(*context, [&](const Authorized& who) { return MayActOn(who, request->build()); });
  if (!stream.ok()) return NewFinishedReactor<v1::WaitEvent>(Denied(stream.status()));
  spdlog::debug("wait on build {} group \"{}\" by {}", request->build(), request->group(),
                stream->who.caller.principal);
  return NewWaitReactor(engine_, clock_.get(), options_.progress_interval, options_.history,
                        *request, std::move(stream->hold));
}

grpc::ServerUnaryReactor* Service::Abort(grpc::CallbackServerContext* context,
                                         const v1::AbortRequest* request,
                                         v1::AbortResponse* response) {
  return Unary(
      peers_, context,
      [&](const Authorized& who, grpc::ServerUnaryReactor* reactor) -> absl::StatusOr<bool> {
        if (absl::Status s = MayActOn(who, request->build()); !s.ok()) return s;
        const absl::Duration max_grace = engine::Limits().max_grace;
        if (request->grace_ms() < 0 || absl::Milliseconds(request->grace_ms()) > max_grace) {
          *response->mutable_error() = ToError(absl::InvalidArgumentError(absl::StrCat(
              "the grace period must be from 0 to ", absl::FormatDuration(max_grace))));
          return true;
        }
        engine::AbortOptions options;
        options.reason = request->reason().substr(0, kMaxReasonBytes);
        options.mode = request->drain() ? engine::AbortMode::kDrain : engine::AbortMode::kKill;
        if (request->grace_ms() > 0) options.grace = absl::Milliseconds(request->grace_ms());
        // Answers once no job of the build runs; the abort goes on if the client
        // leaves first.
        engine_->AbortAsync(request->build(), options,
                            [reactor, response](absl::StatusOr<engine::BuildInfo> build) {
                              if (build.ok()) {
                                ToProto(*build, response->mutable_build());
                              } else {
                                *response->mutable_error() = ToError(build.status());
                              }
                              reactor->Finish(grpc::Status::OK);
                            });
        return false;
      });
}

grpc::ServerUnaryReactor* Service::CancelJob(grpc::CallbackServerContext* context,
                                             const v1::CancelJobRequest* request,
                                             v1::CancelJobResponse* response) {
  return Unary(peers_, context,
               [&](const Authorized& who, grpc::ServerUnaryReactor*) -> absl::StatusOr<bool> {
                 if (absl::Status s = MayActOnJob(who, request->job_id()); !s.ok()) return s;
                 *response->mutable_error() = ToError(engine_->CancelJob(request->job_id()));
                 return true;
               });
}

grpc::ServerUnaryReactor* Service::Status(grpc::CallbackServerContext* context,
                                          const v1::StatusRequest* request,
                                          v1::StatusResponse* response) {
  return Unary(
      peers_, context,
      [&](const Authorized& who, grpc::ServerUnaryReactor*) -> absl::StatusOr<bool> {
        if (!request->build().empty()) {
          if (absl::Status s = MayActOn(who, request->build()); !s.ok()) return s;
        }
        absl::StatusOr<engine::Snapshot> snapshot = engine_->TakeSnapshot(request->build());
        if (!snapshot.ok()) {
          *response->mutable_error() = ToError(snapshot.status());
          return true;
        }
        response->set_jobs(snapshot->pool.jobs);
        response->set_running(snapshot->pool.running);
        response->set_queued(snapshot->pool.queued);
        response->set_lent(snapshot->pool.lent);
        // A caller limited to some builds sees only those (and the pool's totals).
        for (const engine::BuildInfo& build : snapshot->builds) {
          if (Visible(who, build.name)) ToProto(build, response->add_builds());
        }
        for (const engine::JobInfo& job : snapshot->running) {
          if (Visible(who, job.build)) ToProto(job, response->add_running_jobs());
        }
        if (options_.history != nullptr && request->history() > 0 && request->build().empty()) {
          for (const ClosedBuild& closed :
               options_.history->RecentlyClosed(std::min(request->history(), kMaxHistory))) {
            if (!Visible(who, closed.build.name)) continue;
            v1::Build* build = response->add_history();
            ToProto(closed.build, build);
            build->set_closed_at_ms(absl::ToUnixMillis(closed.closed_at));
          }
        }
        return true;
      });
}

grpc::ServerWriteReactor<v1::LogsEvent>* Service::Logs(grpc::CallbackServerContext* context,
                                                       const v1::LogsRequest* request) {
  absl::StatusOr<Stream> stream = OpenStream(
      *context, [&](const Authorized& who) { return MayActOnJob(who, request->job_id()); });
  if (!stream.ok()) return NewFinishedReactor<v1::LogsEvent>(Denied(stream.status()));
  return NewLogsReactor(engine_, options_.history, *request, std::move(stream->hold));
}

grpc::ServerUnaryReactor* Service::ListBuilds(grpc::CallbackServerContext* context,
                                              const v1::ListBuildsRequest* /*request*/,
                                              v1::ListBuildsResponse* response) {
  return Unary(peers_, context,
               [&](const Authorized& who, grpc::ServerUnaryReactor*) -> absl::StatusOr<bool> {
                 for (const engine::BuildInfo& build : engine_->ListBuilds()) {
                   if (Visible(who, build.name)) ToProto(build, response->add_builds());
                 }
                 return true;
               });
}

grpc::ServerUnaryReactor* Service::CloseBuild(grpc::CallbackServerContext* context,
                                              const v1::CloseBuildRequest* request,
                                              v1::CloseBuildResponse* response) {
  return Unary(peers_, context,
               [&](const Authorized& who, grpc::ServerUnaryReactor*) -> absl::StatusOr<bool> {
                 if (absl::Status s = MayAdminister(who, "closing a build"); !s.ok()) return s;
                 *response->mutable_error() = ToError(engine_->Close(request->build()));
                 return true;
               });
}

grpc::ServerUnaryReactor* Service::Ping(grpc::CallbackServerContext* context,
                                        const v1::PingRequest* /*request*/,
                                        v1::PingResponse* response) {
  return Unary(peers_, context,
               [&](const Authorized&, grpc::ServerUnaryReactor*) -> absl::StatusOr<bool> {
                 response->set_version(kVersion);
                 response->set_pid(getpid());
                 response->set_jobs(engine_->Pool().jobs);
                 response->set_uid(getuid());
                 return true;
               });
}

}  // namespace distd::service
