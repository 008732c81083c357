#include "server/http/json.h"

#include <cstdint>

#include "absl/strings/str_format.h"

namespace distd::http {
namespace {

// The length of the UTF-8 sequence at the start of `text`, or 0 if it is not one (overlong
// forms, surrogates and code points past U+10FFFF included).
size_t Utf8Length(absl::string_view text) {
  const auto byte = [&text](size_t i) { return static_cast<uint8_t>(text[i]); };
  const uint8_t b0 = byte(0);
  size_t length = 0;
  uint32_t code = 0;
  if (b0 < 0x80) return 1;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    length = 2;
    code = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    length = 3;
    code = b0 & 0x0F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    length = 4;
    code = b0 & 0x07;
  } else {
    return 0;
  }
  if (text.size() < length) return 0;
  for (size_t i = 1; i < length; ++i) {
    if ((byte(i) & 0xC0) != 0x80) return 0;
    code = (code << 6) | (byte(i) & 0x3F);
  }
  if ((length == 3 && (code < 0x800 || (code >= 0xD800 && code <= 0xDFFF))) ||
      (length == 4 && (code < 0x10000 || code > 0x10FFFF))) {
    return 0;
  }
  return length;
}

}  // namespace

void AppendJsonString(std::string* out, absl::string_view text) {
  out->push_back('"');
  while (!text.empty()) {
    const char c = text.front();
    const size_t length = Utf8Length(text);
    if (length == 0) {
      out->append("\\ufffd");
      text.remove_prefix(1);
      continue;
    }
    if (length > 1) {
      out->append(text.data(), length);
    } else if (c == '"' || c == '\\') {
      out->push_back('\\');
      out->push_back(c);
    } else if (c == '\n') {
      out->append("\\n");
    } else if (c == '\t') {
      out->append("\\t");
    } else if (static_cast<uint8_t>(c) < 0x20 || c == 0x7F || c == '<' || c == '>' || c == '&') {
      absl::StrAppendFormat(out, "\\u%04x", static_cast<uint8_t>(c));
    } else {
      out->push_back(c);
    }
    text.remove_prefix(length);
  }
  out->push_back('"');
}

}  // namespace distd::http
