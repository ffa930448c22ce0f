// Data-flow-space layer paths: identity paths, mixed paths against the reference, and the export
// invariant the evolution engine relies on (see LayerHop in engine.h).
#include <gtest/gtest.h>

#include "arch/arch.h"
#include "common/error.h"
#include "infer/engine.h"
#include "infer/reference_forward.h"
#include "infer/testing.h"

namespace evomerge {
namespace {

using testing::max_abs_diff;
using testing::random_model;
using testing::some_tokens;
using testing::TempDir;

constexpr int kVocab = 61;

nlohmann::json path_config(double eps) {
  auto c = small_model_config("llama", kVocab, 64, 80, 3, 4, 2);
  c["attention_bias"] = true;  // o_proj has a bias too: the export scales it with the weight
  c["mlp_bias"] = true;
  c["rms_norm_eps"] = eps;
  return c;
}

EngineOptions opts() {
  EngineOptions o;
  o.threads = 2;
  return o;
}

TEST(LayerPath, OwnLayersGiveTheModelsLogitsExactly) {
  TempDir dir("path_identity");
  auto a = random_model(dir, "a", path_config(1e-5), 1);
  auto b = random_model(dir, "b", path_config(1e-5), 2);
  auto seq = some_tokens(11, kVocab, 3);
  auto plain = Engine(a, opts()).forward_logits({seq});
  Engine routed({a, b}, {{0, 0, 1.0f}, {0, 1, 1.0f}, {0, 2, 1.0f}}, opts());
  EXPECT_EQ(routed.config().hidden_size, 64);
  auto out = routed.forward_logits({seq});
  EXPECT_EQ(out[0], plain[0]);
  // set_path to model b's own layers: model b's layers with model a's embeddings and head.
  routed.set_path({{1, 0, 1.0f}, {1, 1, 1.0f}, {1, 2, 1.0f}});
  auto out_b = routed.forward_logits({seq});
  const WeightSource* models[] = {a.get(), b.get()};
  std::vector<LayerHop> path = {{1, 0, 1.0f}, {1, 1, 1.0f}, {1, 2, 1.0f}};
  EXPECT_LE(max_abs_diff(out_b[0], reference_forward(models, path, seq)), 1e-4f);
  EXPECT_GT(max_abs_diff(out_b[0], plain[0]), 1e-3f);
}

TEST(LayerPath, MixedScaledPathMatchesReference) {
  TempDir dir("path_mixed");
  auto a = random_model(dir, "a", path_config(1e-5), 1);
  auto b = random_model(dir, "b", path_config(1e-5), 2);
  std::vector<LayerHop> path = {{0, 0, 1.0f}, {1, 1, 0.7f}, {0, 1, 1.6f},
                                {1, 0, 0.5f}, {0, 1, 1.3f}, {1, 2, 1.0f}};
  const WeightSource* models[] = {a.get(), b.get()};
  std::vector<std::vector<int32_t>> seqs = {some_tokens(9, kVocab, 4), some_tokens(4, kVocab, 5)};
  Engine routed({a, b}, path, opts());
  auto out = routed.forward_logits(seqs);
  for (size_t i = 0; i < seqs.size(); ++i)
    EXPECT_LE(max_abs_diff(out[i], reference_forward(models, path, seqs[i])), 1e-4f) << i;
  // Loglikelihood and generation run through the path too (each hop has its own KV slot, so the
  // repeated layer (0, 1) does not overwrite its own cache).
  auto full = seqs[0];
  auto ll = routed.loglikelihood({{std::vector<int32_t>(full.begin(), full.begin() + 5),
                                   std::vector<int32_t>(full.begin() + 5, full.end())}});
  auto logits = reference_forward(models, path, full);
  double expect = 0;
  for (size_t t = 5; t < full.size(); ++t) {
    const float* row = &logits[(t - 1) * kVocab];
    double mx = *std::max_element(row, row + kVocab), sum = 0;
    for (int j = 0; j < kVocab; ++j) sum += std::exp(row[j] - mx);
    expect += row[full[t]] - mx - std::log(sum);
  }
  EXPECT_NEAR(ll[0].logprob, expect, 1e-4);
}

// The standard (unrouted) model with hop k's o_proj and down_proj (weights and biases) multiplied
// by 1 / P_k, P_k = s_1 * ... * s_k. Stored in f32 so no rounding is added.
struct Exported {
  std::vector<Tensor> owned;
  std::shared_ptr<WeightSource> source;
};

Exported export_path(const std::vector<std::shared_ptr<WeightSource>>& models,
                     const std::vector<LayerHop>& path) {
  ModelConfig c = models[0]->config();
  c.num_hidden_layers = static_cast<int64_t>(path.size());
  Exported e;
  std::map<std::string, TensorView> views;
  auto add = [&](const std::string& name, const TensorView& src, float scale) {
    std::vector<float> v = to_f32(src);
    for (float& x : v) x *= scale;
    e.owned.push_back(Tensor::from_f32(src.shape, v, DType::F32));
  };
  std::vector<std::string> names;
  double prefix = 1.0;
  for (const auto& spec : expected_tensors(c, DType::F32)) {
    auto loc = classify_tensor(spec.name);
    EM_ASSERT(loc.has_value());
    if (loc->place != TensorPlace::Layer) {
      add(spec.name, models[0]->tensor(spec.name), 1.0f);
    } else {
      const LayerHop& hop = path[loc->layer];
      if (loc->role == TensorRole::AttnNorm)
        prefix *= hop.input_scale;  // first tensor of each layer
      const bool scaled = loc->role == TensorRole::O || loc->role == TensorRole::OBias ||
                          loc->role == TensorRole::Down || loc->role == TensorRole::DownBias;
      add(spec.name, models[hop.model]->tensor(layer_tensor_name(hop.layer, loc->suffix)),
          scaled ? static_cast<float>(1.0 / prefix) : 1.0f);
    }
    names.push_back(spec.name);
  }
  for (size_t i = 0; i < names.size(); ++i) views[names[i]] = e.owned[i].view();
  e.source = make_memory_weights(c, views);
  return e;
}

TEST(LayerPath, ExportInvariantHolds) {
  std::vector<LayerHop> path = {{0, 0, 1.0f}, {1, 1, 0.7f}, {0, 1, 1.6f},
                                {1, 0, 0.5f}, {0, 1, 1.3f}, {1, 2, 2.0f}};
  std::vector<LayerHop> unscaled = path;
  for (auto& h : unscaled) h.input_scale = 1.0f;
  auto seq = some_tokens(12, kVocab, 9);
  for (double eps : {1e-12, 1e-5}) {
    TempDir dir("path_export");
    auto a = random_model(dir, "a", path_config(eps), 1);
    auto b = random_model(dir, "b", path_config(eps), 2);
    Engine routed({a, b}, path, opts());
    auto want = routed.forward_logits({seq})[0];
    Exported e = export_path({a, b}, path);
    auto got = Engine(e.source, opts()).forward_logits({seq})[0];
    // Without the 1/P_k factors the exported model is a different function:
    Exported wrong = export_path({a, b}, unscaled);
    const float baseline =
        max_abs_diff(Engine(wrong.source, opts()).forward_logits({seq})[0], want);
    const float diff = max_abs_diff(got, want);
    RecordProperty(eps < 1e-9 ? "diff_eps_tiny" : "diff_eps_1e-5", std::to_string(diff));
    if (eps < 1e-9) {
      // With eps ~ 0 RMSNorm is exactly scale invariant: equal up to f32 rounding.
      EXPECT_LE(diff, 1e-4f) << "baseline " << baseline;
    } else {
      // With eps > 0, RMSNorm(c x; eps) = RMSNorm(x; eps / c^2): the scaled stream sees a smaller
      // effective eps, so the export is close, not exact (see the report / engine.h).
      EXPECT_LE(diff, 0.05f * baseline) << "diff " << diff << " baseline " << baseline;
    }
    EXPECT_GT(baseline, 1e-2f);
  }
}

TEST(LayerPath, BadPathsAreNamed) {
  TempDir dir("path_bad");
  auto a = random_model(dir, "a", path_config(1e-5), 1);
  auto other = small_model_config("llama", kVocab, 32, 80, 2, 4, 2);
  auto c = random_model(dir, "c", other, 3);
  EXPECT_THROW(Engine({a}, {{1, 0, 1.0f}}, opts()), Error);
  try {
    Engine e({a}, {{0, 3, 1.0f}}, opts());
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("layer 3 is out of range"), std::string::npos) << e.what();
  }
  try {
    Engine e({a, c}, {{0, 0, 1.0f}}, opts());
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("hidden_size 32"), std::string::npos) << e.what();
  }
  EXPECT_THROW(Engine({a}, {}, opts()), Error);
  EXPECT_THROW(Engine({a}, {{0, 0, NAN}}, opts()), Error);
}

}  // namespace
}  // namespace evomerge
