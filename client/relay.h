// A job's output as it streams in from distd, written where distctl's own goes.
#ifndef DISTD_CLIENT_RELAY_H_
#define DISTD_CLIENT_RELAY_H_

#include "client/stop.h"
#include "distd/v1/distd.pb.h"

namespace distd::client {

// Writes each piece of output to distctl's stdout or stderr, as the job wrote it. When one of
// the two cannot be written, that one is dropped from then on and the call is stopped: for
// SIGPIPE if its reader went away (distctl then dies as the command itself would have), else,
// after saying why, as distctl's own fault.
class OutputRelay {
 public:
  explicit OutputRelay(CallStop* stop) : stop_(stop) {}

  void Write(const v1::Output& output);

 private:
  CallStop* const stop_;
  bool open_[2] = {true, true};  // stdout, stderr
};

}  // namespace distd::client

#endif  // DISTD_CLIENT_RELAY_H_
