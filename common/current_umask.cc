#include "common/current_umask.h"

#include <cstdio>

namespace distd {

mode_t CurrentUmask() {
  mode_t mask = 022;
  if (std::FILE* status = std::fopen("/proc/self/status", "re"); status != nullptr) {
    char line[256];
    while (std::fgets(line, sizeof(line), status) != nullptr) {
      unsigned mode = 0;
      if (std::sscanf(line, "Umask: %o", &mode) == 1) {
        mask = static_cast<mode_t>(mode & 0777);
        break;
      }
    }
    std::fclose(status);
  }
  return mask;
}

}  // namespace distd
