#include "io/files.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/error.h"

namespace evomerge {

namespace fs = std::filesystem;

namespace {

const char* file_kind(fs::file_type t) {
  switch (t) {
    case fs::file_type::directory:
      return "a folder";
    case fs::file_type::fifo:
      return "a FIFO";
    case fs::file_type::socket:
      return "a socket";
    case fs::file_type::character:
      return "a character device";
    case fs::file_type::block:
      return "a block device";
    default:
      return "not a regular file";
  }
}

}  // namespace

std::string write_error_text(int err) {
  if (err == EFBIG)
    return "file too large (over the file-size limit of this process, see `ulimit -f`, or of the "
           "file "
           "system)";
  if (err == ENOSPC) return "no space left on the device";
  if (err == EDQUOT) return "disk quota exceeded";
  return std::strerror(err);
}

std::string read_text_file(const fs::path& path, size_t max_bytes) {
  std::error_code ec;
  // Only regular files: a FIFO would block forever and /dev/zero never ends (links are followed).
  const auto st = fs::status(path, ec);
  if (!ec && fs::exists(st) && !fs::is_regular_file(st))
    fail("io", "{}: is {}, not a regular file", path.string(), file_kind(st.type()));
  auto size = fs::file_size(path, ec);
  if (ec) fail("io", "{}: cannot read: {}", path.string(), ec.message());
  if (size > max_bytes) fail("io", "{}: file is {} bytes, larger than the {} allowed", path.string(), size, max_bytes);
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("io", "{}: cannot open", path.string());
  std::string text(size, '\0');
  in.read(text.data(), static_cast<std::streamsize>(size));
  if (static_cast<size_t>(in.gcount()) != size) fail("io", "{}: short read", path.string());
  return text;
}

void write_all_at(int fd, const void* data, size_t size, uint64_t offset, const fs::path& path) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = pwrite(fd, p, size, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("io", "{}: write failed: {}", path.string(), write_error_text(errno));
    }
    p += n;
    size -= static_cast<size_t>(n);
    offset += static_cast<uint64_t>(n);
  }
}

void rename_file(const fs::path& from, const fs::path& to) {
  if (std::rename(from.c_str(), to.c_str()) != 0)
    fail("io", "cannot rename {} to {}: {}", from.string(), to.string(), std::strerror(errno));
}

void write_file_atomic(const fs::path& path, std::string_view contents) {
  remove_dead_staging(path.has_parent_path() ? path.parent_path() : fs::path("."),
                      path.filename().string());
  fs::path temp = path.parent_path() / fmt::format(".{}.tmp-{}", path.filename().string(), getpid());
  int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail("io", "{}: cannot create: {}", temp.string(), std::strerror(errno));
  try {
    write_all_at(fd, contents.data(), contents.size(), 0, temp);
  } catch (...) {
    ::close(fd);
    ::unlink(temp.c_str());
    throw;
  }
  if (::close(fd) != 0) {  // delayed write errors (full disk on some file systems) surface here
    int err = errno;
    ::unlink(temp.c_str());
    fail("io", "{}: write failed: {}", temp.string(), write_error_text(err));
  }
  rename_file(temp, path);
}

void copy_file_atomic(const fs::path& from, const fs::path& to) {
  fs::path temp = to.parent_path() / fmt::format(".{}.tmp-{}", to.filename().string(), getpid());
  std::error_code ec;
  fs::copy_file(from, temp, fs::copy_options::overwrite_existing, ec);
  if (ec) {
    const std::string why = write_error_text(ec.value());
    fs::remove(temp, ec);
    fail("io", "cannot copy {} to {}: {}", from.string(), to.string(), why);
  }
  rename_file(temp, to);
}

bool process_is_gone(long pid) {
  return pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH;
}

void remove_dead_staging(const fs::path& parent, const std::string& name) {
  const std::string prefix = "." + name + ".tmp-";
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(parent, ec)) {
    const std::string f = e.path().filename().string();
    if (f.rfind(prefix, 0) != 0) continue;
    const std::string rest = f.substr(prefix.size());
    char* end = nullptr;
    const long pid = std::strtol(rest.c_str(), &end, 10);
    if (end == rest.c_str() || (*end != '\0' && *end != '-' && *end != '.')) continue;
    if (pid != ::getpid() && process_is_gone(pid)) fs::remove_all(e.path(), ec);
  }
}

StagedDir::StagedDir(fs::path final_path, bool replace_existing)
    : final_path_(std::move(final_path)), replace_existing_(replace_existing) {
  if (final_path_.filename().empty()) final_path_ = final_path_.parent_path();
  std::error_code ec;
  if (fs::exists(final_path_, ec) && !replace_existing_)
    fail("io", "{}: output folder already exists (use --force to replace it)", final_path_.string());
  fs::path parent = final_path_.has_parent_path() ? final_path_.parent_path() : fs::path(".");
  fs::create_directories(parent, ec);
  if (ec) fail("io", "{}: cannot create folder: {}", parent.string(), ec.message());
  remove_dead_staging(parent, final_path_.filename().string());
  // pid + a per-process counter: two staged folders for the same name never share a temporary.
  static std::atomic<unsigned> counter{0};
  temp_path_ = parent / fmt::format(".{}.tmp-{}-{}", final_path_.filename().string(), getpid(), counter++);
  fs::remove_all(temp_path_, ec);
  fs::create_directory(temp_path_, ec);
  if (ec) fail("io", "{}: cannot create folder: {}", temp_path_.string(), ec.message());
}

StagedDir::~StagedDir() {
  if (!committed_) {
    std::error_code ec;
    fs::remove_all(temp_path_, ec);
  }
}

void StagedDir::commit() {
  EM_ASSERT(!committed_);
  std::error_code ec;
  fs::path old;
  if (fs::exists(final_path_, ec)) {
    if (!replace_existing_) fail("io", "{}: output folder already exists (use --force to replace it)", final_path_.string());
    old = temp_path_.string() + ".old";
    rename_file(final_path_, old);
  }
  try {
    rename_file(temp_path_, final_path_);
  } catch (const Error&) {
    if (!old.empty()) std::rename(old.c_str(), final_path_.c_str());  // put the previous folder back
    throw;
  }
  committed_ = true;
  if (!old.empty()) fs::remove_all(old, ec);
}

}  // namespace evomerge
