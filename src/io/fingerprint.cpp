#include "io/fingerprint.h"

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>
#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/error.h"
#include "common/hash.h"

namespace evomerge {

namespace fs = std::filesystem;

namespace {

constexpr uint64_t kWholeBelow = uint64_t{8} << 20;
constexpr uint64_t kHead = uint64_t{1} << 20;
constexpr uint64_t kBlock = uint64_t{64} << 10;
constexpr int kSamples = 64;
constexpr uint64_t kMaxHeader = uint64_t{100} << 20;  // the safetensors reader's own bound

class Reader {
 public:
  explicit Reader(const fs::path& path) : path_(path) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) fail("io", "{}: cannot read: {}", path.string(), std::strerror(errno));
  }
  ~Reader() { ::close(fd_); }
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;

  // Hashes [offset, offset + n) into h, in bounded chunks.
  uint64_t hash(uint64_t offset, uint64_t n, uint64_t h) {
    buf_.resize(static_cast<size_t>(std::min<uint64_t>(n, kHead)));
    while (n > 0) {
      const size_t want = static_cast<size_t>(std::min<uint64_t>(n, buf_.size()));
      const ssize_t got = ::pread(fd_, buf_.data(), want, static_cast<off_t>(offset));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) fail("io", "{}: read failed at byte {}", path_.string(), offset);
      h = fnv1a64(std::string_view(buf_.data(), static_cast<size_t>(got)), h);
      offset += static_cast<uint64_t>(got);
      n -= static_cast<uint64_t>(got);
    }
    return h;
  }
  uint64_t u64_at(uint64_t offset) {
    unsigned char b[8] = {};
    if (::pread(fd_, b, 8, static_cast<off_t>(offset)) != 8) return 0;
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | b[i];
    return v;
  }

 private:
  fs::path path_;
  int fd_ = -1;
  std::vector<char> buf_;
};

}  // namespace

std::string fingerprint_file(const fs::path& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec))
    fail("io", "{}: not a regular file, cannot fingerprint it", path.string());
  const uint64_t size = fs::file_size(path, ec);
  if (ec) fail("io", "{}: cannot read: {}", path.string(), ec.message());
  Reader r(path);
  uint64_t h = fnv1a64(fmt::format("size {};", size));
  if (size <= kWholeBelow) return fmt::format("{:016x}", r.hash(0, size, h));
  h = r.hash(0, kHead, h);
  if (path.extension() == ".safetensors") {
    const uint64_t header = r.u64_at(0);
    if (header <= kMaxHeader && 8 + header <= size && 8 + header > kHead)
      h = r.hash(kHead, 8 + header - kHead, h);
  }
  const uint64_t span = size - kHead - kBlock;
  for (int i = 0; i < kSamples; ++i)
    h = r.hash(kHead + span / kSamples * static_cast<uint64_t>(i), kBlock, h);
  h = r.hash(size - kBlock, kBlock, h);
  return fmt::format("{:016x}", h);
}

namespace {
ContentFingerprint combine(std::map<std::string, std::string> parts) {
  ContentFingerprint f;
  uint64_t h = kFnvOffset;
  for (const auto& [name, fp] : parts) h = fnv1a64(name + "=" + fp + ";", h);
  f.whole = fmt::format("{:016x}", h);
  f.parts = std::move(parts);
  return f;
}
}  // namespace

ContentFingerprint fingerprint_folder(const fs::path& dir) {
  std::map<std::string, std::string> parts;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.empty() || name[0] == '.' || !e.is_regular_file(ec)) continue;
    parts[name] = fingerprint_file(e.path());
  }
  if (ec) fail("io", "{}: cannot list: {}", dir.string(), ec.message());
  return combine(std::move(parts));
}

ContentFingerprint fingerprint_files(const std::vector<fs::path>& files) {
  std::map<std::string, std::string> parts;
  for (const auto& f : files) parts[f.string()] = fingerprint_file(f);
  return combine(std::move(parts));
}

}  // namespace evomerge
