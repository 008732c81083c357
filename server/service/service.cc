#include "server/service/service.h"

#include <unistd.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/engine/validate.h"
#include "server/service/convert.h"
#include "server/service/reactors.h"
#include "spdlog/spdlog.h"

namespace distd::service {
namespace {

constexpr char kVersion[] = "0.1.0";
constexpr size_t kMaxReasonBytes = 1000;

grpc::Status Denied(const absl::Status& status) {
  return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, std::string(status.message()));
}

// A unary call: authorised, answered by `fill` (which puts any refusal into the response's
// Error), finished OK. `fill` may instead take over the reactor and return false, to finish
// it later itself.
template <typename Fill>
grpc::ServerUnaryReactor* Unary(service::Peers* peers, grpc::CallbackServerContext* context,
                                Fill fill) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<engine::Caller> caller = peers->Authorize(context->peer());
  if (!caller.ok()) {
    reactor->Finish(Denied(caller.status()));
  } else if (fill(*caller, reactor)) {
    reactor->Finish(grpc::Status::OK);
  }
  return reactor;
}

}  // namespace

Service::Service(const ServiceOptions& options, engine::Engine* engine, Peers* peers)
    : options_(options), engine_(engine), peers_(peers), clock_(spawn::NewRealClock()) {
  SetMessageAllocatorFor_Submit(&submit_allocator_);
}

Service::~Service() { clock_.reset(); }

grpc::ServerWriteReactor<v1::RunEvent>* Service::Run(grpc::CallbackServerContext* context,
                                                     const v1::RunRequest* request) {
  absl::StatusOr<engine::Caller> caller = peers_->Authorize(context->peer());
  if (!caller.ok()) return NewFinishedReactor<v1::RunEvent>(Denied(caller.status()));
  return NewRunReactor(engine_, *caller, *request);
}

grpc::ServerUnaryReactor* Service::Submit(grpc::CallbackServerContext* context,
                                          const v1::SubmitRequest* request,
                                          v1::SubmitResponse* response) {
  return Unary(peers_, context, [&](const engine::Caller& caller, grpc::ServerUnaryReactor*) {
    std::string build = request->build();
    std::vector<engine::JobSpec> specs =
        ToJobSpecs(request->cwd(), request->env(), request->commands(), request->settings());
    // Everything is copied out: give the (possibly large) request back before the jobs are
    // queued, so that its memory is not resident alongside theirs.
    context->GetRpcAllocatorState()->FreeRequest();
    auto ids = engine_->Submit(build, std::move(specs), caller);
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
  absl::StatusOr<engine::Caller> caller = peers_->Authorize(context->peer());
  if (!caller.ok()) return NewFinishedReactor<v1::WaitEvent>(Denied(caller.status()));
  spdlog::debug("wait on build {} group \"{}\" by {}", request->build(), request->group(),
                caller->principal);
  return NewWaitReactor(engine_, clock_.get(), options_.progress_interval, options_.history,
                        *request);
}

grpc::ServerUnaryReactor* Service::Abort(grpc::CallbackServerContext* context,
                                         const v1::AbortRequest* request,
                                         v1::AbortResponse* response) {
  return Unary(peers_, context, [&](const engine::Caller&, grpc::ServerUnaryReactor* reactor) {
    const absl::Duration max_grace = engine::Limits().max_grace;
    if (request->grace_ms() < 0 || absl::Milliseconds(request->grace_ms()) > max_grace) {
      *response->mutable_error() = ToError(absl::InvalidArgumentError(
          absl::StrCat("the grace period must be from 0 to ", absl::FormatDuration(max_grace))));
      return true;
    }
    engine::AbortOptions options;
    options.reason = request->reason().substr(0, kMaxReasonBytes);
    options.mode = request->drain() ? engine::AbortMode::kDrain : engine::AbortMode::kKill;
    if (request->grace_ms() > 0) options.grace = absl::Milliseconds(request->grace_ms());
    // Answers once no job of the build runs; the abort goes on if the client leaves first.
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
  return Unary(peers_, context, [&](const engine::Caller&, grpc::ServerUnaryReactor*) {
    *response->mutable_error() = ToError(engine_->CancelJob(request->job_id()));
    return true;
  });
}

grpc::ServerUnaryReactor* Service::Status(grpc::CallbackServerContext* context,
                                          const v1::StatusRequest* request,
                                          v1::StatusResponse* response) {
  return Unary(peers_, context, [&](const engine::Caller&, grpc::ServerUnaryReactor*) {
    absl::StatusOr<engine::Snapshot> snapshot = engine_->TakeSnapshot(request->build());
    if (!snapshot.ok()) {
      *response->mutable_error() = ToError(snapshot.status());
      return true;
    }
    response->set_jobs(snapshot->pool.jobs);
    response->set_running(snapshot->pool.running);
    response->set_queued(snapshot->pool.queued);
    for (const engine::BuildInfo& build : snapshot->builds) {
      ToProto(build, response->add_builds());
    }
    for (const engine::JobInfo& job : snapshot->running) {
      ToProto(job, response->add_running_jobs());
    }
    if (options_.history != nullptr && request->history() > 0 && request->build().empty()) {
      for (const ClosedBuild& closed :
           options_.history->RecentlyClosed(std::min(request->history(), kMaxHistory))) {
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
  absl::StatusOr<engine::Caller> caller = peers_->Authorize(context->peer());
  if (!caller.ok()) return NewFinishedReactor<v1::LogsEvent>(Denied(caller.status()));
  return NewLogsReactor(engine_, options_.history, *request);
}

grpc::ServerUnaryReactor* Service::ListBuilds(grpc::CallbackServerContext* context,
                                              const v1::ListBuildsRequest* /*request*/,
                                              v1::ListBuildsResponse* response) {
  return Unary(peers_, context, [&](const engine::Caller&, grpc::ServerUnaryReactor*) {
    for (const engine::BuildInfo& build : engine_->ListBuilds()) {
      ToProto(build, response->add_builds());
    }
    return true;
  });
}

grpc::ServerUnaryReactor* Service::CloseBuild(grpc::CallbackServerContext* context,
                                              const v1::CloseBuildRequest* request,
                                              v1::CloseBuildResponse* response) {
  return Unary(peers_, context, [&](const engine::Caller&, grpc::ServerUnaryReactor*) {
    *response->mutable_error() = ToError(engine_->Close(request->build()));
    return true;
  });
}

grpc::ServerUnaryReactor* Service::Ping(grpc::CallbackServerContext* context,
                                        const v1::PingRequest* /*request*/,
                                        v1::PingResponse* response) {
  return Unary(peers_, context, [&](const engine::Caller&, grpc::ServerUnaryReactor*) {
    response->set_version(kVersion);
    response->set_pid(getpid());
    response->set_jobs(engine_->Pool().jobs);
    response->set_uid(getuid());
    return true;
  });
}

}  // namespace distd::service
