#include "common/read_file.h"

#include <unistd.h>

#include <cerrno>

namespace distd {

std::string ReadUpTo(int fd, size_t size) {
  std::string text(size, '\0');
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = read(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  text.resize(done);
  return text;
}

}  // namespace distd
