#include "common/process_setup.h"

#include <malloc.h>

#include "absl/synchronization/mutex.h"

namespace distd {

void SetUpProcess() {
  // Pinned malloc thresholds (glibc otherwise moves them after each large free): blocks of
  // 4 MiB or more, such as the arena blocks of a large request, get mappings of their own
  // that go back to the system when freed, so that distd does not stay as large as its
  // biggest request made it; smaller ones, such as 1 MiB chunks and messages of output, are
  // reused from the heap instead of being mapped, or trimmed and faulted in, afresh.
  mallopt(M_MMAP_THRESHOLD, 4 << 20);
  mallopt(M_TRIM_THRESHOLD, 32 << 20);
#ifdef NDEBUG
  // Debian's abseil is built with its mutex deadlock detection on: every Lock taken while
  // another is held records an edge in a global lock graph, under a global lock. The debug
  // and sanitizer builds (the tests) keep it; a release build does not pay for it.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
#endif
}

}  // namespace distd
