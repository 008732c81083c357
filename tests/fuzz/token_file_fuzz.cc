// Fuzzes the token file's parser (distd --token-file) and the loopback test of --listen and
// --insecure-loopback: what the parser accepts must be within its stated bounds.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "common/address.h"
#include "server/service/remote.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = distd::service::ParseTokenFile(text);
  if (parsed.ok()) {
    if (parsed->size() > 1024) __builtin_trap();
    for (const distd::service::Credential& credential : *parsed) {
      if (credential.name.empty() || credential.name.size() > 64) __builtin_trap();
      if (!credential.token.empty() &&
          (credential.token.size() < 16 || credential.token.size() > 512)) {
        __builtin_trap();
      }
      for (char c : credential.token) {
        if (c <= ' ' || c >= 0x7f) __builtin_trap();
      }
    }
  } else if (parsed.status().message().empty()) {
    __builtin_trap();
  }
  (void)distd::IsLoopbackAddress(text);
  return 0;
}
