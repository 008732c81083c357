// distd-exec: applies a job's umask and soft resource limits, which posix_spawn cannot set,
// and then becomes the job. distd's spawner starts it, only for a job whose client's settings
// differ from distd's own, as
//
//   distd-exec [-u MODE] [-l RESOURCE:SOFT]... [-c CGROUP_PROCS] -- PROGRAM ARGV0 ARG...
//
// -c moves distd-exec into a cgroup (by writing 0 to that cgroup's cgroup.procs) before
// anything else, so that every process of the job starts in it.
// PROGRAM is the path distd resolved; ARGV0... is the job's argv; the environment is the
// job's. A soft limit above the hard one is lowered to it (hard limits are distd's). Exits 126
// if a setting cannot be applied or PROGRAM cannot be run, 127 if PROGRAM is gone, with a
// message on stderr, which is the job's.
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

namespace {

[[noreturn]] void Die(int code, const char* what, const char* detail) {
  fprintf(stderr, "distd-exec: %s%s%s\n", what, detail[0] != '\0' ? ": " : "", detail);
  _exit(code);
}

bool ParseNumber(const char* text, int base, unsigned long long* out) {
  if (text[0] == '\0' || text[0] == '-') return false;
  char* end = nullptr;
  errno = 0;
  *out = strtoull(text, &end, base);
  return errno == 0 && *end == '\0';
}

void ApplyLimit(const char* spec) {
  const char* colon = strchr(spec, ':');
  if (colon == nullptr) Die(126, "bad limit", spec);
  char resource_text[16] = {};
  const size_t length = static_cast<size_t>(colon - spec);
  if (length == 0 || length >= sizeof(resource_text)) Die(126, "bad limit", spec);
  memcpy(resource_text, spec, length);
  unsigned long long resource = 0;
  unsigned long long soft = 0;
  const bool unlimited = strcmp(colon + 1, "inf") == 0;
  if (!ParseNumber(resource_text, 10, &resource) || resource >= RLIM_NLIMITS ||
      (!unlimited && !ParseNumber(colon + 1, 10, &soft))) {
    Die(126, "bad limit", spec);
  }
  const auto which = static_cast<__rlimit_resource>(resource);
  rlimit limit;
  if (getrlimit(which, &limit) != 0) Die(126, "getrlimit", strerror(errno));
  limit.rlim_cur = unlimited ? RLIM_INFINITY : static_cast<rlim_t>(soft);
  if (limit.rlim_max != RLIM_INFINITY &&
      (limit.rlim_cur == RLIM_INFINITY || limit.rlim_cur > limit.rlim_max)) {
    limit.rlim_cur = limit.rlim_max;
  }
  if (setrlimit(which, &limit) != 0) Die(126, "setrlimit", strerror(errno));
}

// Writing 0 to a cgroup's cgroup.procs moves the writer into it.
void JoinCgroup(const char* procs) {
  const int fd = open(procs, O_WRONLY | O_CLOEXEC);
  if (fd < 0) Die(126, "cannot join the job's cgroup", strerror(errno));
  if (write(fd, "0", 1) != 1) Die(126, "cannot join the job's cgroup", strerror(errno));
  close(fd);
}

}  // namespace

int main(int argc, char** argv) {
  int i = 1;  // each flag takes a value: i steps by two
  for (; i < argc && strcmp(argv[i], "--") != 0; i += 2) {
    if (i + 1 >= argc) Die(126, "missing the value of", argv[i]);
    if (strcmp(argv[i], "-u") == 0) {
      unsigned long long mode = 0;
      if (!ParseNumber(argv[i + 1], 8, &mode) || mode > 0777) Die(126, "bad umask", argv[i + 1]);
      umask(static_cast<mode_t>(mode));
    } else if (strcmp(argv[i], "-l") == 0) {
      ApplyLimit(argv[i + 1]);
    } else if (strcmp(argv[i], "-c") == 0) {
      JoinCgroup(argv[i + 1]);
    } else {
      Die(126, "unknown flag", argv[i]);
    }
  }
  if (i + 2 >= argc) {
    Die(126,
        "usage: distd-exec [-u MODE] [-l RESOURCE:SOFT]... [-c CGROUP_PROCS] -- PROGRAM ARGV0...",
        "");
  }
  const char* program = argv[i + 1];
  execv(program, argv + i + 2);
  const int error = errno;
  fprintf(stderr, "distd-exec: cannot run %s: %s\n", program, strerror(error));
  _exit(error == ENOENT ? 127 : 126);
}
