// Phi-3, Granite, Gemma 2 and Gemma 3 (text) forward passes against PyTorch: tiny random models
// from the generator (random_model.h, f32 weights so both sides read identical values) and the
// float64 logits tools/fixtures/arch_reference.py computed from them (the Hugging Face modeling
// math re-written in torch), committed in tests/data/arch_logits/. The fast engine (prefill blocks
// and one-row decode steps) and the plain reference path are each held to those logits.
//
// Regenerating the goldens (after changing a config below or the generator):
//   EVOMERGE_ARCH_MODELS_OUT=/tmp/arch build/src/infer/test_infer --gtest_filter='ArchReference.*'
//   /usr/bin/python3 tools/fixtures/arch_reference.py /tmp/arch tests/data/arch_logits
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "arch/test_support.h"
#include "common/error.h"
#include "infer/engine.h"
#include "infer/reference_forward.h"
#include "infer/testing.h"

namespace evomerge {
namespace {

using nlohmann::json;
using testing::max_abs_diff;
namespace fs = std::filesystem;

constexpr float kTol = 1e-4f;  // as engine_test: f32 compute vs a float64 reference, logits ~1
constexpr int kVocab = 48;
constexpr int kTokens = 10;

struct ArchCase {
  const char* name;
  json config;
};

json base_config(const char* architecture, const char* model_type) {
  json c = small_model_config("llama", kVocab, 32, 40, 2, 4, 2);
  c["architectures"] = {architecture};
  c["model_type"] = model_type;
  c["torch_dtype"] = "float32";
  c.erase("hidden_act");
  return c;
}

// One config per family, each with its distinguishing features switched on at sizes where they
// change the logits (windows shorter than the sequence, caps near the score magnitudes).
std::vector<ArchCase> arch_cases() {
  std::vector<ArchCase> out;
  json phi3 = base_config("Phi3ForCausalLM", "phi3");  // fused qkv (GQA 4/2) and gate_up
  phi3["sliding_window"] = 5;
  phi3["hidden_act"] = "silu";
  out.push_back({"phi3", phi3});

  json phi3_long = phi3;  // Phi-3-128k / 3.5's longrope: factor 256 / 64, mscale 1.1547
  phi3_long.erase("sliding_window");
  phi3_long["head_dim"] = 8, phi3_long["original_max_position_embeddings"] = 64;
  phi3_long["rope_scaling"] = {{"type", "longrope"},
                               {"short_factor", {1.0, 1.5, 2.5, 4.0}},
                               {"long_factor", {1.0, 3.0, 9.0, 27.0}}};
  out.push_back({"phi3_longrope", phi3_long});

  json granite = base_config("GraniteForCausalLM", "granite");
  granite["embedding_multiplier"] = 3.0, granite["residual_multiplier"] = 0.5;
  granite["attention_multiplier"] = 0.2, granite["logits_scaling"] = 2.5;
  granite["attention_bias"] = true, granite["mlp_bias"] = true;
  granite["tie_word_embeddings"] = true;
  out.push_back({"granite", granite});

  json gemma2 = base_config("Gemma2ForCausalLM", "gemma2");  // layers 0, 2 slide; 1 is global
  gemma2["num_hidden_layers"] = 3, gemma2["head_dim"] = 8;
  gemma2["query_pre_attn_scalar"] = 12, gemma2["sliding_window"] = 4;
  gemma2["attn_logit_softcapping"] = 1.5, gemma2["final_logit_softcapping"] = 3.0;
  gemma2["hidden_activation"] = "gelu_pytorch_tanh";
  gemma2.erase("tie_word_embeddings");  // Gemma's default: tied
  out.push_back({"gemma2", gemma2});

  json gemma3 = base_config("Gemma3ForCausalLM", "gemma3_text");
  gemma3["num_hidden_layers"] = 3, gemma3["head_dim"] = 8, gemma3["sliding_window_pattern"] = 2;
  gemma3["query_pre_attn_scalar"] = 8, gemma3["sliding_window"] = 3;
  gemma3["rope_theta"] = 1e6, gemma3["rope_local_base_freq"] = 100.0;
  gemma3["rope_scaling"] = {{"rope_type", "linear"}, {"factor", 4.0}};
  gemma3["attn_logit_softcapping"] = nullptr, gemma3["final_logit_softcapping"] = nullptr;
  gemma3["tie_word_embeddings"] = true;
  out.push_back({"gemma3", gemma3});
  return out;
}

std::shared_ptr<WeightSource> write_case(const fs::path& dir, const ArchCase& c,
                                         const std::vector<int32_t>& tokens) {
  RandomModelSpec spec;
  spec.config = c.config;
  spec.dtype = DType::F32;
  spec.seed = 101;
  spec.stddev = 0.25f;  // attention far from uniform at these sizes
  write_random_model(dir / c.name, spec);
  std::ofstream(dir / c.name / "tokens.json") << json(tokens).dump();
  return open_folder_weights((dir / c.name).string());
}

// golden[t * V + v]: the PyTorch logits of tests/data/arch_logits/<name>.json.
std::vector<float> golden_logits(const std::string& name, const std::vector<int32_t>& tokens) {
  fs::path file =
      fs::path(EVOMERGE_SOURCE_DIR) / "tests" / "data" / "arch_logits" / (name + ".json");
  std::ifstream in(file);
  EM_ASSERT(in.good());
  json doc = json::parse(in);
  EXPECT_EQ(doc.at("tokens").get<std::vector<int32_t>>(), tokens) << file;
  std::vector<float> out;
  for (const auto& row : doc.at("logits"))
    for (double v : row) out.push_back(static_cast<float>(v));
  return out;
}

TEST(ArchReference, LogitsMatchPyTorch) {
  testing::TempDir tmp("arch_reference");
  const char* keep = std::getenv("EVOMERGE_ARCH_MODELS_OUT");  // regenerating: see the top
  const fs::path dir = keep ? fs::path(keep) : tmp.path;
  fs::create_directories(dir);
  const std::vector<int32_t> tokens = testing::some_tokens(kTokens, kVocab, 7);
  for (const ArchCase& c : arch_cases()) {
    SCOPED_TRACE(c.name);
    auto w = write_case(dir, c, tokens);
    if (keep) continue;
    const std::vector<float> want = golden_logits(c.name, tokens);
    ASSERT_EQ(want.size(), static_cast<size_t>(kTokens * kVocab));
    EXPECT_LE(max_abs_diff(reference_forward(*w, tokens), want), kTol);
    EngineOptions prefill;
    prefill.threads = 2;
    EXPECT_LE(max_abs_diff(Engine(w, prefill).forward_logits({tokens})[0], want), kTol);
    EngineOptions rows = prefill;  // one row per micro-batch: the decode-step attention path
    rows.max_batch_tokens = 1;
    EXPECT_LE(max_abs_diff(Engine(w, rows).forward_logits({tokens})[0], want), kTol);
  }
}

// Each family's distinguishing feature changes the logits: switching it off moves them well past
// the tolerance, so the goldens above test it.
TEST(ArchReference, FeaturesAreLive) {
  testing::TempDir tmp("arch_features");
  const std::vector<int32_t> tokens = testing::some_tokens(kTokens, kVocab, 7);
  for (const ArchCase& c : arch_cases()) {
    SCOPED_TRACE(c.name);
    const std::vector<float> want = golden_logits(c.name, tokens);
    ArchCase off = c;
    if (std::string(c.name) == "phi3") off.config.erase("sliding_window");
    if (std::string(c.name) == "phi3_longrope") off.config.erase("rope_scaling");
    if (std::string(c.name) == "granite") off.config["residual_multiplier"] = 1.0;
    if (std::string(c.name) == "gemma2") off.config["attn_logit_softcapping"] = nullptr;
    if (std::string(c.name) == "gemma3") off.config["rope_local_base_freq"] = 1e6;
    auto w = write_case(tmp.path, off, tokens);
    EXPECT_GT(max_abs_diff(reference_forward(*w, tokens), want), 100 * kTol);
  }
}

// Mixtral and Qwen2-MoE are registered for merging only: the engine names them.
TEST(ArchReference, MergeOnlyFamiliesAreRefusedByName) {
  testing::TempDir tmp("arch_moe");
  for (const char* family : {"mixtral", "qwen2_moe"}) {
    const json cfg = testing::tiny_config(family);
    testing::write_model_folder(tmp.path, cfg);
    auto w = open_folder_weights(tmp.path.string());
    const std::string arch = cfg.at("architectures")[0];
    try {
      Engine engine(w);
      ADD_FAILURE() << family << ": no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("architecture " + arch +
                                           " is supported for merging but not for inference"),
                std::string::npos)
          << e.what();
    }
    fs::remove_all(tmp.path);
    fs::create_directories(tmp.path);
  }
}

}  // namespace
}  // namespace evomerge
