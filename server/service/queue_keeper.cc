#include "server/service/queue_keeper.h"

namespace distd::service {

QueueKeeper::QueueKeeper(grpc::Server* server)
    : stub_(v1::Distd::NewStub(server->InProcessChannel(grpc::ChannelArguments()))),
      thread_([this] { Run(); }) {}

QueueKeeper::~QueueKeeper() {
  stop_.Notify();
  thread_.join();
}

void QueueKeeper::Run() {
  while (!stop_.WaitForNotificationWithTimeout(kInterval)) {
    // The server handles the call on the callback queue: that is the event. Its answer (a
    // refusal) does not matter.
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    v1::PingRequest request;
    v1::PingResponse response;
    (void)stub_->Ping(&context, request, &response);
  }
}

}  // namespace distd::service
