// The YAML examples: mergekit's own example configs from the reference (§1.5), run verbatim against
// tiny generated models placed in a private Hugging Face cache under their org/name references, and
// every examples/merges/*.yml (on the bundled models when present, else on generated stand-ins).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>

#include "common/error.h"
#include "common/progress.h"
#include "merge/merge.h"
#include "merge/test_models.h"

namespace evomerge {
namespace {

namespace fs = std::filesystem;
using testing::make_tiny_model;
using testing::tensor_f32;
using testing::TinySpec;

class Examples : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    Progress::set_global_enabled(false);
    root_ = fs::temp_directory_path() / ("evomerge_examples_test_" + std::to_string(getpid()));
    fs::remove_all(root_);
    setenv("HF_HUB_CACHE", (root_ / "hub").c_str(), 1);
    uint32_t seed = 10;
    for (std::string name : {"a-13b", "b-13b", "c-13b", "llama2-13b", "a", "b", "c"}) {
      fs::path repo = root_ / "hub" / ("models--org--" + name);
      TinySpec s;
      s.layers = 40;
      s.dtype = DType::F16;
      make_tiny_model(repo / "snapshots" / "0123abcd", seed++, s);
      fs::create_directories(repo / "refs");
      write_file_atomic(repo / "refs" / "main", "0123abcd");
    }
  }
  static void TearDownTestSuite() { fs::remove_all(root_); }

  static fs::path hf(const std::string& name) { return root_ / "hub" / ("models--org--" + name) / "snapshots" / "0123abcd"; }
  static fs::path root_;
};
fs::path Examples::root_;

TEST_F(Examples, LinearSoupFromTheReference) {
  const char* yaml = R"(merge_method: linear
dtype: float16
models:
  - {model: org/a-13b, parameters: {weight: 1.0}}
  - {model: org/b-13b, parameters: {weight: 0.3}}
  - {model: org/c-13b, parameters: {weight: 0.5}}
)";
  merge_to_folder(parse_merge_config(yaml, "linear.yml"), root_ / "out_linear");
  const std::string n = "model.layers.7.self_attn.v_proj.weight";
  auto a = tensor_f32(hf("a-13b"), n), b = tensor_f32(hf("b-13b"), n), c = tensor_f32(hf("c-13b"), n);
  auto got = tensor_f32(root_ / "out_linear", n);
  for (size_t i = 0; i < got.size(); ++i) {
    float want = (1.0f * a[i] + 0.3f * b[i] + 0.5f * c[i]) / 1.8f;  // effective weights w / 1.8
    ASSERT_NEAR(got[i], want, std::fabs(want) * 1e-3 + 1e-4);
  }
  EXPECT_EQ(ModelWeights::open(root_ / "out_linear").view(n).dtype, DType::F16);
}

TEST_F(Examples, TiesWithGradientsAndFiltersFromTheReference) {
  const char* yaml = R"(merge_method: ties
base_model: org/llama2-13b
parameters: {normalize: true, int8_mask: true}
dtype: float16
models:
  - {model: org/a, parameters: {density: [1, 0.7, 0.1], weight: 1.0}}
  - {model: org/b, parameters: {density: 0.5, weight: [0, 0.3, 0.7, 1]}}
  - model: org/c
    parameters:
      density: 0.33
      weight: [{filter: mlp, value: 0.5}, {value: 0}]
)";
  ModelCache cache;
  MergePlan plan = build_plan(parse_merge_config(yaml, "ties.yml"), cache);
  // Layer 13 of 40: t = 13/39 = 1/3. Model a density: s = 2/3 -> 1 - (2/3)*0.3 = 0.8;
  // model b weight: s = 1 -> 0.3; model c weight 0.5 on mlp, 0 elsewhere.
  const PlanTensor* up = plan.find("model.layers.13.mlp.up_proj.weight");
  const PlanTensor* q = plan.find("model.layers.13.self_attn.q_proj.weight");
  ASSERT_TRUE(up && q);
  ASSERT_EQ(up->inputs.size(), 4u);  // a, b, c, then the auto-appended base
  EXPECT_EQ(up->base, 3);
  EXPECT_NEAR(up->inputs[0].params.at("density"), 0.8, 1e-12);
  EXPECT_NEAR(up->inputs[1].params.at("weight"), 0.3, 1e-12);
  EXPECT_DOUBLE_EQ(up->inputs[2].params.at("weight"), 0.5);
  EXPECT_DOUBLE_EQ(q->inputs[2].params.at("weight"), 0.0);
  EXPECT_DOUBLE_EQ(up->globals.at("normalize"), 1.0);
  // post-layer weights at t = 0: model b weight 0
  EXPECT_DOUBLE_EQ(plan.find("lm_head.weight")->inputs[1].params.at("weight"), 0.0);
  EXPECT_EQ(up->dtype, DType::F16);
  Merger().write_folder(plan, root_ / "out_ties");
  EXPECT_TRUE(fs::exists(root_ / "out_ties" / "model.safetensors"));
  // the donor is the base: its tokenizer is copied
  EXPECT_EQ(read_text_file(root_ / "out_ties" / "tokenizer.json"), read_text_file(hf("llama2-13b") / "tokenizer.json"));
}

