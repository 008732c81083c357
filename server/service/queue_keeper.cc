#include "server/service/queue_keeper.h"

namespace distd::service {

QueueKeeper::QueueKeeper(grpc::Server* server)
    : stub_(v1::Distd::NewStub(server->InProcessChannel(grpc::ChannelArguments()))),
      thread_([this] { Run(); }) {}

QueueKeeper::~QueueKeeper() {
  stop_.Notify();
  {
    absl::MutexLock lock(&mu_);
    if (in_flight_ != nullptr) in_flight_->TryCancel();
  }
  thread_.join();
}

void QueueKeeper::Run() {
  while (!stop_.WaitForNotificationWithTimeout(kInterval)) {
    // The server handles the call on the callback queue: that is the event. Its answer (a
    // refusal) does not matter.
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    {
      absl::MutexLock lock(&mu_);
      if (stop_.HasBeenNotified()) return;  // else the destructor cancels it
      in_flight_ = &context;
    }
    v1::PingRequest request;
    v1::PingResponse response;
    (void)stub_->Ping(&context, request, &response);
    absl::MutexLock lock(&mu_);
    in_flight_ = nullptr;
  }
}

}  // namespace distd::service
