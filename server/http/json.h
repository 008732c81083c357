// The little JSON the HTTP answers need, written by hand: strings, escaped.
#ifndef DISTD_SERVER_HTTP_JSON_H_
#define DISTD_SERVER_HTTP_JSON_H_

#include <string>

#include "absl/strings/string_view.h"

namespace distd::http {

// Appends `text` to `out` as a JSON string, quotes included. Bytes that are not UTF-8 (what
// a job printed may be anything) become U+FFFD; control characters and "<" are escaped, so
// that the text is safe inside an HTML page's script too.
void AppendJsonString(std::string* out, absl::string_view text);

}  // namespace distd::http

#endif  // DISTD_SERVER_HTTP_JSON_H_
