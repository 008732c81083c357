#include "server/spawn/process.h"

#include <unistd.h>

namespace distd::spawn {

OutputTargets::~OutputTargets() {
  if (fds_[0] >= 0) close(fds_[0]);
  if (fds_[1] >= 0 && fds_[1] != fds_[0]) close(fds_[1]);
}

}  // namespace distd::spawn
