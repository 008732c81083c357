// Requests that can be large, a batch of 100,000 commands, are parsed into a protobuf arena of
// their own instead of one heap allocation per string and message. The arena grows in blocks
// of up to 4 MiB, which malloc maps and unmaps whole (main.cc pins the mmap threshold), so a
// big request's memory goes back to the system as soon as the request is freed, instead of
// staying resident as freed heap below the jobs it created. Parsing into an arena is also
// cheaper than the heap for many small strings.
#ifndef DISTD_SERVER_SERVICE_ARENA_ALLOCATOR_H_
#define DISTD_SERVER_SERVICE_ARENA_ALLOCATOR_H_

#include <optional>

#include "google/protobuf/arena.h"
#include "grpcpp/support/message_allocator.h"

namespace distd::service {

template <typename Request, typename Response>
class ArenaMessageAllocator final : public grpc::MessageAllocator<Request, Response> {
 public:
  grpc::MessageHolder<Request, Response>* AllocateMessages() override { return new Holder(); }

 private:
  class Holder final : public grpc::MessageHolder<Request, Response> {
   public:
    Holder() : arena_(std::in_place, Options()) {
      this->set_request(google::protobuf::Arena::CreateMessage<Request>(&*arena_));
      this->set_response(&response_);
    }
    // A handler may free its request once it has taken what it needs (see
    // grpc::RpcAllocatorState), before the answer is sent.
    void FreeRequest() override {
      arena_.reset();
      this->set_request(nullptr);
    }
    void Release() override { delete this; }

   private:
    static google::protobuf::ArenaOptions Options() {
      google::protobuf::ArenaOptions options;
      options.start_block_size = 4096;
      options.max_block_size = 4 << 20;
      return options;
    }

    std::optional<google::protobuf::Arena> arena_;
    Response response_;
  };
};

}  // namespace distd::service

#endif  // DISTD_SERVER_SERVICE_ARENA_ALLOCATOR_H_
