// What distd and distctl set for the whole process, first thing in main.
#ifndef DISTD_COMMON_PROCESS_SETUP_H_
#define DISTD_COMMON_PROCESS_SETUP_H_

namespace distd {

// Pins malloc's thresholds and, in release builds, turns off abseil's mutex deadlock
// detection. Call before any thread starts.
void SetUpProcess();

}  // namespace distd

#endif  // DISTD_COMMON_PROCESS_SETUP_H_
