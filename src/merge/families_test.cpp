// Merging the newer families (Gemma 2/3, Phi-3, Granite, Mixtral, Qwen2-MoE, GPT-2, GPT-NeoX) on
// generated tiny models: a frankenmerge of layer ranges with a per-layer weight gradient, checked
// tensor by tensor (fused Phi-3 projections and every expert included), and the merged folder opens
// as its family.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>

#include "arch/arch.h"
#include "arch/test_support.h"
#include "common/progress.h"
#include "merge/merge.h"
#include "merge/test_models.h"

namespace evomerge {
namespace {

namespace fs = std::filesystem;
using testing::make_tiny_model;
using testing::tensor_f32;

TEST(MergeOnlyFamilies, SlicesAndLayerGradientsOnEveryFamily) {
  Progress::set_global_enabled(false);
  const fs::path root =
      fs::temp_directory_path() / ("evomerge_families_test_" + std::to_string(getpid()));
  fs::remove_all(root);
  for (std::string family :
       {"gemma2", "gemma3", "phi3", "granite", "mixtral", "qwen2_moe", "gpt2", "gpt_neox"}) {
    testing::TinySpec s;
    s.config = evomerge::testing::tiny_config(family);
    const fs::path a = root / (family + "_a"), b = root / (family + "_b"),
                   out = root / (family + "_out");
    make_tiny_model(a, 11, s);
    make_tiny_model(b, 12, s);
    // Output layers: 0-1 = linear of a and b (a's weight 0.25 -> 0.5 over the slice), 2 = a's
    // layer 1.
    const std::string yaml =
        "merge_method: linear\nslices:\n  - sources:\n    - {model: " + a.string() +
        ", layer_range: [0, 2], parameters: {weight: [0.25, 0.5]}}\n    - {model: " + b.string() +
        ", layer_range: [0, 2], parameters: {weight: 0.75}}\n  - sources:\n    - {model: " +
        a.string() + ", layer_range: [1, 2], parameters: {weight: 1}}\n";
    merge_to_folder(parse_merge_config(yaml, family + ".yml"), out,
                    MergeOptions{.progress = false});
    Model merged = Model::open(out.string());  // every tensor of a 3-layer model of the family
    EXPECT_EQ(merged.config.family, parse_model_config(s.config, "c").family) << family;
    EXPECT_EQ(merged.config.num_hidden_layers, 3);
    ModelConfig two = parse_model_config(s.config, "c");
    for (const auto& spec : expected_tensors(two, DType::F32)) {
      auto loc = classify_tensor(spec.name);
      ASSERT_TRUE(loc);
      if (loc->place != TensorPlace::Layer) continue;
      auto va = tensor_f32(a, spec.name), vb = tensor_f32(b, spec.name);
      const double wa = loc->layer == 0 ? 0.25 : 0.5;
      auto got = tensor_f32(out, spec.name);
      for (size_t i = 0; i < got.size();
           ++i) {  // rounded once to bf16: within one bf16 step of the exact mean
        const float want = static_cast<float>((wa * va[i] + 0.75 * vb[i]) / (wa + 0.75));
        ASSERT_NEAR(got[i], want, std::fabs(want) * 0x1p-8 + 1e-7) << family << " " << spec.name;
      }
      if (loc->layer == 1) {
        EXPECT_EQ(tensor_f32(out, layer_tensor_name(*loc, 2)), va) << spec.name;
      }
    }
  }
  fs::remove_all(root);
}

}  // namespace
}  // namespace evomerge
