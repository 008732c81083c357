#include "server/service/queue_keeper.h"

#include <utility>

namespace distd::service {

QueueKeeper::QueueKeeper(grpc::Server* server)
    : stub_(v1::Distd::NewStub(server->InProcessChannel(grpc::ChannelArguments()))),
      clock_(engine::NewRealClock()) {
  absl::MutexLock lock(&mu_);
  timer_ = clock_->Schedule(clock_->Now() + kInterval, [this] { Tick(); });
}

QueueKeeper::~QueueKeeper() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    clock_->Cancel(timer_);  // a Tick already running sees stopping_
    mu_.Await(absl::Condition(
        +[](bool* in_flight) { return !*in_flight; }, &in_flight_));
  }
  clock_.reset();  // joins its thread: no Tick runs after this
}

void QueueKeeper::Tick() {
  grpc::ClientContext* context;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    in_flight_ = true;
    context_ = std::make_unique<grpc::ClientContext>();
    context_->set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    context = context_.get();  // not replaced while in flight
  }
  // Without mu_: gRPC may run the callback on this thread before Ping returns.
  stub_->async()->Ping(context, &request_, &response_,
                       [this](const grpc::Status&) { OnPingDone(); });
}

void QueueKeeper::OnPingDone() {
  absl::MutexLock lock(&mu_);
  in_flight_ = false;
  if (!stopping_) timer_ = clock_->Schedule(clock_->Now() + kInterval, [this] { Tick(); });
}

}  // namespace distd::service
