#include "evolve/dfs_export.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>

#include "common/error.h"
#include "infer/random_model.h"
#include "io/files.h"

namespace fs = std::filesystem;
using namespace evomerge;

namespace {
struct Dir {
  fs::path path =
      fs::temp_directory_path() / ("evomerge_dfs_export_test_" + std::to_string(::getpid()));
  Dir() { fs::create_directories(path); }
  ~Dir() { fs::remove_all(path); }
};

nlohmann::json write_model(const fs::path& dir, int layers, uint64_t seed,
                           const std::string& family = "llama", double eps = 1e-6) {
  RandomModelSpec spec;
  spec.config = small_model_config(family, 64, 32, 48, layers, 4, 2);
  spec.config["rms_norm_eps"] = eps;
  spec.config["max_position_embeddings"] = 64;
  spec.seed = seed;
  spec.stddev = 0.2f;
  spec.dtype = DType::F32;
  write_random_model(dir, spec);
  return spec.config;
}
}  // namespace

// RMSNorm(c x; eps) = RMSNorm(x; eps / c^2), so folding is exact only as eps -> 0: with eps = 1e-12
// the export must equal the routed engine to f32 rounding; with a real eps (1e-5 on these tiny
// random models) it must still agree closely (the effective eps shifts by 1/P_k^2).
TEST(DfsExport, ExportedStandardModelMatchesTheRoutedEngine) {
  for (const auto& [family, eps] : {std::pair{"llama", 1e-12}, {"qwen2", 1e-12}, {"llama", 1e-5}}) {
    Dir d;
    const auto cfg_a = write_model(d.path / "a", 3, 1, family, eps);
    write_model(d.path / "b", 2, 2, family, eps);
    std::vector<std::shared_ptr<const WeightSource>> models{
        open_folder_weights((d.path / "a").string()), open_folder_weights((d.path / "b").string())};
    // Scales far from 1 so an unfolded export would differ clearly; B's layer 0 used twice.
    const std::vector<LayerHop> path{{0, 0, 1.0f}, {1, 0, 1.7f}, {0, 1, 0.6f},
                                     {1, 0, 1.3f}, {1, 1, 0.8f}, {0, 2, 1.9f}};
    EngineOptions eo;
    eo.threads = 1;
    Engine routed(models, path, eo);
    DfsExportOptions f32;
    f32.dtype = DType::F32;  // no rounding added, so only the folding is measured
    export_dfs_model(models, path, cfg_a, d.path / "out", f32);
    const auto cfg = nlohmann::json::parse(read_text_file(d.path / "out" / "config.json"));
    EXPECT_EQ(cfg["num_hidden_layers"], 6);
    Engine plain(open_folder_weights((d.path / "out").string()), eo);
    const std::vector<std::vector<int32_t>> seqs{{1, 5, 9, 33, 2, 7, 61}, {4, 4, 8}};
    const auto a = routed.forward_logits(seqs);
    const auto b = plain.forward_logits(seqs);
    ASSERT_EQ(a.size(), b.size());
    float max_diff = 0, max_abs = 0;
    for (size_t s = 0; s < a.size(); ++s) {
      ASSERT_EQ(a[s].size(), b[s].size());
      for (size_t i = 0; i < a[s].size(); ++i) {
        max_diff = std::max(max_diff, std::fabs(a[s][i] - b[s][i]));
        max_abs = std::max(max_abs, std::fabs(a[s][i]));
      }
    }
    if (eps < 1e-9) {
      EXPECT_LT(max_diff, 1e-4f * std::max(1.0f, max_abs)) << family;
    }

    // Without folding (all scales 1 in the export), the logits differ: the scales matter.
    std::vector<LayerHop> unit = path;
    for (auto& h : unit) h.input_scale = 1.0f;
    export_dfs_model(models, unit, cfg_a, d.path / "unit", f32);
    Engine unscaled(open_folder_weights((d.path / "unit").string()), eo);
    const auto c = unscaled.forward_logits(seqs);
    float diff_unit = 0;
    for (size_t i = 0; i < a[0].size(); ++i)
      diff_unit = std::max(diff_unit, std::fabs(a[0][i] - c[0][i]));
    if (eps < 1e-9)
      EXPECT_GT(diff_unit, 1000 * max_diff) << family;
    else
      EXPECT_LT(max_diff, 1e-3f * std::max(1.0f, max_abs)) << family;
    std::printf("%s eps=%g: export vs routed max |diff| %g (unfolded export: %g)\n", family, eps,
                max_diff, diff_unit);
  }
}

TEST(DfsExport, BadPathsFailBeforeWriting) {
  Dir d;
  const auto cfg_a = write_model(d.path / "a", 2, 1);
  RandomModelSpec wide;
  wide.config = small_model_config("llama", 64, 32, 96, 2, 4, 2);  // different intermediate size
  wide.dtype = DType::F32;
  write_random_model(d.path / "wide", wide);
  std::vector<std::shared_ptr<const WeightSource>> models{
      open_folder_weights((d.path / "a").string()),
      open_folder_weights((d.path / "wide").string())};
  EXPECT_THROW(export_dfs_model(models, {{0, 0, 1}, {0, 5, 1}}, cfg_a, d.path / "o1"), Error);
  EXPECT_THROW(export_dfs_model(models, {{0, 0, 1}, {0, 1, -1}}, cfg_a, d.path / "o2"), Error);
  EXPECT_THROW(export_dfs_model(models, {{0, 0, 1}, {1, 1, 1}}, cfg_a, d.path / "o3"), Error);
  EXPECT_FALSE(fs::exists(d.path / "o1"));
  EXPECT_FALSE(fs::exists(d.path / "o3"));
}
