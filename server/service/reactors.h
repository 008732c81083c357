// The streaming calls: each a reactor that the engine completes later.
#ifndef DISTD_SERVER_SERVICE_REACTORS_H_
#define DISTD_SERVER_SERVICE_REACTORS_H_

#include <memory>

#include "distd/v1/distd.pb.h"
#include "grpcpp/grpcpp.h"
#include "server/engine/engine.h"
#include "server/service/history.h"
#include "server/spawn/clock.h"

namespace distd::service {

// Each reactor keeps its `hold` (a count of the caller's streams) until it is gone.

// Run: queues one job with the reactor as its watcher and streams Queued, Started, Output and
// Result. Cancelling the call cancels the job; the stream ends when the job has.
grpc::ServerWriteReactor<v1::RunEvent>* NewRunReactor(engine::Engine* engine,
                                                      const engine::Caller& caller,
                                                      const v1::RunRequest& request,
                                                      std::shared_ptr<void> hold = nullptr);

// Wait: the engine's barrier, with Progress every `interval` when asked. A build the engine
// does not know answers with what `history` (if any) remembers of it, or, if nothing, as a
// build with nothing to wait for (no job submitted, no failure).
grpc::ServerWriteReactor<v1::WaitEvent>* NewWaitReactor(engine::Engine* engine, spawn::Clock* clock,
                                                        absl::Duration interval, History* history,
                                                        const v1::WaitRequest& request,
                                                        std::shared_ptr<void> hold = nullptr);

// Logs: what a job printed, then with follow what it prints until it ends. A job the engine
// does not have, or whose output it dropped, is answered from `history` (if any).
grpc::ServerWriteReactor<v1::LogsEvent>* NewLogsReactor(engine::Engine* engine, History* history,
                                                        const v1::LogsRequest& request,
                                                        std::shared_ptr<void> hold = nullptr);

// A reactor that ends at once with `status` (refused calls).
template <typename Message>
grpc::ServerWriteReactor<Message>* NewFinishedReactor(const grpc::Status& status) {
  class Finished : public grpc::ServerWriteReactor<Message> {
   public:
    explicit Finished(const grpc::Status& s) { this->Finish(s); }
    void OnDone() override { delete this; }
  };
  return new Finished(status);
}

}  // namespace distd::service

#endif  // DISTD_SERVER_SERVICE_REACTORS_H_
