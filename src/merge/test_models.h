// Test helper (header-only, used by src/merge/*_test.cpp): tiny Llama-family model folders with
// seeded random weights, written with the project's own safetensors writer.
#pragma once

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "arch/arch.h"
#include "io/files.h"
#include "io/safetensors.h"
#include "tensor/convert.h"

namespace evomerge::testing {

struct TinySpec {
  int layers = 4;
  int vocab = 16;
  int hidden = 8;
  int intermediate = 12;
  bool tied = false;
  std::string architecture = "LlamaForCausalLM";
  DType dtype = DType::BF16;
  nlohmann::json config = nullptr;  // a whole config.json (e.g. arch/test_support.h's
                                    // tiny_config(family)) instead of the fields above
};

inline nlohmann::json tiny_config(const TinySpec& s) {
  return {{"architectures", {s.architecture}},
          {"model_type", s.architecture == "Qwen2ForCausalLM" ? "qwen2" : (s.architecture == "MistralForCausalLM" ? "mistral" : "llama")},
          {"vocab_size", s.vocab},
          {"hidden_size", s.hidden},
          {"intermediate_size", s.intermediate},
          {"num_hidden_layers", s.layers},
          {"num_attention_heads", 2},
          {"num_key_value_heads", 1},
          {"rms_norm_eps", 1e-6},
          {"max_position_embeddings", 64},
          {"tie_word_embeddings", s.tied},
          {"torch_dtype", std::string(dtype_torch_name(s.dtype))}};
}

// Writes config.json, model.safetensors (values ~ N(0,1) from `seed`, rounded to s.dtype) and two
// tokenizer files (their contents name the seed so tests can tell which model they came from).
inline void make_tiny_model(const std::filesystem::path& dir, uint32_t seed, const TinySpec& s = {}) {
  std::filesystem::create_directories(dir);
  nlohmann::json cfg = s.config.is_null() ? tiny_config(s) : s.config;
  write_file_atomic(dir / "config.json", cfg.dump(2));
  ModelConfig mc = parse_model_config(cfg, "tiny");
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<Tensor> owned;
  std::vector<std::pair<std::string, TensorView>> views;
  for (const auto& spec : expected_tensors(mc, s.dtype)) {
    std::vector<float> v(static_cast<size_t>(shape_numel(spec.shape)));
    for (auto& x : v) x = dist(rng);
    owned.push_back(Tensor::from_f32(spec.shape, v, s.dtype));
  }
  auto specs = expected_tensors(mc, s.dtype);
  for (size_t i = 0; i < specs.size(); ++i) views.push_back({specs[i].name, owned[i].view()});
  write_safetensors(dir, views);
  write_file_atomic(dir / "tokenizer.json", "{\"seed\": " + std::to_string(seed) + "}");
  write_file_atomic(dir / "tokenizer_config.json", "{\"model_max_length\": 64}");
}

// All values of a tensor as f32.
inline std::vector<float> tensor_f32(const std::filesystem::path& dir, const std::string& name) {
  ModelWeights w = ModelWeights::open(dir);
  return to_f32(w.view(name));
}

}  // namespace evomerge::testing
