// Whole merges of generated tiny models: folders checked tensor by tensor against hand formulas,
// in-memory execution and partial re-merges, determinism across thread counts, LoRA inputs, and
// every bad-input case of the issue (clear error, nothing left behind).
#include <gtest/gtest.h>

#include <unistd.h>
#include <fstream>
#include <limits>

#include <cmath>

#include "common/error.h"
#include "common/progress.h"
#include "merge/merge.h"
#include "merge/methods.h"
#include "merge/test_models.h"

namespace evomerge {
namespace {

namespace fs = std::filesystem;
using testing::make_tiny_model;
using testing::tensor_f32;
using testing::TinySpec;

class MergeFolders : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    Progress::set_global_enabled(false);
    root_ = fs::temp_directory_path() / ("evomerge_merge_test_" + std::to_string(getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_ / "out");  // each test may run alone (ctest runs them one by one)
    make_tiny_model(root_ / "base", 1);
    make_tiny_model(root_ / "a", 2);
    make_tiny_model(root_ / "b", 3);
    TinySpec wide;
    wide.intermediate = 16;
    make_tiny_model(root_ / "wide", 4, wide);
    TinySpec mistral;
    mistral.architecture = "MistralForCausalLM";
    make_tiny_model(root_ / "mistral", 5, mistral);
    TinySpec tied;
    tied.tied = true;
    make_tiny_model(root_ / "tied", 6, tied);
    TinySpec big_vocab;
    big_vocab.vocab = 20;
    make_tiny_model(root_ / "vocab20", 7, big_vocab);
  }
  static void TearDownTestSuite() { fs::remove_all(root_); }

  static std::string p(const std::string& name) { return (root_ / name).string(); }
  static fs::path out(const std::string& name) { return root_ / "out" / name; }

