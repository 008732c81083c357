// A server-streaming reactor with a queue: the engine produces messages whenever it likes (from
// any thread, possibly with its lock held) and gRPC allows one write in flight at a time.
//
//  - Send() queues a message and starts writing if nothing is in flight; Send(msg, true)
//    finishes the stream with OK after that message. Messages after the last are dropped.
//  - The stream starts corked: nothing is written until Uncork(), so a handler can put the
//    first message in front of events that arrived while it was still setting up.
//  - When the client goes away, writes fail; the queue is dropped and the reactor keeps
//    waiting for its terminal Send, so that whatever still refers to it (an engine watcher, a
//    waiter) has finished with it before OnDone.
//  - Lifetime is reference-counted: OnDone drops gRPC's reference, and a timer that may still
//    fire holds one of its own (Ref/Unref).
//  - Output in small pieces is merged while it waits (SendOutput).
//  - Flow control: Overloaded() says when the queue holds more than kHighWater bytes (the
//    producer should stop), and OnCaughtUp() runs once it is below kLowWater again.
//
// Never call into the engine while holding mu_: the engine calls Send with its lock held.
// And never touch the reactor after starting a gRPC operation outside a reaction: once the
// stream is finished, gRPC may run OnDone (and so delete the reactor) on another thread at
// once. So each method decides under mu_ what to start, releases mu_, and starts it last.
#ifndef DISTD_SERVER_SERVICE_STREAM_WRITER_H_
#define DISTD_SERVER_SERVICE_STREAM_WRITER_H_

#include <atomic>
#include <deque>
#include <memory>
#include <utility>

#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "distd/v1/distd.pb.h"
#include "grpcpp/grpcpp.h"

namespace distd::service {

// The largest output message that merging makes: a frame's worth for distctl, which takes
// HTTP/2 frames of up to 1 MiB, and well under gRPC's default limit of 4 MiB a message for
// any other client.
inline constexpr size_t kMergeBytes = 1 << 20;

// Whether `size` more bytes of `stream` may be appended to the queued message `back`: only
// to output of the same stream (so the order of everything else is kept), and only up to
// kMergeBytes.
template <typename Message>
bool CanAppendOutput(const Message& back, v1::Stream stream, size_t size) {
  return back.has_output() && back.output().stream() == stream &&
         back.output().data().size() + size <= kMergeBytes;
}

template <typename Message>
class StreamWriter : public grpc::ServerWriteReactor<Message> {
 public:
  static constexpr size_t kHighWater = 8 << 20;
  static constexpr size_t kLowWater = 1 << 20;

  void Send(Message message, bool last = false) {
    Op op;
    {
      absl::MutexLock lock(&mu_);
      if (finishing_) return;
      if (!broken_) QueueLocked(std::move(message));
      finishing_ = last;
      op = PumpLocked();
    }
    Start(this, op);
  }

  // Queues output of `stream` (for messages with an `output` field), merged into the last
  // queued message where CanAppendOutput allows: a job that writes in small pieces (a 1 GiB
  // `head -c` arrives in reads of ~6 KiB) then costs a message per write gRPC completes
  // rather than one per piece.
  void SendOutput(v1::Stream stream, absl::string_view data) {
    Op op;
    {
      absl::MutexLock lock(&mu_);
      if (finishing_ || broken_) return;
      if (!queue_.empty() && CanAppendOutput(queue_.back(), stream, data.size())) {
        // A queue that is not empty waits for the write in flight (or the cork): nothing
        // to start.
        queued_bytes_ -= queue_.back().ByteSizeLong();
        queue_.back().mutable_output()->mutable_data()->append(data.data(), data.size());
        queued_bytes_ += queue_.back().ByteSizeLong();
        return;
      }
      Message message;
      message.mutable_output()->set_stream(stream);
      message.mutable_output()->set_data(data.data(), data.size());
      QueueLocked(std::move(message));
      op = PumpLocked();
    }
    Start(this, op);
  }

  // Ends the stream with `status`, dropping what is queued.
  void FinishWith(const grpc::Status& status) {
    Op op;
    {
      absl::MutexLock lock(&mu_);
      if (finishing_) return;
      finishing_ = true;
      queue_.clear();
      queued_bytes_ = 0;
      status_ = status;
      op = PumpLocked();
    }
    Start(this, op);
  }

  void Ref() { refs_.fetch_add(1); }
  void Unref() {
    if (refs_.fetch_sub(1) == 1) delete this;
  }

