// The exit statuses of distctl and distd. distd reports how a job ended as facts (outcome,
// exit code, signal); distctl turns them into these (client/run.h, JobExitCode). They follow
// `docker run` and coreutils `timeout`; docs/cli.md lists them.
#ifndef DISTD_COMMON_EXIT_CODES_H_
#define DISTD_COMMON_EXIT_CODES_H_

namespace distd {

inline constexpr int kExitOk = 0;
inline constexpr int kExitBuildFailed = 1;   // wait/abort/status: the build failed
inline constexpr int kExitUsage = 2;         // bad command line
inline constexpr int kExitTimedOut = 124;    // the job ran past --timeout
inline constexpr int kExitDistdError = 125;  // distctl or distd failed, or refused the request
inline constexpr int kExitCannotRun = 126;   // the command could not be started
inline constexpr int kExitNotFound = 127;    // the program was not found
inline constexpr int kExitSignalBase = 128;  // killed by signal N: 128 + N

}  // namespace distd

#endif  // DISTD_COMMON_EXIT_CODES_H_
