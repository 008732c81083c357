#include "server/engine/output_buffer.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace distd::engine {

std::string OmittedMarker(uint64_t bytes) {
  return absl::StrCat("[distd: ", bytes, " bytes of output omitted]\n");
}

OutputBuffer::~OutputBuffer() {
  if (budget_ != nullptr) budget_->used -= held();
}

void OutputBuffer::Append(absl::string_view data) {
  total_ += data.size();
  if (dropped_ != nullptr) return;
  const size_t before = held();
  Keep(data);
  if (budget_ != nullptr) budget_->used += held() - before;
}

void OutputBuffer::Drop(const char* reason) {
  if (budget_ != nullptr) budget_->used -= held();
  std::string().swap(head_);
  std::string().swap(tail_);
  tail_start_ = 0;
  tail_size_ = 0;
  dropped_ = reason;
}

void OutputBuffer::Keep(absl::string_view data) {
  if (head_.size() < head_limit_) {
    size_t n = std::min(data.size(), head_limit_ - head_.size());
    head_.append(data.data(), n);
    data.remove_prefix(n);
  }
  if (data.empty() || tail_limit_ == 0) return;
  // Only the last tail_limit_ bytes of this chunk can survive.
  if (data.size() > tail_limit_) data.remove_prefix(data.size() - tail_limit_);
  if (tail_.size() < tail_limit_) {
    // Still filling: append linearly.
    size_t n = std::min(data.size(), tail_limit_ - tail_.size());
    tail_.append(data.data(), n);
    tail_size_ = tail_.size();
    data.remove_prefix(n);
    if (data.empty()) return;
  }
  // Full ring: overwrite the oldest bytes.
  while (!data.empty()) {
    size_t n = std::min(data.size(), tail_limit_ - tail_start_);
    std::copy_n(data.data(), n, tail_.begin() + static_cast<std::ptrdiff_t>(tail_start_));
    tail_start_ = (tail_start_ + n) % tail_limit_;
    data.remove_prefix(n);
  }
}

std::string OutputBuffer::Text() const {
  if (dropped_ != nullptr) {
    return total_ == 0 ? std::string() : absl::StrCat("[output dropped: ", dropped_, "]\n");
  }
  std::string out = head_;
  if (uint64_t left_out = omitted(); left_out > 0) {
    if (!out.empty() && out.back() != '\n') out.push_back('\n');
    out += OmittedMarker(left_out);
  }
  AppendTail(&out);
  return out;
}

void OutputBuffer::AppendTail(std::string* out) const {
  out->append(tail_, tail_start_, std::string::npos);
  out->append(tail_, 0, tail_start_);
}

}  // namespace distd::engine
