#ifndef DISTD_COMMON_CURRENT_UMASK_H_
#define DISTD_COMMON_CURRENT_UMASK_H_

#include <sys/types.h>

namespace distd {

// This process's umask, read from /proc/self/status: umask() can only tell it by changing
// it, which another thread creating a file at that moment would see. 022 if /proc is missing.
mode_t CurrentUmask();

}  // namespace distd

#endif  // DISTD_COMMON_CURRENT_UMASK_H_