  // Runs a merge and returns the error text ("" if it succeeded).
  static std::string merge_error(const std::string& yaml, const fs::path& dir, MergeOptions mo = {}) {
    try {
      merge_to_folder(parse_merge_config(yaml, "test.yml"), dir, mo);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }

  static fs::path root_;
};
fs::path MergeFolders::root_;

float bf16_round(float x) { return bf16_to_f32(f32_to_bf16(x)); }

TEST_F(MergeFolders, LinearWithGradientAndFilterMatchesTheFormula) {
  std::string yaml = "merge_method: linear\nout_dtype: float32\nmodels:\n"
                     "  - {model: " + p("base") + ", parameters: {weight: 1.0}}\n"
                     "  - {model: " + p("a") + ", parameters: {weight: [0, 1]}}\n"
                     "  - model: " + p("b") + "\n    parameters:\n      weight: [{filter: mlp, value: 0.5}, {value: 0.25}]\n";
  fs::path dir = out("linear");
  MergeStats st = merge_to_folder(parse_merge_config(yaml, "linear.yml"), dir);
  ModelWeights w = ModelWeights::open(dir);
  ModelWeights wb = ModelWeights::open(root_ / "base"), wa = ModelWeights::open(root_ / "a"), wbb = ModelWeights::open(root_ / "b");
  ASSERT_EQ(w.names().size(), wb.names().size());
  EXPECT_EQ(st.tensors, w.names().size());
  for (const auto& name : w.names()) {
    auto loc = classify_tensor(name);
    ASSERT_TRUE(loc);
    // t = layer/3 inside the one slice of 4 layers; embeddings, norm and head use t = 0.
    double t = loc->place == TensorPlace::Layer ? loc->layer / 3.0 : 0.0;
    double w0 = 1.0, w1 = t, w2 = name.find("mlp") != std::string::npos ? 0.5 : 0.25;
    auto x0 = to_f32(wb.view(name)), x1 = to_f32(wa.view(name)), x2 = to_f32(wbb.view(name)), got = to_f32(w.view(name));
    EXPECT_EQ(w.view(name).dtype, DType::F32);
    for (size_t i = 0; i < got.size(); ++i) {
      double want = (w0 * x0[i] + w1 * x1[i] + w2 * x2[i]) / (w0 + w1 + w2);
      ASSERT_NEAR(got[i], want, 1e-5 * (1 + std::fabs(want))) << name << "[" << i << "]";
    }
  }
  // A complete folder: config with the new dtype, donor tokenizer, the YAML, a model card.
  auto cfg = nlohmann::json::parse(read_text_file(dir / "config.json"));
  EXPECT_EQ(cfg["torch_dtype"], "float32");
  EXPECT_EQ(cfg["num_hidden_layers"], 4);
  EXPECT_EQ(read_text_file(dir / "mergekit_config.yml"), yaml);
  EXPECT_EQ(read_text_file(dir / "tokenizer.json"), "{\"seed\": 1}");  // no base_model: the first model
  EXPECT_NE(read_text_file(dir / "README.md").find("linear"), std::string::npos);
}

TEST_F(MergeFolders, TiesFolderEqualsKernelOnEachTensorRoundedOnce) {
  std::string yaml = "merge_method: ties\nbase_model: " + p("base") +
                     "\nparameters: {normalize: true}\nmodels:\n"
                     "  - {model: " + p("a") + ", parameters: {weight: 1.0, density: [1, 0.5]}}\n"
                     "  - {model: " + p("b") + ", parameters: {weight: 0.6, density: 0.5}}\n";
  fs::path dir = out("ties");
  FolderOptions fo;
  fo.max_shard_bytes = 2000;  // several shards + index
  ModelCache cache;
  MergePlan plan = build_plan(parse_merge_config(yaml), cache);
  Merger merger;
  merger.write_folder(plan, dir, fo);
  EXPECT_TRUE(fs::exists(dir / "model.safetensors.index.json"));
  ModelWeights w = ModelWeights::open(dir);
  EXPECT_GT(w.files().size(), 1u);
  ModelWeights wb = ModelWeights::open(root_ / "base"), wa = ModelWeights::open(root_ / "a"), wbb = ModelWeights::open(root_ / "b");
  for (const auto& name : w.names()) {
    auto loc = classify_tensor(name);
    double t = loc->place == TensorPlace::Layer ? loc->layer / 3.0 : 0.0;
    auto x0 = to_f32(wb.view(name)), x1 = to_f32(wa.view(name)), x2 = to_f32(wbb.view(name));
    // Independent computation of TIES: top-k by magnitude, sign of the weighted sum, disjoint mean.
    auto trim = [](std::vector<float> d, double density) {
      size_t k = static_cast<size_t>(density * d.size());
      std::vector<size_t> idx(d.size());
      for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
      std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return std::fabs(d[a]) > std::fabs(d[b]); });
      for (size_t r = k; r < idx.size(); ++r) d[idx[r]] = 0;
      return d;
    };
    std::vector<float> d1(x0.size()), d2(x0.size());
    for (size_t i = 0; i < x0.size(); ++i) {
      d1[i] = x1[i] - x0[i];
      d2[i] = x2[i] - x0[i];
    }
    d1 = trim(d1, 1.0 - 0.5 * t);
    d2 = trim(d2, 0.5);
    auto got = to_f32(w.view(name));
    ASSERT_EQ(w.view(name).dtype, DType::BF16);
    for (size_t i = 0; i < x0.size(); ++i) {
      double a = 1.0 * d1[i], b = 0.6 * d2[i], s = a + b, num = 0, den = 0;
      if (s >= 0 ? a > 0 : a < 0) num += a, den += 1.0;
      if (s >= 0 ? b > 0 : b < 0) num += b, den += 0.6;
      double want = x0[i] + (den == 0 ? 0.0 : num / den);
      ASSERT_NEAR(got[i], bf16_round(static_cast<float>(want)), std::fabs(want) / 128 + 1e-6) << name << "[" << i << "]";
    }
  }
}

