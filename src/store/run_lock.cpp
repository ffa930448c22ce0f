#include "store/run_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <utility>

#include "common/error.h"
#include "common/text.h"

namespace evomerge {

std::string lock_holder_text() {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0) std::strcpy(host, "?");
  const auto t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char when[32];
  std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return fmt::format("pid {} on host {}, since {}", ::getpid(), host, when);
}

RunFolderLock::RunFolderLock(const std::filesystem::path& dir) {
  const auto path = dir / "run.lock";
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd_ < 0)
    fail("store", "{}: cannot open the lock file: {}", path.string(), std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    // Who holds it: the holder wrote its identity right after taking the lock (bounded read: the
    // file is ours, but a folder can be shared with anyone).
    char buf[512] = {};
    const ssize_t n = ::pread(fd_, buf, sizeof buf - 1, 0);
    std::string holder = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
    while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
    holder = printable(holder);
    ::close(fd_);
    fd_ = -1;
    if (err != EWOULDBLOCK) fail("store", "{}: cannot lock: {}", path.string(), std::strerror(err));
    fail("store",
         "{}: this run folder is in use by another evomerge process ({}); wait for it to finish "
         "or stop it, or use another --run folder",
         dir.string(), holder.empty() ? "which is still starting" : holder);
  }
  const std::string me = lock_holder_text() + "\n";
  // Best effort: the identity is for messages only; the lock itself is the flock.
  if (::ftruncate(fd_, 0) == 0) {
    [[maybe_unused]] const ssize_t w = ::pwrite(fd_, me.data(), me.size(), 0);
  }
}

RunFolderLock::RunFolderLock(RunFolderLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

RunFolderLock& RunFolderLock::operator=(RunFolderLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

RunFolderLock::~RunFolderLock() {
  if (fd_ >= 0) ::close(fd_);  // closing the last descriptor releases the flock
}

}  // namespace evomerge
