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
//
// Never call into the engine while holding mu_: the engine calls Send with its lock held.
#ifndef DISTD_SERVER_SERVICE_STREAM_WRITER_H_
#define DISTD_SERVER_SERVICE_STREAM_WRITER_H_

#include <atomic>
#include <deque>
#include <utility>

#include "absl/synchronization/mutex.h"
#include "grpcpp/grpcpp.h"

namespace distd::service {

template <typename Message>
class StreamWriter : public grpc::ServerWriteReactor<Message> {
 public:
  void Send(Message message, bool last = false) {
    absl::MutexLock lock(&mu_);
    if (finishing_) return;
    if (!broken_) queue_.push_back(std::move(message));
    finishing_ = last;
    PumpLocked();
  }

  // Ends the stream with `status`, dropping what is queued.
  void FinishWith(const grpc::Status& status) {
    absl::MutexLock lock(&mu_);
    if (finishing_) return;
    finishing_ = true;
    queue_.clear();
    status_ = status;
    PumpLocked();
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
  // True while messages wait to be written.
  bool busy() {
    absl::MutexLock lock(&mu_);
    return writing_ || !queue_.empty();
  }

 protected:
  StreamWriter() = default;
  ~StreamWriter() override = default;

  void Uncork(std::deque<Message> first = {}) {
    absl::MutexLock lock(&mu_);
    for (auto it = first.rbegin(); it != first.rend(); ++it) queue_.push_front(std::move(*it));
    corked_ = false;
    PumpLocked();
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) {
      broken_ = true;
      queue_.clear();
      status_ = grpc::Status(grpc::StatusCode::CANCELLED, "the client went away");
    }
    PumpLocked();
  }

  void OnDone() override { Unref(); }

 private:
  void PumpLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (corked_ || writing_ || finished_) return;
    if (!queue_.empty()) {
      current_ = std::move(queue_.front());
      queue_.pop_front();
      writing_ = true;
      if (finishing_ && queue_.empty() && status_.ok()) {
        finished_ = true;
        this->StartWriteAndFinish(&current_, grpc::WriteOptions(), status_);
      } else {
        this->StartWrite(&current_);
      }
      return;
    }
    if (finishing_) {
      finished_ = true;
      this->Finish(status_);
    }
  }

  absl::Mutex mu_;
  std::deque<Message> queue_ ABSL_GUARDED_BY(mu_);
  Message current_ ABSL_GUARDED_BY(mu_);
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