TEST_F(MergeFolders, PassthroughFrankenmergeRenumbersLayersAndScales) {
  std::string yaml = "merge_method: passthrough\nslices:\n"
                     "  - sources: [{model: " + p("a") + ", layer_range: [0, 3]}]\n"
                     "  - sources:\n      - model: " + p("b") + "\n        layer_range: [1, 4]\n"
                     "        parameters: {scale: [{filter: o_proj, value: 0}, {value: 1}]}\n";
  fs::path dir = out("passthrough");
  merge_to_folder(parse_merge_config(yaml), dir);
  auto cfg = nlohmann::json::parse(read_text_file(dir / "config.json"));
  EXPECT_EQ(cfg["num_hidden_layers"], 6);
  ModelWeights w = ModelWeights::open(dir);
  EXPECT_EQ(w.names().size(), 2 + 6 * 9 + 1u);
  auto same = [&](const std::string& out_name, const std::string& model, const std::string& in_name) {
    EXPECT_EQ(tensor_f32(dir, out_name), tensor_f32(root_ / model, in_name)) << out_name;
  };
  same("model.embed_tokens.weight", "a", "model.embed_tokens.weight");  // pre-weights: first slice
  same("model.layers.2.mlp.up_proj.weight", "a", "model.layers.2.mlp.up_proj.weight");
  same("model.layers.3.mlp.up_proj.weight", "b", "model.layers.1.mlp.up_proj.weight");
  same("model.layers.5.input_layernorm.weight", "b", "model.layers.3.input_layernorm.weight");
  same("model.norm.weight", "b", "model.norm.weight");  // post-weights: last slice
  same("lm_head.weight", "b", "lm_head.weight");
  for (float x : tensor_f32(dir, "model.layers.4.self_attn.o_proj.weight")) EXPECT_EQ(x, 0.0f);
  // The merged folder opens as a model of 6 layers.
  Model m = Model::open(dir.string());
  EXPECT_EQ(m.config.num_hidden_layers, 6);
}

TEST_F(MergeFolders, InMemoryBuffersReusedAndPartialRemerge) {
  auto cfg_with = [&](double wa) {
    MergeConfig c;
    c.merge_method = "task_arithmetic";
    c.base_model = ModelRef{p("base"), ""};
    InputModel a;
    a.model = ModelRef{p("a"), ""};
    a.parameters["weight"] = ParamValue::ramp({0.5, wa});
    c.models.push_back(a);
    return c;
  };
  ModelCache cache;
  Merger merger(MergeOptions{.threads = 2});
  MergedBuffers buf(DType::F32);
  MergePlan p1 = build_plan(cfg_with(0.5), cache);
  EXPECT_TRUE(buf.prepare(p1));
  merger.merge_into(p1, buf);
  EXPECT_EQ(cache.size(), 2u);
  const std::string l0 = "model.layers.0.mlp.down_proj.weight", l3 = "model.layers.3.mlp.down_proj.weight";
  const std::byte* ptr = buf.view(l3).data;
  auto base0 = tensor_f32(root_ / "base", l3), a0 = tensor_f32(root_ / "a", l3);
  auto v = buf.view(l3);
  const float* got = reinterpret_cast<const float*>(v.data);
  for (size_t i = 0; i < base0.size(); ++i) ASSERT_NEAR(got[i], base0[i] + 0.5f * (a0[i] - base0[i]), 1e-6);
  std::vector<float> layer0_before(reinterpret_cast<const float*>(buf.view(l0).data),
                                   reinterpret_cast<const float*>(buf.view(l0).data) + buf.view(l0).numel());

  // Next candidate: only the weight at the last layer changes; re-merge layer 3 alone.
  MergePlan p2 = build_plan(cfg_with(2.0), cache);
  EXPECT_EQ(cache.size(), 2u);     // models opened once
  EXPECT_FALSE(buf.prepare(p2));   // same tensors: no reallocation
  EXPECT_EQ(buf.view(l3).data, ptr);
  std::vector<int> layers = {3};
  auto which = plan_tensors_in_layers(p2, layers);
  EXPECT_EQ(which.size(), 9u);
  merger.merge_into(p2, buf, which);
  for (size_t i = 0; i < base0.size(); ++i) ASSERT_NEAR(got[i], base0[i] + 2.0f * (a0[i] - base0[i]), 1e-5);
  const float* l0p = reinterpret_cast<const float*>(buf.view(l0).data);
  for (size_t i = 0; i < layer0_before.size(); ++i) ASSERT_EQ(l0p[i], layer0_before[i]);
  EXPECT_EQ(buf.config().num_hidden_layers, 4);
  EXPECT_EQ(buf.views().size(), p2.tensors.size());

  // BF16 buffers hold the same values rounded once.
  MergedBuffers half(DType::BF16);
  half.prepare(p2);
  merger.merge_into(p2, half);
  auto hv = to_f32(half.view(l3));
  for (size_t i = 0; i < hv.size(); ++i) ASSERT_EQ(hv[i], bf16_round(got[i]));
}

