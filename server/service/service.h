// The gRPC service over the engine: translation only. Every call is authorised against the
// peer's credentials, turned into engine calls, and answered with what the engine says;
// scheduling and the dying protocol stay in the engine.
#ifndef DISTD_SERVER_SERVICE_SERVICE_H_
#define DISTD_SERVER_SERVICE_SERVICE_H_

#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "distd/v1/distd.grpc.pb.h"
#include "server/engine/engine.h"
#include "server/service/arena_allocator.h"
#include "server/service/history.h"
#include "server/service/peers.h"
#include "server/spawn/clock.h"

namespace distd::service {

// Large enough for a batch of 100,000 commands with their environment; an oversized argument
// gets the engine's message rather than gRPC's.
inline constexpr int kMaxRequestBytes = 256 * 1024 * 1024;
// Closed builds one status lists at most.
inline constexpr int32_t kMaxHistory = 100;

struct ServiceOptions {
  // How often a Wait with progress reports, at most.
  absl::Duration progress_interval = absl::Milliseconds(200);
  // What is remembered beyond the engine; null: nothing. Must outlive the service.
  History* history = nullptr;
  // Streams (run, wait, logs) open at once per remote caller; beyond it a stream is refused
  // with RESOURCE_EXHAUSTED. Local callers are not counted: they are distd's own user.
  int max_streams_per_client = 256;
};

class Service final : public v1::Distd::CallbackService {
 public:
  // `engine` and `peers` must outlive the service. The service's own clock (for progress
  // reports) is stopped by its destructor.
  Service(const ServiceOptions& options, engine::Engine* engine, Peers* peers);
  ~Service() override;

  grpc::ServerWriteReactor<v1::RunEvent>* Run(grpc::CallbackServerContext* context,
                                              const v1::RunRequest* request) override;
  grpc::ServerUnaryReactor* Submit(grpc::CallbackServerContext* context,
                                   const v1::SubmitRequest* request,
                                   v1::SubmitResponse* response) override;
  grpc::ServerWriteReactor<v1::WaitEvent>* Wait(grpc::CallbackServerContext* context,
                                                const v1::WaitRequest* request) override;
  grpc::ServerUnaryReactor* Abort(grpc::CallbackServerContext* context,
                                  const v1::AbortRequest* request,
                                  v1::AbortResponse* response) override;
  grpc::ServerUnaryReactor* CancelJob(grpc::CallbackServerContext* context,
                                      const v1::CancelJobRequest* request,
                                      v1::CancelJobResponse* response) override;
  grpc::ServerUnaryReactor* Status(grpc::CallbackServerContext* context,
                                   const v1::StatusRequest* request,
                                   v1::StatusResponse* response) override;
  grpc::ServerWriteReactor<v1::LogsEvent>* Logs(grpc::CallbackServerContext* context,
                                                const v1::LogsRequest* request) override;
  grpc::ServerUnaryReactor* ListBuilds(grpc::CallbackServerContext* context,
                                       const v1::ListBuildsRequest* request,
                                       v1::ListBuildsResponse* response) override;
  grpc::ServerUnaryReactor* CloseBuild(grpc::CallbackServerContext* context,
                                       const v1::CloseBuildRequest* request,
                                       v1::CloseBuildResponse* response) override;
  grpc::ServerUnaryReactor* Ping(grpc::CallbackServerContext* context,
                                 const v1::PingRequest* request,
                                 v1::PingResponse* response) override;

 private:
  // Open streams by remote caller.
  struct StreamCounts {
    absl::Mutex mu;
    absl::flat_hash_map<std::string, int> open ABSL_GUARDED_BY(mu);
  };

  // A streaming call's caller, and the count of its streams that the reactor keeps.
  struct Stream {
    Authorized who;
    std::shared_ptr<void> hold;
  };
  // The caller of a streaming call, if `allowed` lets it and it has a stream to spare; else
  // why not.
  absl::StatusOr<Stream> OpenStream(const grpc::CallbackServerContext& context,
                                    absl::FunctionRef<absl::Status(const Authorized&)> allowed);
  // A stream of `who`, counted until the hold is gone (null for a local caller), or
  // ResourceExhausted past the limit.
  absl::StatusOr<std::shared_ptr<void>> TakeStream(const Authorized& who);
  // Whether `who` may act on the build of job `id` (if distd knows the job at all).
  absl::Status MayActOnJob(const Authorized& who, engine::JobId id);

  const ServiceOptions options_;
  engine::Engine* const engine_;
  Peers* const peers_;
  std::unique_ptr<spawn::Clock> clock_;
  std::shared_ptr<StreamCounts> streams_ = std::make_shared<StreamCounts>();
  ArenaMessageAllocator<v1::SubmitRequest, v1::SubmitResponse> submit_allocator_;
};

}  // namespace distd::service

#endif  // DISTD_SERVER_SERVICE_SERVICE_H_
