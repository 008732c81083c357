// The process-level types: what the engine hands a spawner and what it hears back.
#ifndef DISTD_SERVER_SPAWN_PROCESS_H_
#define DISTD_SERVER_SPAWN_PROCESS_H_

#include <cstdint>
#include <optional>
#include <vector>

namespace distd::spawn {

// Job ids are unique for the life of an engine and increase in submission order, so
// "submitted before" is "has a smaller id".
using JobId = uint64_t;

enum class OutputStream { kStdout, kStderr };

// What a job gets from its client's shell besides argv, cwd and env (see the proto's
// ProcessSettings): unset fields keep distd's own.
struct ProcessSettings {
  struct Limit {
    int resource = -1;  // RLIMIT_*; -1 for one this distd does not know
    uint64_t soft = 0;  // RLIM_INFINITY for none
    bool operator==(const Limit&) const = default;
  };
  std::optional<uint32_t> umask;
  std::vector<Limit> limits;
  bool operator==(const ProcessSettings&) const = default;
};

// Files the job's output is written to as it arrives, besides being kept in its record: a
// local client's own stdout and stderr, opened by the daemon, so that a foreground job's
// output reaches it without a copy through the client. Owns the fds (-1: that stream is not
// forwarded; the same fd for both: one file, such as a pipe after `2>&1`, which gets the two
// streams in the order they are read) and closes them when the last holder lets go: when
// the job ends, before anyone hears of its end, so that a reader waiting for EOF is not held
// up, or earlier, when forwarding stops (its client is gone, or it was killed).
class OutputTargets {
 public:
  OutputTargets(int stdout_fd, int stderr_fd) : fds_{stdout_fd, stderr_fd} {}
  ~OutputTargets();
  OutputTargets(const OutputTargets&) = delete;
  OutputTargets& operator=(const OutputTargets&) = delete;

  int fd(OutputStream stream) const { return fds_[stream == OutputStream::kStdout ? 0 : 1]; }
  bool shared() const { return fds_[0] >= 0 && fds_[0] == fds_[1]; }

 private:
  const int fds_[2];
};

// How a process ended, as the spawner reports it.
struct ExitStatus {
  int exit_code = 0;  // valid when signal == 0
  int signal = 0;     // > 0: killed by this signal
};

}  // namespace distd::spawn

#endif  // DISTD_SERVER_SPAWN_PROCESS_H_