TEST_F(MergeFolders, DareIsIdenticalForAnyThreadCountAndSeedMatters) {
  std::string yaml = "merge_method: dare_ties\nbase_model: " + p("base") +
                     "\nmodels:\n  - {model: " + p("a") + ", parameters: {weight: 0.7, density: 0.4}}\n"
                     "  - {model: " + p("b") + ", parameters: {weight: 0.5, density: 0.6}}\n";
  MergeConfig c = parse_merge_config(yaml);
  merge_to_folder(c, out("dare1"), MergeOptions{.random_seed = 11, .threads = 1});
  merge_to_folder(c, out("dare3"), MergeOptions{.random_seed = 11, .threads = 3});
  merge_to_folder(c, out("dare_seed"), MergeOptions{.random_seed = 12, .threads = 1});
  EXPECT_EQ(read_text_file(out("dare1") / "model.safetensors", 1u << 30), read_text_file(out("dare3") / "model.safetensors", 1u << 30));
  EXPECT_NE(read_text_file(out("dare1") / "model.safetensors", 1u << 30), read_text_file(out("dare_seed") / "model.safetensors", 1u << 30));
}

void write_lora(const fs::path& dir, int r, double alpha, int64_t in_cols, uint32_t seed) {
  fs::create_directories(dir);
  write_file_atomic(dir / "adapter_config.json",
                    nlohmann::json{{"r", r}, {"lora_alpha", alpha}, {"peft_type", "LORA"}}.dump());
  std::vector<float> a(static_cast<size_t>(r * in_cols)), b(static_cast<size_t>(8 * r));
  for (size_t i = 0; i < a.size(); ++i) a[i] = 0.1f * static_cast<float>((i * 7 + seed) % 5) - 0.2f;
  for (size_t i = 0; i < b.size(); ++i) b[i] = 0.05f * static_cast<float>((i * 3 + seed) % 7) - 0.1f;
  Tensor ta = Tensor::from_f32({r, in_cols}, a), tb = Tensor::from_f32({8, r}, b);
  write_safetensors(dir, {{"base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight", ta.view()},
                          {"base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight", tb.view()}});
  fs::rename(dir / "model.safetensors", dir / "adapter_model.safetensors");
}

TEST_F(MergeFolders, LoraIsAppliedOnTheFly) {
  write_lora(root_ / "lora_ok", 2, 4.0, 8, 1);
  std::string yaml = "merge_method: passthrough\nout_dtype: float32\nslices:\n"
                     "  - sources: [{model: " + p("a") + "+" + p("lora_ok") + ", layer_range: [0, 4]}]\n";
  fs::path dir = out("lora");
  merge_to_folder(parse_merge_config(yaml), dir);
  const std::string q = "model.layers.1.self_attn.q_proj.weight";
  auto w = tensor_f32(root_ / "a", q), got = tensor_f32(dir, q);
  SafetensorsFile f = SafetensorsFile::open(root_ / "lora_ok" / "adapter_model.safetensors");
  auto a = to_f32(f.view(*f.find("base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight")));
  auto b = to_f32(f.view(*f.find("base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight")));
  for (int o = 0; o < 8; ++o)
    for (int i = 0; i < 8; ++i) {
      double d = 0;
      for (int k = 0; k < 2; ++k) d += b[o * 2 + k] * a[k * 8 + i];
      ASSERT_NEAR(got[o * 8 + i], w[o * 8 + i] + (4.0 / 2.0) * d, 1e-5);
    }
  // other tensors untouched
  EXPECT_EQ(tensor_f32(dir, "model.layers.0.self_attn.q_proj.weight"), tensor_f32(root_ / "a", "model.layers.0.self_attn.q_proj.weight"));
}

TEST_F(MergeFolders, TiedInputsContributeEmbeddingsAsHead) {
  std::string yaml = "merge_method: linear\nout_dtype: float32\nmodels:\n  - {model: " + p("tied") +
                     ", parameters: {weight: 1}}\n  - {model: " + p("a") + ", parameters: {weight: 1}}\n";
  fs::path dir = out("tied");
  merge_to_folder(parse_merge_config(yaml), dir);
  auto cfg = nlohmann::json::parse(read_text_file(dir / "config.json"));
  EXPECT_EQ(cfg["tie_word_embeddings"], false);  // the donor was tied; an explicit head is written
  auto head = tensor_f32(dir, "lm_head.weight");
  auto e = tensor_f32(root_ / "tied", "model.embed_tokens.weight"), h = tensor_f32(root_ / "a", "lm_head.weight");
  for (size_t i = 0; i < head.size(); ++i) ASSERT_NEAR(head[i], 0.5f * (e[i] + h[i]), 1e-6);
}

