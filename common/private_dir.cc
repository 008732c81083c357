#include "common/private_dir.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace distd {
namespace {

constexpr int kMaxLinks = 40;  // as the kernel's path walk

absl::Status Refuse(const std::string& path, absl::string_view what) {
  return absl::FailedPreconditionError(absl::StrCat(path, " ", what));
}

absl::Status ErrnoStatus(absl::string_view what, const std::string& path, int error) {
  return absl::FailedPreconditionError(absl::StrCat(what, " ", path, ": ", std::strerror(error)));
}

std::string Mode(mode_t mode) { return absl::StrFormat("%04o", mode & 07777); }

// Closes the fd it holds when replaced or destroyed.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { Reset(-1); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  void Reset(int fd) {
    if (fd_ >= 0) close(fd_);
    fd_ = fd;
  }
  int Release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_;
};

bool TrustedOwner(uid_t uid) { return uid == 0 || uid == geteuid(); }

// A directory above the private one: nobody but root and the user may change what it holds.
absl::Status CheckAncestor(const std::string& path, const struct stat& st) {
  if (!TrustedOwner(st.st_uid)) {
    return Refuse(
        path, absl::StrCat("belongs to uid ", st.st_uid, ", who could replace what lies below it"));
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0 && (st.st_mode & S_ISVTX) == 0) {
    return Refuse(path, absl::StrCat("is writable by others (mode ", Mode(st.st_mode),
                                     ", no sticky bit): they could replace what lies below it"));
  }
  return absl::OkStatus();
}

// The private directory itself.
absl::Status CheckPrivate(const std::string& path, const struct stat& st) {
  if (st.st_uid != geteuid()) {
    return Refuse(path, absl::StrCat("belongs to uid ", st.st_uid, ", not to this user (uid ",
                                     geteuid(), "); remove it or use another path"));
  }
  if ((st.st_mode & 077) != 0) {
    return Refuse(path, absl::StrCat("has mode ", Mode(st.st_mode), "; it must be 0700 (chmod 700 ",
                                     path, ")"));
  }
  return absl::OkStatus();
}

}  // namespace

std::string DirectoryOf(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string BaseName(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

absl::StatusOr<int> OpenPrivateDirectory(const std::string& dir, CreateMissing create) {
  std::string absolute = dir;
  if (absolute.empty() || absolute[0] != '/') {
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof(cwd)) == nullptr) {
      return ErrnoStatus("cannot tell the current directory for", dir, errno);
    }
    absolute = absl::StrCat(cwd, "/", dir);
  }
  // The walk goes component by component from "/" on descriptors, never by path: what was
  // checked is what is opened next.
  std::deque<std::string> left;
  for (absl::string_view part : absl::StrSplit(absolute, '/', absl::SkipEmpty())) {
    if (part != ".") left.emplace_back(part);
  }
  Fd current(open("/", O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (current.get() < 0) return ErrnoStatus("cannot open", "/", errno);
  std::string shown = "/";  // the path walked so far, for messages
  int links = 0;
  while (!left.empty()) {
    const std::string name = left.front();
    left.pop_front();
    const bool last = left.empty();
    const std::string here =
        shown == "/" ? absl::StrCat("/", name) : absl::StrCat(shown, "/", name);
    struct stat st;
    if (fstatat(current.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno != ENOENT) return ErrnoStatus("cannot examine", here, errno);
      if (create == CreateMissing::kNo) return Refuse(here, "does not exist");
      if (mkdirat(current.get(), name.c_str(), 0700) != 0 && errno != EEXIST) {
        return ErrnoStatus("cannot create", here, errno);
      }
      // The umask may have taken the owner's bits; nobody but us can have changed it since.
      if (fchmodat(current.get(), name.c_str(), 0700, 0) != 0 ||
          fstatat(current.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        return ErrnoStatus("cannot set up", here, errno);
      }
    }
    if (S_ISLNK(st.st_mode)) {
      if (last) {
        char target[PATH_MAX] = {};
        ssize_t n = readlinkat(current.get(), name.c_str(), target, sizeof(target) - 1);
        return Refuse(here, absl::StrCat("is a symbolic link",
                                         n > 0 ? absl::StrCat(" (to ", target, ")") : "",
                                         ", not a directory; remove it"));
      }
      if (!TrustedOwner(st.st_uid)) {
        return Refuse(here, absl::StrCat("is a symbolic link of uid ", st.st_uid));
      }
      if (++links > kMaxLinks) return Refuse(dir, "has too many symbolic links");
      char target[PATH_MAX];
      ssize_t n = readlinkat(current.get(), name.c_str(), target, sizeof(target) - 1);
      if (n <= 0) return ErrnoStatus("cannot read the link", here, errno);
      const std::string to(target, static_cast<size_t>(n));
      std::vector<std::string> parts;
      for (absl::string_view part : absl::StrSplit(to, '/', absl::SkipEmpty())) {
        if (part != ".") parts.emplace_back(part);
      }
      left.insert(left.begin(), parts.begin(), parts.end());
      if (to[0] == '/') {
        current.Reset(open("/", O_PATH | O_DIRECTORY | O_CLOEXEC));
        if (current.get() < 0) return ErrnoStatus("cannot open", "/", errno);
        shown.assign(1, '/');  // (not = "/": a false -Wrestrict of gcc 12)
      }
      continue;
    }
    if (!S_ISDIR(st.st_mode)) return Refuse(here, "is not a directory");
    Fd next(openat(current.get(), name.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    struct stat opened;
    if (next.get() < 0 || fstat(next.get(), &opened) != 0) {
      return ErrnoStatus("cannot open", here, errno);
    }
    if (opened.st_dev != st.st_dev || opened.st_ino != st.st_ino) {
      return Refuse(here, "was replaced while it was being checked");
    }
    // ".." leads to a directory checked on the way down, or to one above the start, which
    // is held to the same rule here.
    if (absl::Status s = last ? CheckPrivate(here, opened) : CheckAncestor(here, opened); !s.ok()) {
      return s;
    }
    current.Reset(next.Release());
    shown = name == ".." ? DirectoryOf(shown) : here;
  }
  if (shown == "/") return Refuse("/", "cannot be a private directory");
  return current.Release();
}

absl::StatusOr<int> OpenPrivateFile(int dir_fd, const std::string& name, int flags,
                                    const std::string& shown) {
  int fd = openat(dir_fd, name.c_str(), flags | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
  if (fd < 0) {
    if (errno == ELOOP) return Refuse(shown, "is a symbolic link; remove it");
    return ErrnoStatus("cannot open", shown, errno);
  }
  struct stat st;
  absl::Status status;
  if (fstat(fd, &st) != 0) {
    status = ErrnoStatus("cannot examine", shown, errno);
  } else if (!S_ISREG(st.st_mode)) {
    status = Refuse(shown, "is not a regular file");
  } else if (st.st_uid != geteuid()) {
    status = Refuse(shown, absl::StrCat("belongs to uid ", st.st_uid, ", not to this user"));
  }
  if (!status.ok()) {
    close(fd);
    return status;
  }
  return fd;
}

}  // namespace distd