  // True once the stream is finishing or gone: nothing more will be written.
  bool done() {
    absl::MutexLock lock(&mu_);
    return finishing_;
  }
  // True when more than kHighWater bytes wait: the producer should hold back until
  // OnCaughtUp.
  bool Overloaded() {
    absl::MutexLock lock(&mu_);
    if (queued_bytes_ <= kHighWater || broken_) return false;
    holding_back_ = true;
    return true;
  }

  // True while messages wait to be written.
  bool busy() {
    absl::MutexLock lock(&mu_);
    return writing_ || !queue_.empty();
  }

  // Keeps `hold` until the reactor is gone (a count of the caller's streams). Only before
  // the reactor is given to gRPC.
  void Hold(std::shared_ptr<void> hold) { hold_ = std::move(hold); }

 protected:
  StreamWriter() = default;
  ~StreamWriter() override = default;

  void Uncork(std::deque<Message> first = {}) {
    Op op;
    {
      absl::MutexLock lock(&mu_);
      for (auto it = first.rbegin(); it != first.rend(); ++it) {
        queued_bytes_ += it->ByteSizeLong();
        queue_.push_front(std::move(*it));
      }
      corked_ = false;
      op = PumpLocked();
    }
    Start(this, op);
  }

  void OnWriteDone(bool ok) override {
    bool caught_up = false;
    Op op;
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if (!ok) {
        broken_ = true;
        queue_.clear();
        queued_bytes_ = 0;
        status_ = grpc::Status(grpc::StatusCode::CANCELLED, "the client went away");
      }
      op = PumpLocked();
      if (holding_back_ && queued_bytes_ < kLowWater) {
        holding_back_ = false;
        caught_up = true;
      }
    }
    // A reaction: the reactor lives until it returns, whatever Start begins.
    Start(this, op);
    if (caught_up) OnCaughtUp();  // without mu_: it may call into the engine
  }

  void OnDone() override { Unref(); }

  // The queue has drained below kLowWater after Overloaded() said it was full.
  virtual void OnCaughtUp() {}

 private:
  std::shared_ptr<void> hold_;
  // What PumpLocked decided to start, with what it needs, for Start to do after mu_.
  struct Op {
    enum Kind { kNone, kWrite, kWriteAndFinish, kFinish } kind = kNone;
    grpc::Status status;
  };

  void QueueLocked(Message message) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    queued_bytes_ += message.ByteSizeLong();
    queue_.push_back(std::move(message));
  }

  Op PumpLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (corked_ || writing_ || finished_) return Op();
    if (!queue_.empty()) {
      current_ = std::move(queue_.front());
      queue_.pop_front();
      queued_bytes_ -= current_.ByteSizeLong();
      writing_ = true;
      if (finishing_ && queue_.empty() && status_.ok()) {
        finished_ = true;
        return Op{Op::kWriteAndFinish, status_};
      }
      return Op{Op::kWrite, grpc::Status()};
    }
    if (finishing_) {
      finished_ = true;
      return Op{Op::kFinish, status_};
    }
    return Op();
  }

  // The last thing a caller does, once mu_ is released: from then on another thread may
  // finish the stream and gRPC delete the reactor, unless `op` is this caller's to start
  // (nobody else starts anything while a write it decided on is not started). So with
  // nothing to start the reactor is not touched at all, not even by a member call (whose
  // vptr check, under UBSan, reads it): hence static. After a finishing operation the
  // reactor may be gone. current_ is not touched under mu_ while a write is in flight.
  static void Start(StreamWriter* self, const Op& op) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    switch (op.kind) {
      case Op::kNone:
        return;
      case Op::kWrite:
        self->StartWrite(&self->current_);
        return;
      case Op::kWriteAndFinish:
        self->StartWriteAndFinish(&self->current_, grpc::WriteOptions(), op.status);
        return;
      case Op::kFinish:
        self->Finish(op.status);
        return;
    }
  }

  absl::Mutex mu_;
  std::deque<Message> queue_ ABSL_GUARDED_BY(mu_);
  Message current_ ABSL_GUARDED_BY(mu_);
  size_t queued_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  bool holding_back_ ABSL_GUARDED_BY(mu_) = false;
  bool corked_ ABSL_GUARDED_BY(mu_) = true;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;
  bool finishing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
  std::atomic<int> refs_{1};
};

}  // namespace distd::service

#endif  // DISTD_SERVER_SERVICE_STREAM_WRITER_H_
