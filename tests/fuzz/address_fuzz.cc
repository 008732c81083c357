// Fuzzes the parsers of outside text that are not shell words: addresses (--addr, --listen)
// and durations (--timeout, --grace). A parsed address must survive a round trip.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "client/commands.h"
#include "common/address.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view text(reinterpret_cast<const char*>(data), size);
  auto address = distd::ParseAddress(text);
  if (address.ok()) {
    auto again = distd::ParseAddress(address->ToString());
    if (!again.ok() || again->kind != address->kind || again->path != address->path ||
        again->host != address->host || again->port != address->port) {
      __builtin_trap();
    }
    (void)address->GrpcTarget();
  }
  auto duration = distd::client::ParsePositiveDuration(text);
  if (duration.ok() &&
      (*duration <= absl::ZeroDuration() || distd::client::ToApiMilliseconds(*duration) <= 0)) {
    __builtin_trap();
  }
  return 0;
}