TEST_F(Examples, GradientSlerpFromTheReference) {
  const char* yaml = R"(slices:
  - sources:
      - model: org/a
        layer_range: [0, 40]
      - model: org/b
        layer_range: [0, 40]
merge_method: slerp
base_model: org/a
parameters:
  t:
    - filter: self_attn
      value: [0, 0.5, 0.3, 0.7, 1]
    - filter: mlp
      value: [1, 0.5, 0.7, 0.3, 0]
    - value: 0.5
dtype: float16
)";
  ModelCache cache;
  MergePlan plan = build_plan(parse_merge_config(yaml, "gradient-slerp.yml"), cache);
  EXPECT_NEAR(plan.find("model.layers.10.self_attn.k_proj.weight")->globals.at("t"), 0.4949, 1e-4);
  EXPECT_DOUBLE_EQ(plan.find("model.layers.0.mlp.down_proj.weight")->globals.at("t"), 1.0);
  EXPECT_DOUBLE_EQ(plan.find("model.layers.39.mlp.down_proj.weight")->globals.at("t"), 0.0);
  EXPECT_DOUBLE_EQ(plan.find("model.layers.5.input_layernorm.weight")->globals.at("t"), 0.5);
  Merger().write_folder(plan, root_ / "out_slerp");
  // t = 0 at the last layer's mlp: exactly the base (org/a)
  EXPECT_EQ(tensor_f32(root_ / "out_slerp", "model.layers.39.mlp.down_proj.weight"),
            tensor_f32(hf("a"), "model.layers.39.mlp.down_proj.weight"));
  EXPECT_EQ(tensor_f32(root_ / "out_slerp", "model.layers.0.mlp.down_proj.weight"),
            tensor_f32(hf("b"), "model.layers.0.mlp.down_proj.weight"));
}

TEST_F(Examples, PassthroughFrankenmergeFromTheReference) {
  const char* yaml = R"(merge_method: passthrough
dtype: float16
slices:
  - sources: [{model: org/a-13b, layer_range: [0, 24]}]
  - sources: [{model: org/b-13b, layer_range: [20, 40]}]
)";
  merge_to_folder(parse_merge_config(yaml, "orcamini-platy-44layer.yml"), root_ / "out_pass");
  Model m = Model::open((root_ / "out_pass").string());
  EXPECT_EQ(m.config.num_hidden_layers, 44);
  EXPECT_EQ(tensor_f32(root_ / "out_pass", "model.layers.24.self_attn.q_proj.weight"),
            tensor_f32(hf("b-13b"), "model.layers.20.self_attn.q_proj.weight"));
  EXPECT_EQ(tensor_f32(root_ / "out_pass", "model.embed_tokens.weight"), tensor_f32(hf("a-13b"), "model.embed_tokens.weight"));
  EXPECT_EQ(tensor_f32(root_ / "out_pass", "model.norm.weight"), tensor_f32(hf("b-13b"), "model.norm.weight"));
}

// examples/merges/*.yml: unmodified on the bundled models when they exist; otherwise the same text
// with "examples/models/" pointing at generated models of the bundled shape (4 layers).
TEST_F(Examples, EveryBundledExampleRuns) {
  const fs::path src = fs::path(EVOMERGE_SOURCE_DIR);
  // Tests run from the repository root, so the examples' relative paths resolve as written.
  const bool bundled = fs::exists("examples/models/base/config.json") && fs::exists("examples/models/math_en/config.json") &&
                       fs::exists("examples/models/ja_cmp/config.json");
  const fs::path stand_in = root_ / "bundled";
  if (!bundled) {
    uint32_t seed = 100;
    for (std::string n : {"base", "math_en", "ja_cmp"}) make_tiny_model(stand_in / n, seed++);
  }
  size_t count = 0;
  for (const auto& entry : fs::directory_iterator(src / "examples/merges")) {
    if (entry.path().extension() != ".yml") continue;
    std::string text = read_text_file(entry.path());
    if (!bundled) {
      const std::string to = stand_in.string() + "/";
      for (size_t pos = 0; (pos = text.find("examples/models/", pos)) != std::string::npos; pos += to.size())
        text.replace(pos, 16, to);
    }
    MergeConfig cfg = parse_merge_config(text, entry.path().string());
    fs::path dir = root_ / "ex_out" / entry.path().stem();
    SCOPED_TRACE(entry.path().string());
    merge_to_folder(cfg, dir, MergeOptions{.random_seed = 1});
    Model m = Model::open(dir.string());
    // Every value finite.
    for (const auto& name : m.folder.weights.names())
      for (float x : to_f32(m.folder.weights.view(name))) ASSERT_TRUE(std::isfinite(x)) << name;
    ++count;
  }
  EXPECT_GE(count, 20u);
}

}  // namespace
}  // namespace evomerge
