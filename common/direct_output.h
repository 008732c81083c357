// Which files distd writes a foreground job's output into directly, rather than send it
// through distctl: a pipe or FIFO, or /dev/null. One rule for both sides: distctl offers only
// these, and distd checks again what it opens. (A terminal is left to distctl: a
// non-blocking write to it can be cut short, and would escape the terminal's job control.)
#ifndef DISTD_COMMON_DIRECT_OUTPUT_H_
#define DISTD_COMMON_DIRECT_OUTPUT_H_

#include <sys/stat.h>

namespace distd {

bool IsDirectOutputFile(const struct stat& st);

}  // namespace distd

#endif  // DISTD_COMMON_DIRECT_OUTPUT_H_
