// Small file helpers with the project's error conventions: every output is written under a temporary
// name and renamed into place, so a crash or an error never leaves a half-written file or folder.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>

namespace evomerge {

// Reads a whole (small) text file; throws Error naming the file. max_bytes bounds what is read.
// Only regular files (after following links): a FIFO, a device or a folder is an Error saying what
// it is.
std::string read_text_file(const std::filesystem::path& path, size_t max_bytes = 256u << 20);

// Writes `contents` to `path` atomically (temp file in the same folder, then rename).
void write_file_atomic(const std::filesystem::path& path, std::string_view contents);

// Copies a file atomically.
void copy_file_atomic(const std::filesystem::path& from, const std::filesystem::path& to);

// pwrite() the whole buffer at `offset`, retrying short writes; throws Error naming `path`.
void write_all_at(int fd, const void* data, size_t size, uint64_t offset, const std::filesystem::path& path);

void rename_file(const std::filesystem::path& from, const std::filesystem::path& to);

// A write error (errno) in words a user can act on: EFBIG is "file too large (over the file-size
// limit ... `ulimit -f` ...)" (the CLI ignores SIGXFSZ so that writes fail with EFBIG instead of
// killing the process), ENOSPC "no space left on the device".
std::string write_error_text(int err);

// True when no process `pid` exists on this machine (kill(pid, 0) says ESRCH).
bool process_is_gone(long pid);

// Removes the staging leftovers of `name` in `parent` (".<name>.tmp-<pid>..." from
// write_file_atomic and StagedDir) whose process is gone: an interrupted merge leaves its hidden
// staging folder, up to the model's size, and the next write of the same output removes it.
void remove_dead_staging(const std::filesystem::path& parent, const std::string& name);

// An output folder that appears only when complete. The constructor creates a hidden temporary
// sibling ("<parent>/.<name>.tmp-<pid>"); path() is where to write. commit() renames it to the final
// name (replacing an existing folder only if `replace_existing`); destruction without commit()
// removes the temporary folder and everything in it.
class StagedDir {
 public:
  StagedDir(std::filesystem::path final_path, bool replace_existing);
  ~StagedDir();
  StagedDir(const StagedDir&) = delete;
  StagedDir& operator=(const StagedDir&) = delete;

  const std::filesystem::path& path() const { return temp_path_; }
  const std::filesystem::path& final_path() const { return final_path_; }
  void commit();

 private:
  std::filesystem::path final_path_;
  std::filesystem::path temp_path_;
  bool replace_existing_;
  bool committed_ = false;
};

}  // namespace evomerge
