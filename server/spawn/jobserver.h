// GNU make's jobserver, offered to each job so that a job which is itself a parallel build
// (make, ninja >= 1.13, cargo) takes its extra slots from distd's pool instead of running
// beside it. The protocol: a job may run one process of work on its own slot; for each more
// it reads one byte (a token) from the jobserver, and writes it back when that process ends.
//
// Every running job gets a jobserver of its own, rather than one per build: what a job holds
// is then exactly what distd lent it less what came back, and all of it is the pool's again
// when the job ends, however it ended (a killed make never writes its tokens back). The engine
// lends spare slots to jobs, and gives a queued job the tokens that come back
// (engine/jobserver.cc).
//
// Two styles, as make has them:
//  - kPipe (make 4.3, Debian 12's; make 4.4; cargo): MAKEFLAGS says --jobserver-auth=3,4.
//    make reads tokens from fd 3 and writes them back to fd 4, and here those are two pipes:
//    a job's returned tokens reach distd alone, which decides where each goes next. A queued
//    job gets it before the nested make can take it again.
//  - kFifo (make 4.4, ninja 1.13, cargo): one fifo of mode 0600 in distd's own 0700
//    directory, named in MAKEFLAGS as --jobserver-auth=fifo:PATH, for both ways. A returned
//    token lies there for whoever reads first, the job or distd. make 4.3 cannot use one.
#ifndef DISTD_SERVER_SPAWN_JOBSERVER_H_
#define DISTD_SERVER_SPAWN_JOBSERVER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace distd::spawn {

enum class JobserverStyle { kOff, kPipe, kFifo };

// "off", "pipe", "fifo"; nullopt for anything else.
std::optional<JobserverStyle> ParseJobserverStyle(absl::string_view text);

// The fds a job of style kPipe finds its token pipe at.
inline constexpr int kJobserverReadFd = 3;
inline constexpr int kJobserverWriteFd = 4;

// One job's tokens. distd's ends never block; the job's are plain blocking ones, as make
// expects. Every fd is close-on-exec: the spawner puts the job's at 3 and 4 itself.
class TokenPipe {
 public:
  // kPipe: the two pipes. kFifo: a fifo made at `fifo_path` (which must not exist), removed
  // again by the destructor.
  static absl::StatusOr<std::unique_ptr<TokenPipe>> Open(JobserverStyle style,
                                                         const std::string& fifo_path = "");
  ~TokenPipe();
  TokenPipe(const TokenPipe&) = delete;
  TokenPipe& operator=(const TokenPipe&) = delete;

  // Gives the job up to `count` tokens; returns how many went in.
  int Put(int count);
  // Reads back up to `count` tokens that the job has not taken (and, for a fifo, those it
  // wrote back); returns how many.
  int Take(int count);
  // kPipe: reads up to `max` tokens the job wrote back; how many. 0 for a fifo. (A job may
  // write back more than it took: the caller counts no more than it took.)
  int Returned(int max);
  // Tokens given and not taken yet (for a fifo, with those written back).
  int Untaken() const;
  // kPipe: what becomes readable when the job writes a token back (for a ReturnWatcher);
  // -1 for a fifo.
  int return_fd() const { return return_read_; }
  // What the job's MAKEFLAGS names: "3,4" or "fifo:PATH".
  std::string Auth() const;
  // kPipe: the ends to put at kJobserverReadFd and kJobserverWriteFd in the job (>= 10, so
  // that putting one in place never overwrites the other); -1 for kFifo.
  int job_read_fd() const { return job_fds_[0]; }
  int job_write_fd() const { return job_fds_[1]; }
  // Once the job has started: distd lets go of the job's read end (it reads through its own).
  // The job's write end stays, so that the return pipe never reads as closed while the job
  // runs.
  void Started();

 private:
  TokenPipe() = default;
  JobserverStyle style_ = JobserverStyle::kOff;
  int job_fds_[2] = {-1, -1};
  int give_ = -1;         // the give pipe's write end (the fifo, for kFifo)
  int take_back_ = -1;    // the give pipe's read end, as a file description of distd's own
  int return_read_ = -1;  // the return pipe's read end (kPipe)
  std::string fifo_;
};

// Wakes the engine as soon as a job writes a token back (kPipe): one thread, one epoll set of
// every running job's return pipe, `on_return(id)` for the job whose pipe is readable. The
// callee reads the tokens (TokenPipe::Returned), or the call comes again. A closed pipe
// leaves the set by itself; a call for a job that has just ended is to be ignored.
class ReturnWatcher {
 public:
  explicit ReturnWatcher(std::function<void(uint64_t)> on_return);
  ~ReturnWatcher();  // joins the thread; no call runs once it returns
  ReturnWatcher(const ReturnWatcher&) = delete;
  ReturnWatcher& operator=(const ReturnWatcher&) = delete;
  void Watch(uint64_t id, int fd);
  void Unwatch(int fd);

 private:
  void Run();
  std::function<void(uint64_t)> on_return_;
  int epoll_fd_ = -1;
  int stop_fd_ = -1;  // an eventfd
  std::thread thread_;
};

// The MAKEFLAGS of a job from its client's: the client's -j and jobserver flags go (they
// name a jobserver the job does not have), and, with `auth` (a TokenPipe's), ` -jSLOTS
// --jobserver-auth=AUTH` comes after the rest of the flags, before any ` -- VAR=value`, as
// make writes it. Without `auth` the result is the client's without a jobserver (empty if
// nothing else was there).
std::string JobMakeflags(absl::string_view makeflags, absl::string_view auth, int slots);

// What a job's environment needs for its jobserver: MAKEFLAGS, MFLAGS and CARGO_MAKEFLAGS
// cleared of jobservers, and with `auth`, MAKEFLAGS as JobMakeflags makes it. `drop` lists
// the entries of `env` that go (in order), `add` those that come after the rest; an entry
// left empty by the clearing is not added. Nothing is copied for a job whose environment has
// none of them: the spawner passes the rest as they are.
struct JobserverChanges {
  std::vector<size_t> drop;
  std::vector<std::string> add;
};
JobserverChanges ChangesForJobserver(const std::vector<std::string>& env, absl::string_view auth,
                                     int slots);
// `env` with those changes made.
std::vector<std::string> JobserverEnvironment(const std::vector<std::string>& env,
                                              absl::string_view auth, int slots);

// Clears the jobserver from distd's own environment (MAKEFLAGS and the others above): a
// distd started from inside a make must not pass its parent's jobserver on.
void StripInheritedJobserver();

}  // namespace distd::spawn

#endif  // DISTD_SERVER_SPAWN_JOBSERVER_H_
