// Helpers shared by the inference stage's tests (not part of the library API).
#pragma once

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "infer/engine.h"
#include "infer/random_model.h"

namespace evomerge::testing {

// A fresh folder under the system temp dir, removed at the end of the test.
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& name) {
    path = std::filesystem::temp_directory_path() /
           ("evomerge_infer_" + name + "_" + std::to_string(getpid()));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

// Writes a random model of `config` into dir/name and opens it.
inline std::shared_ptr<WeightSource> random_model(const TempDir& dir, const std::string& name,
                                                  nlohmann::json config, uint64_t seed,
                                                  DType dtype = DType::BF16) {
  RandomModelSpec spec;
  spec.config = std::move(config);
  spec.seed = seed;
  spec.dtype = dtype;
  write_random_model(dir.path / name, spec);
  return open_folder_weights((dir.path / name).string());
}

inline float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return INFINITY;
  float m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

inline std::vector<int32_t> some_tokens(int n, int vocab, uint32_t seed) {
  std::vector<int32_t> t;
  uint32_t s = seed * 2654435761u + 12345;
  for (int i = 0; i < n; ++i) {
    s = s * 1664525u + 1013904223u;
    t.push_back(static_cast<int32_t>((s >> 8) % static_cast<uint32_t>(vocab)));
  }
  return t;
}

}  // namespace evomerge::testing
