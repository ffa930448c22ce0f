// Helpers for tests that build files by hand (not part of libevomerge: header-only, included only by
// *_test.cpp files). Raw safetensors images are assembled here byte by byte, independently of the
// project's writer, so reader tests do not trust the code they test.
#pragma once

#include <fmt/format.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <string_view>

namespace evomerge::testing {

// A fresh folder under the system temp dir, removed with everything in it on destruction.
class TempDir {
 public:
  explicit TempDir(std::string_view tag = "t") {
    static int counter = 0;
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() /
            ("evomerge-" + std::string(tag) + "-" + std::to_string(getpid()) + "-" + std::to_string(counter++) +
             "-" + std::to_string(rd() % 1000000));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(std::string_view name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

inline void write_bytes(const std::filesystem::path& path, std::string_view bytes) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

inline std::string read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// The 8-byte little-endian length prefix.
inline std::string u64_le(uint64_t v) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  return out;
}

// A safetensors file image: u64 LE header length, header text as given, data bytes.
inline std::string raw_safetensors(std::string_view header, std::string_view data) {
  return u64_le(header.size()) + std::string(header) + std::string(data);
}

// One header entry: "name":{"dtype":...,"shape":[...],"data_offsets":[b,e]} (shape given as JSON text).
inline std::string entry(std::string_view name, std::string_view dtype, std::string_view shape_json,
                         uint64_t begin, uint64_t end) {
  return fmt::format(R"("{}":{{"dtype":"{}","shape":{},"data_offsets":[{},{}]}})", name, dtype, shape_json, begin,
                     end);
}

}  // namespace evomerge::testing
