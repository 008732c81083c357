// Fuzzes the batch-file parser of `distctl run --bg -f`: any bytes must give words or an
// error naming a line, never a crash, and a successful parse must be stable.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "common/shell_words.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view text(reinterpret_cast<const char*>(data), size);
  auto batch = distd::ParseBatch(text);
  if (batch.ok()) {
    int previous = 0;
    for (const distd::BatchLine& line : *batch) {
      if (line.words.empty() || line.line <= previous) __builtin_trap();
      previous = line.line;
    }
  } else if (batch.status().message().find("line ") == std::string::npos) {
    __builtin_trap();  // every batch error names its line
  }
  auto words = distd::SplitShellWords(text);
  (void)words;
  return 0;
}
