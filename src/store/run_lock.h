// An exclusive lock on a run folder: an OS file lock (flock) on `<run>/run.lock`, so the kernel
// releases it when the holder dies (SIGKILL, power loss of the process) and no stale lock is ever
// left behind. The file names its holder ("pid 1234 on host node7"), so a second process that is
// refused can say who has the folder.
#pragma once

#include <filesystem>
#include <string>

namespace evomerge {

class RunFolderLock {
 public:
  // Takes the lock or throws Error "[store] DIR: in use by another evomerge process (pid P on host
  // H, since T); ...". Never waits.
  explicit RunFolderLock(const std::filesystem::path& dir);
  RunFolderLock() = default;
  RunFolderLock(RunFolderLock&& other) noexcept;
  RunFolderLock& operator=(RunFolderLock&& other) noexcept;
  RunFolderLock(const RunFolderLock&) = delete;
  RunFolderLock& operator=(const RunFolderLock&) = delete;
  ~RunFolderLock();

  bool held() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

// "pid 1234 on host node7" for this process.
std::string lock_holder_text();

}  // namespace evomerge