TEST_F(MergeFolders, EmbeddingRowsRectifiedAndSliceEnds) {
  // vocab 16 and 20: linear keeps the common 16 rows and says so in config.json (mergekit does not).
  std::string yaml = "merge_method: linear\nout_dtype: float32\nmodels:\n  - {model: " + p("a") +
                     ", parameters: {weight: 1}}\n  - {model: " + p("vocab20") + ", parameters: {weight: 3}}\n";
  ModelCache cache;
  MergePlan plan = build_plan(parse_merge_config(yaml), cache);
  EXPECT_EQ(plan.find("model.embed_tokens.weight")->shape, (Shape{16, 8}));
  EXPECT_EQ(plan.find("lm_head.weight")->shape, (Shape{16, 8}));
  EXPECT_EQ(plan.out_config.vocab_size, 16);
  Merger merger;
  std::vector<float> e(16 * 8);
  merger.merge_tensor_f32(plan, 0, e.data());
  auto x = tensor_f32(root_ / "a", "model.embed_tokens.weight"), y = tensor_f32(root_ / "vocab20", "model.embed_tokens.weight");
  for (size_t i = 0; i < e.size(); ++i) ASSERT_NEAR(e[i], (x[i] + 3 * y[i]) / 4, 1e-6);
  // Gradients at slice ends: a 3-layer slice spans t = 0, 0.5, 1; a 1-layer slice has t = 1.
  std::string sl = "merge_method: linear\nslices:\n"
                   "  - sources:\n    - {model: " + p("a") + ", layer_range: [0, 3], parameters: {weight: [0, 1]}}\n"
                   "    - {model: " + p("b") + ", layer_range: [0, 3], parameters: {weight: 1}}\n"
                   "  - sources:\n    - {model: " + p("a") + ", layer_range: [3, 4], parameters: {weight: [0, 1]}}\n"
                   "    - {model: " + p("b") + ", layer_range: [3, 4], parameters: {weight: 1}}\n";
  MergePlan sp = build_plan(parse_merge_config(sl), cache);
  auto wa = [&](const std::string& n) { return sp.find(n)->inputs[0].params.at("weight"); };
  EXPECT_DOUBLE_EQ(wa("model.layers.0.mlp.up_proj.weight"), 0.0);
  EXPECT_DOUBLE_EQ(wa("model.layers.1.mlp.up_proj.weight"), 0.5);
  EXPECT_DOUBLE_EQ(wa("model.layers.2.mlp.up_proj.weight"), 1.0);
  EXPECT_DOUBLE_EQ(wa("model.layers.3.mlp.up_proj.weight"), 1.0);
  EXPECT_DOUBLE_EQ(wa("model.embed_tokens.weight"), 0.0);  // pre-layer: t = 0
  EXPECT_DOUBLE_EQ(wa("lm_head.weight"), 0.0);             // post-layer: t = 0 (mergekit >= 0.1.2)
  EXPECT_EQ(sp.out_config.num_hidden_layers, 4);
}

// ------------------------------------------------------------------------------------------------
// Bad input: one clear error, no output folder left.

struct BadCase {
  std::string name;
  std::string yaml;
  std::string expect;  // substring of the error
};

