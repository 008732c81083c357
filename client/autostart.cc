#include "client/autostart.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/private_dir.h"

extern char** environ;

namespace distd::client {
namespace {

absl::Status ErrnoError(absl::string_view what, int error) {
  return absl::UnavailableError(absl::StrCat(what, ": ", std::strerror(error)));
}

// The distd installed with this distctl, so that a build tree's client starts that tree's
// daemon rather than whatever PATH finds first. Empty if there is none.
std::string DistdNextToUs() {
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) return "";
  std::string path(self, static_cast<size_t>(n));
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return "";
  path = absl::StrCat(path.substr(0, slash), "/distd");
  return access(path.c_str(), X_OK) == 0 ? path : "";
}

// posix_spawn's state, released on every path out.
class SpawnSetup {
 public:
  SpawnSetup() {
    posix_spawn_file_actions_init(&actions_);
    posix_spawnattr_init(&attr_);
  }
  ~SpawnSetup() {
    posix_spawn_file_actions_destroy(&actions_);
    posix_spawnattr_destroy(&attr_);
  }
  SpawnSetup(const SpawnSetup&) = delete;
  SpawnSetup& operator=(const SpawnSetup&) = delete;

  // Returns 0 or an errno value.
  int Prepare(int log_fd) {
    int rc = 0;
    if (rc == 0) rc = posix_spawn_file_actions_addopen(&actions_, 0, "/dev/null", O_RDONLY, 0);
    if (rc == 0) rc = posix_spawn_file_actions_adddup2(&actions_, log_fd, 1);
    if (rc == 0) rc = posix_spawn_file_actions_adddup2(&actions_, log_fd, 2);
    // A daemon outlives its starter: an fd inherited from it (a CI runner's pipe, make's
    // jobserver) would be held open for as long as distd runs, and whoever waits for its EOF
    // would wait that long.
    if (rc == 0) rc = posix_spawn_file_actions_addclosefrom_np(&actions_, 3);
    // Nor may it pin the directory it happened to be started in.
    if (rc == 0) rc = posix_spawn_file_actions_addchdir_np(&actions_, "/");
    // distctl blocks INT/TERM/HUP and ignores PIPE; the child inherits both unless told.
    sigset_t empty;
    sigemptyset(&empty);
    sigset_t defaults;
    sigemptyset(&defaults);
    for (int signo : {SIGINT, SIGTERM, SIGHUP, SIGPIPE}) sigaddset(&defaults, signo);
    if (rc == 0) rc = posix_spawnattr_setsigmask(&attr_, &empty);
    if (rc == 0) rc = posix_spawnattr_setsigdefault(&attr_, &defaults);
    // Its own session: no controlling terminal, so the user's Ctrl-C, aimed at distctl's
    // process group, never reaches it, nor does the hang-up of the terminal.
    if (rc == 0) {
      rc = posix_spawnattr_setflags(
          &attr_, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    }
    return rc;
  }

  const posix_spawn_file_actions_t* actions() const { return &actions_; }
  const posix_spawnattr_t* attr() const { return &attr_; }

 private:
  posix_spawn_file_actions_t actions_;
  posix_spawnattr_t attr_;
};

}  // namespace

absl::StatusOr<StartedDaemon> StartDaemon(const std::string& socket_path) {
  // The directory that keeps other users away from the daemon: made private if missing,
  // refused if anyone else could have a hand in it (common/private_dir.h). distd checks it
  // again, for itself.
  const std::string dir = DirectoryOf(socket_path);
  absl::StatusOr<int> dir_fd = OpenPrivateDirectory(dir, CreateMissing::kYes);
  if (!dir_fd.ok()) return dir_fd.status();
  StartedDaemon daemon;
  daemon.log_path = absl::StrCat(dir == "/" ? "" : dir, "/distd.log");
  absl::StatusOr<int> log =
      OpenPrivateFile(*dir_fd, "distd.log", O_WRONLY | O_CREAT | O_APPEND, daemon.log_path);
  close(*dir_fd);
  if (!log.ok()) return log.status();
  const int log_fd = *log;

  // Never fork() here: gRPC's threads are running. posix_spawn execs at once.
  SpawnSetup setup;
  int rc = setup.Prepare(log_fd);
  const std::string listen = absl::StrCat("unix:", socket_path);
  daemon.program = DistdNextToUs();
  const bool from_path = daemon.program.empty();
  if (from_path) daemon.program = "distd";
  char* argv[] = {daemon.program.data(), const_cast<char*>("--listen"),
                  const_cast<char*>(listen.c_str()), nullptr};
  if (rc == 0) {
    rc = from_path
             ? posix_spawnp(&daemon.pid, "distd", setup.actions(), setup.attr(), argv, environ)
             : posix_spawn(&daemon.pid, daemon.program.c_str(), setup.actions(), setup.attr(), argv,
                           environ);
  }
  close(log_fd);
  if (rc == ENOENT && from_path) {
    return absl::UnavailableError(
        "cannot start distd: there is none next to distctl and none on PATH");
  }
  if (rc != 0) return ErrnoError(absl::StrCat("cannot start ", daemon.program), rc);
  return daemon;
}

}  // namespace distd::client
