// config.json of the supported decoder families (Llama, Mistral, Qwen2, Qwen3), parsed into one
// struct with every default spelled out as transformers applies it.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tensor/tensor.h"

namespace evomerge {

enum class ArchFamily { Llama, Mistral, Qwen2, Qwen3 };
std::string_view arch_family_name(ArchFamily family);

struct RopeScaling {
  std::string type = "default";  // "default" or "llama3" (linear/dynamic/yarn are rejected clearly)
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};

struct ModelConfig {
  ArchFamily family = ArchFamily::Llama;
  std::string architecture;  // e.g. "LlamaForCausalLM"
  std::string model_type;    // e.g. "llama"
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;  // config's head_dim, else hidden_size / num_attention_heads
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  int64_t max_position_embeddings = 2048;
  bool tie_word_embeddings = false;
  bool qkv_bias = false;  // Qwen2: always; Llama/Qwen3: attention_bias
  bool o_bias = false;    // Llama attention_bias also biases o_proj
  bool mlp_bias = false;
  bool qk_norm = false;   // Qwen3
  std::optional<int64_t> sliding_window;  // only when it applies
  std::optional<int64_t> bos_token_id;
  std::vector<int64_t> eos_token_ids;
  std::optional<DType> torch_dtype;
  std::string hidden_act = "silu";
};

// Parses config.json. `where` names the file in errors, which name the field:
// "[config] path/config.json: field 'num_attention_heads' must be a positive integer".
// An unsupported architecture is named: "[config] ...: architecture 'GPT2LMHeadModel' is not
// supported (supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM)".
ModelConfig parse_model_config(const nlohmann::json& config, std::string_view where);

}  // namespace evomerge