TEST_F(MergeFolders, BadInputsFailClearlyAndLeaveNothing) {
  write_lora(root_ / "lora_bad", 2, 4.0, 5, 1);  // A has 5 columns; q_proj has 8
  const std::string base = p("base"), a = p("a"), b = p("b");
  std::vector<BadCase> cases = {
      {"unknown method", "merge_method: lineer\nmodels: [{model: " + a + "}]\n",
       "unknown method 'lineer'"},
      {"misspelt weight",
       "merge_method: linear\nmodels:\n  - {model: " + a + ", parameters: {weigth: 1}}\n",
       "test.yml:3: models[0]: missing required parameter 'weight'"},
      {"missing required",
       "merge_method: linear\nmodels:\n  - {model: " + a + "}\n  - {model: " + b +
           ", parameters: {weight: 1}}\n",
       "test.yml:3: models[0]: missing required parameter 'weight' for model " + a},
      {"slerp without t",
       "merge_method: slerp\nbase_model: " + a + "\nmodels: [{model: " + a + "}, {model: " + b +
           "}]\n",
       "missing required parameter 't'"},
      {"weights sum to zero",
       "merge_method: linear\nmodels:\n  - {model: " + a +
           ", parameters: {weight: 1}}\n  - {model: " + b + ", parameters: {weight: -1}}\n",
       "sum to zero"},
      {"shape mismatch",
       "merge_method: linear\nmodels:\n  - {model: " + a +
           ", parameters: {weight: 1}}\n  - {model: " + p("wide") + ", parameters: {weight: 1}}\n",
       "tensor 'model.layers.0.mlp.gate_proj.weight' has shape [16, 8] in " + p("wide")},
      {"missing model",
       "merge_method: linear\nmodels:\n  - {model: " + p("nope") + ", parameters: {weight: 1}}\n",
       "nope"},
      {"mixed architectures",
       "merge_method: linear\nmodels:\n  - {model: " + a +
           ", parameters: {weight: 1}}\n  - {model: " + p("mistral") +
           ", parameters: {weight: 1}}\n",
       "--allow-crimes"},
      {"slices of different lengths",
       "merge_method: linear\nslices:\n  - sources:\n    - {model: " + a +
           ", layer_range: [0, 2], parameters: {weight: 1}}\n    - {model: " + b +
           ", layer_range: [0, 3], parameters: {weight: 1}}\n",
       "same number of layers"},
      {"bad layer range",
       "merge_method: passthrough\nslices:\n  - sources: [{model: " + a +
           ", layer_range: [2, 9]}]\n",
       "test.yml:3: slices[0].sources[0].layer_range: [2, 9] is outside"},
      {"lora does not fit",
       "merge_method: passthrough\nslices:\n  - sources: [{model: " + a + "+" + p("lora_bad") +
           ", layer_range: [0, 4]}]\n",
       "does not fit"},
      {"base missing for ties",
       "merge_method: ties\nmodels:\n  - {model: " + a + ", parameters: {weight: 1}}\n",
       "needs base_model"},
      {"slerp with three models",
       "merge_method: slerp\nbase_model: " + base +
           "\nparameters: {t: 0.5}\nmodels: [{model: " + a + "}, {model: " + b + "}]\n",
       "exactly two models"},
      {"union tokenizer",
       "merge_method: linear\ntokenizer_source: union\nmodels:\n  - {model: " + a +
           ", parameters: {weight: 1}}\n",
       "model.vocab"},
      {"della epsilon",
       "merge_method: della\nbase_model: " + base + "\nmodels:\n  - {model: " + a +
           ", parameters: {weight: 1, density: 0.5, epsilon: 0.5}}\n",
       "density 0.5 and epsilon 0.5"},
  };
  // ctest runs each test in its own process: the folder earlier tests would have made may be absent.
  fs::create_directories(root_ / "out");
  for (const auto& c : cases) {
    fs::path dir = out("bad");
    std::string e = merge_error(c.yaml, dir);
    EXPECT_NE(e.find(c.expect), std::string::npos) << c.name << ": got '" << e << "'";
    EXPECT_FALSE(fs::exists(dir)) << c.name;
    for (const auto& entry : fs::directory_iterator(root_ / "out"))
      EXPECT_EQ(entry.path().filename().string().find(".bad.tmp"), std::string::npos) << c.name;
  }
  // Mixed architectures merge with allow_crimes.
  std::string crimes = "merge_method: linear\nmodels:\n  - {model: " + a + ", parameters: {weight: 1}}\n  - {model: " +
                       p("mistral") + ", parameters: {weight: 1}}\n";
  EXPECT_EQ(merge_error(crimes, out("crimes"), MergeOptions{.allow_crimes = true}), "");
  // An existing output folder is refused unless replaced.
  EXPECT_NE(merge_error(crimes, out("crimes"), MergeOptions{.allow_crimes = true}).find("already exists"), std::string::npos);
}

