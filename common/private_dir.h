// The directory of a unix socket that distd serves and distctl starts distd for: only its
// owner may be able to put a socket, a lock or a log there, or to swap the directory itself.
//
// The rule, as OpenSSH and systemd apply it to their runtime directories, with no exception
// for root:
//   - the directory itself is a real directory (not a symbolic link), owned by the calling
//     user, mode 0700 (no access for group or others);
//   - every directory above it is owned by root or the calling user and writable by nobody
//     else, unless it has the sticky bit (as /tmp does: there, only an entry's owner may
//     rename or remove it); a symbolic link on the way must be owned by root or the user,
//     and where it leads is held to the same rule.
// Anything else is refused with a message that names the path and what is wrong; there is
// never a fallback to another path.
#ifndef DISTD_COMMON_PRIVATE_DIR_H_
#define DISTD_COMMON_PRIVATE_DIR_H_

#include <string>

#include "absl/status/statusor.h"

namespace distd {

enum class CreateMissing { kNo, kYes };

// Checks `dir` (absolute or relative to the current directory) by the rule above and returns
// an O_PATH descriptor of it, for openat(..., O_NOFOLLOW) of the files inside (the caller
// closes it). With CreateMissing::kYes, missing directories are created first, each with
// mode 0700. Errors are FailedPrecondition, worded for the user.
absl::StatusOr<int> OpenPrivateDirectory(const std::string& dir, CreateMissing create);

// Opens `name` in the directory `dir_fd` without following a symbolic link, with `flags`
// (O_CLOEXEC and O_NOFOLLOW are added; O_CREAT creates it with mode 0600), and checks that
// it is a regular file of the calling user. `shown` names it in messages.
absl::StatusOr<int> OpenPrivateFile(int dir_fd, const std::string& name, int flags,
                                    const std::string& shown);

// The directory part of a socket path: "/a/b" for "/a/b/s.sock", "." for "s.sock".
std::string DirectoryOf(const std::string& path);
// The last part: "s.sock".
std::string BaseName(const std::string& path);

}  // namespace distd

#endif  // DISTD_COMMON_PRIVATE_DIR_H_
