#include "common/direct_output.h"

#include <sys/sysmacros.h>

namespace distd {

bool IsDirectOutputFile(const struct stat& st) {
  const bool dev_null = S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3);
  return S_ISFIFO(st.st_mode) || dev_null;
}

}  // namespace distd
