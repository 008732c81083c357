#include "server/journal/outputs.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/private_dir.h"
#include "spdlog/spdlog.h"

namespace distd::journal {
namespace {

constexpr const char* kSuffix[] = {"", ".stdout", ".stderr"};

int StreamNumber(engine::OutputStream stream) {
  return stream == engine::OutputStream::kStdout ? 1 : 2;
}

// Writes all of `data`, adding to *written what made it; 0 or the errno of the failure.
int WriteAll(int fd, absl::string_view data, uint64_t* written) {
  while (!data.empty()) {
    const ssize_t n = write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    *written += static_cast<uint64_t>(n);
    data.remove_prefix(static_cast<size_t>(n));
  }
  return 0;
}

}  // namespace

struct OutputStore::Open_ {
  Open_(int file, uint64_t tail_limit) : fd(file) { tail.emplace(0, tail_limit); }
  int fd;
  uint64_t head = 0;                         // bytes of the job's output in the file
  std::optional<engine::OutputBuffer> tail;  // what came after the head, its end kept
  uint64_t omitted = 0;  // of what came after the head, lost before `tail` began
  uint64_t skipped = 0;  // bytes missing from the head, not yet marked
  char last = '\n';      // the last byte in the file (a marker starts on a new line)
  int error = 0;         // the write that failed: nothing more is written but markers
};

OutputStore::OutputStore(int dir_fd, std::string path, OutputLimits limits)
    : dir_fd_(dir_fd), path_(std::move(path)), limits_(limits) {}

OutputStore::~OutputStore() {
  for (auto& [key, open] : open_) close(open->fd);
  close(dir_fd_);
}

absl::StatusOr<std::unique_ptr<OutputStore>> OutputStore::Open(const std::string& state_dir,
                                                               OutputLimits limits,
                                                               engine::JobId last_job_id) {
  if (limits.cap == 0) return absl::InvalidArgumentError("the output cap must be above 0");
  limits.tail = std::min(limits.tail, limits.cap / 2);
  const std::string path = absl::StrCat(state_dir, "/", kDirName);
  absl::StatusOr<int> dir_fd = OpenPrivateDirectory(path, CreateMissing::kYes);
  if (!dir_fd.ok()) return dir_fd.status();
  std::unique_ptr<OutputStore> store(new OutputStore(*dir_fd, path, limits));
  // Take stock: the files a distd before this one left.
  const int list_fd = openat(*dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR* dir = list_fd < 0 ? nullptr : fdopendir(list_fd);
  if (dir == nullptr) {
    const int error = errno;
    if (list_fd >= 0) close(list_fd);
    return absl::FailedPreconditionError(
        absl::StrCat("cannot list ", path, ": ", std::strerror(error)));
  }
  while (const dirent* entry = readdir(dir)) {
    absl::string_view name = entry->d_name;
    int number = 0;
    if (absl::ConsumeSuffix(&name, kSuffix[1])) {
      number = 1;
    } else if (absl::ConsumeSuffix(&name, kSuffix[2])) {
      number = 2;
    }
    engine::JobId id = 0;
    struct stat st;
    if (number == 0 || !absl::SimpleAtoi(name, &id) || id == 0 ||
        fstatat(*dir_fd, entry->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) {
      continue;  // not ours: left alone
    }
    store->on_disk_[{id, number}] = {static_cast<uint64_t>(st.st_size),
                                     absl::TimeFromTimespec(st.st_mtim)};
    store->bytes_ += static_cast<uint64_t>(st.st_size);
  }
  closedir(dir);
  // Files of ids the journal never committed (distd died between the output and the rows)
  // would be shown as the output of the jobs that get those ids next.
  std::vector<Key> unknown;
  for (auto it = store->on_disk_.upper_bound({last_job_id, 2}); it != store->on_disk_.end(); ++it) {
    unknown.push_back(it->first);
  }
  for (const Key& key : unknown) store->Remove(key);
  return store;
}

std::string OutputStore::FileName(const Key& key) {
  return absl::StrCat(key.first, kSuffix[key.second]);
}

OutputStore::Open_* OutputStore::Stream(engine::JobId id, engine::OutputStream stream) {
  const Key key{id, StreamNumber(stream)};
  if (auto it = open_.find(key); it != open_.end()) return it->second.get();
  // Whatever has this name (a file of a journal that was moved away, a link someone put
  // there) is not this job's: it goes, and the file is made anew.
  Remove(key);
  const std::string name = FileName(key);
  unlinkat(dir_fd_, name.c_str(), 0);
  absl::StatusOr<int> fd = OpenPrivateFile(dir_fd_, name, O_WRONLY | O_CREAT | O_EXCL | O_APPEND,
                                           absl::StrCat(path_, "/", name));
  auto open = std::make_unique<Open_>(fd.ok() ? *fd : -1, limits_.tail);
  if (!fd.ok()) {
    spdlog::warn("the output of job {} is not kept on disk: {}", id,
                 std::string(fd.status().message()));
    open->error = EIO;
  } else {
    on_disk_[key] = {0, absl::Now()};
  }
  return open_.emplace(key, std::move(open)).first->second.get();
}

void OutputStore::Write(const Key& key, Open_& open, absl::string_view data, bool marker) {
  if (open.fd < 0 || data.empty()) return;
  if (open.error != 0 && !marker) return;  // after a failure, markers only
  uint64_t written = 0;                    // counted even when a write fails part way
  const int error = WriteAll(open.fd, data, &written);
  on_disk_[key].bytes += written;
  bytes_ += written;
  if (error != 0) {
    if (open.error == 0) {
      spdlog::warn("the output of job {} is kept on disk only in part: {}/{}: {}", key.first, path_,
                   FileName(key), std::strerror(error));
    }
    open.error = error;
  }
  if (written > 0) open.last = data[written - 1];
}

void OutputStore::MarkSkipped(const Key& key, Open_& open) {
  if (open.skipped == 0) return;
  Write(key, open,
        absl::StrCat(open.last == '\n' ? "" : "\n", "[distd: ", open.skipped,
                     " bytes of output not kept here: distd fell behind]\n"),
        /*marker=*/true);
  open.skipped = 0;
}

void OutputStore::Append(engine::JobId id, engine::OutputStream stream, absl::string_view data) {
  const Key key{id, StreamNumber(stream)};
  Open_& open = *Stream(id, stream);
  if (open.error != 0) {
    Skipped(id, stream, data.size());
    return;
  }
  const uint64_t head_limit = limits_.cap - limits_.tail;
  if (open.head < head_limit) {
    MarkSkipped(key, open);
    const size_t n = static_cast<size_t>(std::min<uint64_t>(data.size(), head_limit - open.head));
    Write(key, open, data.substr(0, n), /*marker=*/false);
    open.head += n;
    data.remove_prefix(n);
  }
  if (!data.empty()) open.tail->Append(data);
}

void OutputStore::Skipped(engine::JobId id, engine::OutputStream stream, uint64_t bytes) {
  Open_& open = *Stream(id, stream);
  if (open.head < limits_.cap - limits_.tail && open.tail->total() == 0) {
    open.skipped += bytes;
  } else {
    // Past the head: the tail begins again after the gap, and what came before it is omitted.
    open.omitted += open.tail->total() + bytes;
    open.tail.emplace(0, limits_.tail);
  }
}

OutputSizes OutputStore::Finish(engine::JobId id) {
  OutputSizes sizes;
  for (int number : {1, 2}) {
    const Key key{id, number};
    auto it = open_.find(key);
    if (it == open_.end()) continue;
    Open_& open = *it->second;
    const char* newline = open.last == '\n' ? "" : "\n";
    if (open.error != 0) {
      Write(key, open,
            absl::StrCat(newline, "[distd: the rest of the output is not kept here: ",
                         std::strerror(open.error), "]\n"),
            /*marker=*/true);
    } else if (open.skipped > 0) {
      MarkSkipped(key, open);  // nothing came after the gap: there is no tail
    } else if (open.tail->total() > 0 || open.omitted > 0) {
      std::string end;
      if (const uint64_t omitted = open.omitted + open.tail->omitted(); omitted > 0) {
        end = absl::StrCat(newline, engine::OmittedMarker(omitted));
      }
      open.tail->AppendTail(&end);
      Write(key, open, end, /*marker=*/false);
    }
    Close(key);
    if (auto file = on_disk_.find(key); file != on_disk_.end()) {
      (number == 1 ? sizes.stdout_bytes : sizes.stderr_bytes) = file->second.bytes;
    }
  }
  return sizes;
}

void OutputStore::Close(const Key& key) {
  auto it = open_.find(key);
  if (it == open_.end()) return;
  // Its age counts from the job's end, not from its last output.
  if (auto file = on_disk_.find(key); file != on_disk_.end()) file->second.modified = absl::Now();
  if (it->second->fd >= 0) futimens(it->second->fd, nullptr);
  if (it->second->fd >= 0) close(it->second->fd);
  open_.erase(it);
}

void OutputStore::Remove(const Key& key) {
  auto it = on_disk_.find(key);
  if (it == on_disk_.end()) return;
  if (unlinkat(dir_fd_, FileName(key).c_str(), 0) != 0 && errno != ENOENT) {
    spdlog::warn("cannot remove {}/{}: {}", path_, FileName(key), std::strerror(errno));
    return;
  }
  bytes_ -= it->second.bytes;
  on_disk_.erase(it);
}

uint64_t OutputStore::Prune(const Retention& retention, absl::Time now) {
  const uint64_t before = bytes_;
  std::vector<Key> doomed;
  for (const auto& [key, info] : on_disk_) {
    if (!open_.contains(key) && info.modified < now - retention.age) doomed.push_back(key);
  }
  for (const Key& key : doomed) Remove(key);
  Shrink(retention.bytes);
  return before - bytes_;
}

void OutputStore::Shrink(uint64_t limit) {
  // The oldest jobs' files, until what is left is within the size.
  std::vector<Key> doomed;
  uint64_t left = bytes_;
  for (const auto& [key, info] : on_disk_) {
    if (left <= limit) break;
    if (open_.contains(key)) continue;
    doomed.push_back(key);
    left -= info.bytes;
  }
  for (const Key& key : doomed) Remove(key);
}

absl::StatusOr<std::optional<std::string>> OutputStore::Read(engine::JobId id,
                                                             engine::OutputStream stream) const {
  const std::string name = FileName({id, StreamNumber(stream)});
  const std::string shown = absl::StrCat(path_, "/", name);
  struct stat st;
  if (fstatat(dir_fd_, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 && errno == ENOENT) {
    return std::nullopt;
  }
  // O_NONBLOCK: a fifo put there must not hold the reader (OpenPrivateFile then refuses it).
  absl::StatusOr<int> fd = OpenPrivateFile(dir_fd_, name, O_RDONLY | O_NONBLOCK, shown);
  if (!fd.ok() && fstatat(dir_fd_, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 &&
      errno == ENOENT) {
    return std::nullopt;  // removed since
  }
  if (!fd.ok()) return fd.status();
  // Never more than a stream may hold, whatever the file became.
  const uint64_t limit = limits_.cap + 4096;
  std::string text;
  char buffer[1 << 16];
  while (text.size() < limit) {
    const ssize_t n = read(
        *fd, buffer, static_cast<size_t>(std::min<uint64_t>(sizeof buffer, limit - text.size())));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int error = errno;
      close(*fd);
      return absl::UnavailableError(
          absl::StrCat("cannot read ", shown, ": ", std::strerror(error)));
    }
    if (n == 0) break;
    text.append(buffer, static_cast<size_t>(n));
  }
  close(*fd);
  if (text.size() >= limit) {
    absl::StrAppend(&text, "\n[distd: ", shown,
                    " is longer than a job's output may be; the rest "
                    "is not shown]\n");
  }
  return text;
}

}  // namespace distd::journal