// A merge whose result holds inf or NaN (here: one input value is inf) is an error naming the
// tensor, and nothing is written; it used to exit 0 with an all-inf model.
TEST_F(MergeFolders, NonFiniteResultNamesTheTensor) {
  TinySpec f32;
  f32.dtype = DType::F32;
  make_tiny_model(root_ / "inf", 8, f32);
  // The first value of the data buffer (of the first tensor in file order) becomes +inf.
  const fs::path file = root_ / "inf" / "model.safetensors";
  std::fstream io(file, std::ios::in | std::ios::out | std::ios::binary);
  uint64_t header_len = 0;
  io.read(reinterpret_cast<char*>(&header_len), 8);
  std::string header(header_len, '\0');
  io.read(header.data(), static_cast<std::streamsize>(header_len));
  const auto j = nlohmann::json::parse(header);
  std::string first;
  for (auto it = j.begin(); it != j.end(); ++it)
    if (it.key() != "__metadata__" && it.value()["data_offsets"][0] == 0) first = it.key();
  ASSERT_FALSE(first.empty());
  const float inf = std::numeric_limits<float>::infinity();
  io.seekp(static_cast<std::streamoff>(8 + header_len));
  io.write(reinterpret_cast<const char*>(&inf), 4);
  io.close();
  const fs::path dir = out("nonfinite");
  const std::string e = merge_error("merge_method: linear\nmodels:\n  - {model: " + p("a") +
                                        ", parameters: {weight: 1}}\n  - {model: " + p("inf") +
                                        ", parameters: {weight: 1}}\n",
                                    dir);
  EXPECT_NE(e.find("[merge] tensor '" + first +
                   "': the merge produced 1 non-finite values (inf or NaN) of "),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("the first at element 0 (inf)"), std::string::npos) << e;
  EXPECT_FALSE(fs::exists(dir));
}

}  // namespace
}  // namespace evomerge

namespace evomerge {
namespace {

// mergekit's own tests give `weight` to slerp and a top-level `normalize:`; mergekit ignores both.
TEST_F(MergeFolders, IgnoredKeysAndParametersWarnAndStrictRefuses) {
  const std::string yaml = "merge_method: slerp\nbase_model: " + p("a") +
                           "\nnormalize: true\nparameters: {t: 0.5, normalize: true}\n"
                           "models:\n  - {model: " +
                           p("a") + ", parameters: {weight: 1}}\n  - {model: " + p("b") + "}\n";
  ModelCache cache;
  MergePlan plan = build_plan(parse_merge_config(yaml, "test.yml"), cache);
  ASSERT_EQ(plan.warnings.size(), 3u);
  EXPECT_EQ(plan.warnings[0].substr(0, 46), "test.yml:3: normalize: unknown key, has no eff");
  EXPECT_EQ(plan.warnings[1],
            "test.yml:4: parameters.normalize: parameter 'normalize' has no effect: merge_method "
            "slerp does not use it (known: t)");
  EXPECT_TRUE(plan.warnings[2].starts_with(
      "test.yml:6: models[0].parameters.weight: parameter 'weight' has no effect:"))
      << plan.warnings[2];
  // ... and the merge is the same as without them: slerp at t = 0.5 of a and b.
  const std::string clean = "merge_method: slerp\nbase_model: " + p("a") +
                            "\nparameters: {t: 0.5}\nmodels:\n  - {model: " + p("a") +
                            "}\n  - {model: " + p("b") + "}\n";
  MergePlan plain = build_plan(parse_merge_config(clean, "clean.yml"), cache);
  EXPECT_TRUE(plain.warnings.empty());
  Merger merger;
  const size_t i = 3;
  std::vector<float> x(shape_numel(plan.tensors[i].shape)), y(x.size());
  merger.merge_tensor_f32(plan, i, x.data());
  merger.merge_tensor_f32(plain, i, y.data());
  EXPECT_EQ(x, y);
  // --strict: the first warning is the error, nothing is written.
  std::string e = merge_error(yaml, out("strict"), MergeOptions{.strict = true});
  EXPECT_TRUE(e.starts_with("[merge-plan] test.yml:3: normalize: unknown key, has no effect")) << e;
  EXPECT_NE(e.find("an error under --strict; 3 warning(s)"), std::string::npos) << e;
  EXPECT_FALSE(fs::exists(out("strict")));
}

}  // namespace
}  // namespace evomerge
