// Fuzzes what the HTTP server reads from anyone on loopback (the request head, the Host
// check) and the JSON writer that what jobs print goes through: bounds hold, nothing crashes,
// and the JSON is always one string of printable ASCII and valid UTF-8.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "server/http/json.h"
#include "server/http/server.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view text(reinterpret_cast<const char*>(data), size);
  auto request = distd::http::ParseRequestHead(text);
  if (request.ok()) {
    if (request->path.empty() || request->path[0] != '/') __builtin_trap();
    if (request->headers.size() > 64) __builtin_trap();
    if (request->path.size() + request->query.size() > text.size()) __builtin_trap();
  } else if (request.status().message().empty()) {
    __builtin_trap();
  }
  (void)distd::http::IsLoopbackHost(text);
  std::string json;
  distd::http::AppendJsonString(&json, text);
  if (json.size() < 2 || json.front() != '"' || json.back() != '"') __builtin_trap();
  for (size_t i = 1; i + 1 < json.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(json[i]);
    if (c < 0x20 || c == '<' || c == '>') __builtin_trap();
    if (c == '"' && json[i - 1] != '\\') __builtin_trap();
  }
  return 0;
}
