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

class OutputBuffer {
 public:
  OutputBuffer(size_t head, size_t tail) : head_limit_(head), tail_limit_(tail) {}

  void Append(absl::string_view data);

  // Bytes written in all, kept or not.
  uint64_t total() const { return total_; }
  uint64_t omitted() const { return total_ - head_.size() - tail_size_; }

  // The kept bytes, with a marker line where bytes were left out.
  std::string Text() const;

 private:
  size_t head_limit_;
  size_t tail_limit_;
  uint64_t total_ = 0;
  std::string head_;
  // Ring buffer of the last tail_limit_ bytes once head_ is full; allocated lazily.
  std::string tail_;
  size_t tail_start_ = 0;  // index of the oldest byte in tail_ once it is full
  size_t tail_size_ = 0;
};

}  // namespace distd::engine

#endif  // DISTD_SERVER_ENGINE_OUTPUT_BUFFER_H_
