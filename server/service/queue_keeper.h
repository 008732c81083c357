// Keeps gRPC's callback completion queue awake, so that a call after an idle second is not held
// back by up to 100 ms.
//
// gRPC 1.51 on Linux serves every callback-API call (all of Service's) from one process-wide
// completion queue, polled by "nexting" threads (half the cores, at least two). A nexting
// thread that gets no event for 1 s sleeps 100 ms before it polls again, and a call that
// arrives while they all sleep waits for them: a `distctl run -- true` that takes 5 ms took
// 40-100 ms about two times in three when it came 1.0-1.1 s after the daemon's last call.
// Nothing public changes that loop, so the keeper gives the queue an event every kInterval (a
// Ping through an in-process channel): the thread that took the latest event is then back in
// its poll, its 1 s not yet run out, when the next event comes, whether that is the keeper's or
// a client's.
//
// The in-process Ping is refused by Peers (it did not come through the checked socket) and its
// answer ignored: only its handling on the queue matters. Cost, measured on an idle daemon:
// about 1 ms of CPU a second and a dozen more thread wake-ups.
#ifndef DISTD_SERVER_SERVICE_QUEUE_KEEPER_H_
#define DISTD_SERVER_SERVICE_QUEUE_KEEPER_H_

#include <memory>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "distd/v1/distd.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace distd::service {

class QueueKeeper {
 public:
  // Well under the nexting threads' 1 s.
  static constexpr absl::Duration kInterval = absl::Milliseconds(500);

  // Starts keeping `server` (started, serving Service) awake, from a thread of its own. The
  // keeper must be destroyed before the server is shut down.
  explicit QueueKeeper(grpc::Server* server);
  // Stops, cancelling the Ping in flight if there is one: a daemon that is shutting down must
  // not wait up to its deadline for a queue that may be busy with the calls being ended.
  ~QueueKeeper();

  QueueKeeper(const QueueKeeper&) = delete;
  QueueKeeper& operator=(const QueueKeeper&) = delete;

 private:
  void Run();

  std::unique_ptr<v1::Distd::Stub> stub_;
  absl::Notification stop_;
  absl::Mutex mu_;
  grpc::ClientContext* in_flight_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::thread thread_;  // last: it starts in the constructor and uses everything above
};

}  // namespace distd::service

#endif  // DISTD_SERVER_SERVICE_QUEUE_KEEPER_H_
