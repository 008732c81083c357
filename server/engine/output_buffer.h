// What the engine keeps of one output stream of one job.
//
// Everything a job writes is drained and offered to live subscribers as it arrives; what is
// kept for later (`distctl logs`, the FAILED report) is bounded: the first `head` bytes and the
// last `tail` bytes. When more was written, Text() puts a marker line between the two naming
// how many bytes were left out, so a truncated log never passes for a whole one.
#ifndef DISTD_SERVER_ENGINE_OUTPUT_BUFFER_H_
#define DISTD_SERVER_ENGINE_OUTPUT_BUFFER_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace distd::engine {

// The bytes held by every OutputBuffer that shares it, for one budget over all of them. Not
// thread-safe: whoever guards the buffers guards it too.
struct OutputBudget {
  uint64_t used = 0;
};

// The line that stands for `bytes` bytes of output left out.
std::string OmittedMarker(uint64_t bytes);

class OutputBuffer {
 public:
  OutputBuffer(size_t head, size_t tail, OutputBudget* budget = nullptr)
      : head_limit_(head), tail_limit_(tail), budget_(budget) {}
  ~OutputBuffer();  // gives its bytes back to the budget
  OutputBuffer(const OutputBuffer&) = delete;
  OutputBuffer& operator=(const OutputBuffer&) = delete;

  void Append(absl::string_view data);

  // Frees everything kept; Text() is then only a line that says why (`reason`, a literal).
  void Drop(const char* reason);
  bool dropped() const { return dropped_ != nullptr; }

  // Bytes written in all, kept or not.
  uint64_t total() const { return total_; }
  uint64_t omitted() const { return total_ - head_.size() - tail_size_; }
  // The memory that holds what is kept, as counted against the budget.
  size_t held() const { return HeapBytes(head_) + HeapBytes(tail_); }

  // The kept bytes, with a marker line where bytes were left out.
  std::string Text() const;
  // The last bytes alone, as kept, appended to `out`.
  void AppendTail(std::string* out) const;

 private:
  // What a string holds beyond itself: nothing while it is short enough to sit inside.
  static size_t HeapBytes(const std::string& s) {
    static const size_t inside = std::string().capacity();
    return s.capacity() > inside ? s.capacity() : 0;
  }
  void Keep(absl::string_view data);

  size_t head_limit_;
  size_t tail_limit_;
  uint64_t total_ = 0;
  std::string head_;
  // Ring buffer of the last tail_limit_ bytes once head_ is full; allocated lazily.
  std::string tail_;
  size_t tail_start_ = 0;  // index of the oldest byte in tail_ once it is full
  size_t tail_size_ = 0;
  OutputBudget* const budget_;     // may be null
  const char* dropped_ = nullptr;  // why, once dropped
};

}  // namespace distd::engine

#endif  // DISTD_SERVER_ENGINE_OUTPUT_BUFFER_H_
