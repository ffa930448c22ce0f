// Test helpers (header-only, not part of libevomerge): tiny configs of each supported family and
// real-format model folders generated from them (config.json, safetensors weights, tag-along files).
#pragma once

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "arch/arch.h"
#include "arch/config.h"
#include "io/files.h"
#include "io/safetensors.h"
#include "tensor/convert.h"

namespace evomerge::testing {

// A config.json for a tiny model of `family` ("llama", "mistral", "qwen2", "qwen3", and the
// merge-only "gemma2", "gemma3", "phi3", "granite", "mixtral", "qwen2_moe", "gpt2", "gpt_neox"):
// hidden 8, intermediate 12, 2 layers, 2 heads (head_dim 4), 1 kv head, vocab 16; MoE: 3 experts
// (Qwen2-MoE: width 6, shared expert 10).
inline nlohmann::json tiny_config(std::string_view family = "llama") {
  static const std::map<std::string_view, std::string_view> arch = {
      {"llama", "LlamaForCausalLM"},     {"mistral", "MistralForCausalLM"},
      {"qwen2", "Qwen2ForCausalLM"},     {"qwen3", "Qwen3ForCausalLM"},
      {"gemma2", "Gemma2ForCausalLM"},   {"gemma3", "Gemma3ForCausalLM"},
      {"phi3", "Phi3ForCausalLM"},       {"granite", "GraniteForCausalLM"},
      {"mixtral", "MixtralForCausalLM"}, {"qwen2_moe", "Qwen2MoeForCausalLM"},
      {"gpt2", "GPT2LMHeadModel"},       {"gpt_neox", "GPTNeoXForCausalLM"}};
  if (family == "gpt2")  // GPT2Config's own keys (n_inner null: 4 n_embd)
    return {{"architectures", {"GPT2LMHeadModel"}},
            {"model_type", "gpt2"},
            {"vocab_size", 16},
            {"n_embd", 8},
            {"n_layer", 2},
            {"n_head", 2},
            {"n_positions", 32},
            {"n_inner", nullptr},
            {"layer_norm_epsilon", 1e-5},
            {"activation_function", "gelu_new"},
            {"bos_token_id", 1},
            {"eos_token_id", 2},
            {"torch_dtype", "bfloat16"}};
  nlohmann::json c = {{"architectures", {arch.at(family)}},
                      {"model_type", family},
                      {"vocab_size", 16},
                      {"hidden_size", 8},
                      {"intermediate_size", 12},
                      {"num_hidden_layers", 2},
                      {"num_attention_heads", 2},
                      {"num_key_value_heads", 1},
                      {"rms_norm_eps", 1e-6},
                      {"rope_theta", 10000.0},
                      {"max_position_embeddings", 64},
                      {"tie_word_embeddings", false},
                      {"hidden_act", "silu"},
                      {"bos_token_id", 1},
                      {"eos_token_id", 2},
                      {"torch_dtype", "bfloat16"}};
  if (family == "qwen3") c["head_dim"] = 4;
  if (family == "gemma2" || family == "gemma3") {
    c["model_type"] = family == "gemma3" ? "gemma3_text" : "gemma2";
    c["head_dim"] = 4;
    c.erase("hidden_act");
    c["hidden_activation"] = "gelu_pytorch_tanh";
    c["tie_word_embeddings"] = true;  // as every Gemma checkpoint
    c["final_logit_softcapping"] = 30.0;
    c["sliding_window"] = 16;
  }
  if (family == "granite")
    c["embedding_multiplier"] = 12.0, c["residual_multiplier"] = 0.22, c["logits_scaling"] = 8.0;
  if (family == "mixtral") c["num_local_experts"] = 3, c["num_experts_per_tok"] = 2;
  if (family == "qwen2_moe")
    c["num_experts"] = 3, c["num_experts_per_tok"] = 2, c["moe_intermediate_size"] = 6,
    c["shared_expert_intermediate_size"] = 10;
  return c;
}

// Writes a complete model folder into `dir` (which must exist): config.json, every tensor the config
// implies (deterministic values, `dtype`), sharded by `shard_bytes`, plus small tokenizer files.
// Returns the specs written, in order.
inline std::vector<TensorSpec> write_model_folder(const std::filesystem::path& dir, const nlohmann::json& config,
                                                  DType dtype = DType::BF16,
                                                  uint64_t shard_bytes = ShardedWriter::kDefaultShardBytes) {
  ModelConfig c = parse_model_config(config, "test config");
  std::vector<TensorSpec> specs = expected_tensors(c, dtype);
  write_file_atomic(dir / "config.json", config.dump(2));
  write_file_atomic(dir / "tokenizer_config.json", R"({"bos_token":"<s>","eos_token":"</s>"})");
  write_file_atomic(dir / "generation_config.json", R"({"bos_token_id":1,"eos_token_id":2})");
  ShardedWriter writer(dir, specs, shard_bytes);
  for (size_t t = 0; t < specs.size(); ++t) {
    const auto& s = specs[t];
    std::vector<float> values(static_cast<size_t>(shape_numel(s.shape)));
    bool norm = s.name.find("norm") != std::string::npos;
    for (size_t j = 0; j < values.size(); ++j)
      values[j] = (norm ? 1.0f : 0.0f) + 0.1f * std::sin(0.37f * static_cast<float>(j) + 1.3f * static_cast<float>(t));
    Tensor tensor = Tensor::from_f32(s.shape, values, dtype);
    writer.write(s.name, tensor.view().bytes());
  }
  writer.finish();
  return specs;
}

}  // namespace evomerge::testing
