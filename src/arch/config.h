// config.json of the supported decoder families (Llama, Mistral, Qwen2, Qwen3, Phi-3, Granite,
// Gemma 2, Gemma 3 text), parsed into one struct with every default spelled out as transformers
// applies it. The per-family forward-pass details are fields (defaults: Llama's behaviour), so the
// inference stage reads fields, not families.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tensor/tensor.h"

namespace evomerge {

enum class ArchFamily {
  Llama,
  Mistral,
  Qwen2,
  Qwen3,
  Phi3,
  Granite,
  Gemma2,
  Gemma3,
  Mixtral,
  Qwen2Moe,
  Gpt2,    // merged, not run: transformer.h.{i}.* names, Conv1D [in, out] weights, LayerNorm biases
  GptNeoX  // merged, not run: gpt_neox.layers.{i}.* names, fused query_key_value
};
std::string_view arch_family_name(ArchFamily family);

struct RopeScaling {
  // "default", "linear", "llama3" or "longrope" (Phi-3's "su" is read as "longrope");
  // dynamic/yarn are rejected clearly.
  std::string type = "default";
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
  // longrope: per-frequency divisors [head_dim / 2] for sequences up to / beyond
  // original_max_position_embeddings, and the cos/sin scale (attention_factor, else
  // sqrt(1 + ln(factor) / ln(original)) when factor > 1).
  std::vector<double> short_factor, long_factor;
  double attention_factor = 1.0;
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
  std::string hidden_act = "silu";  // "silu" or "gelu_pytorch_tanh" (Gemma)

  // Forward-pass details of the newer families (shapes: see arch.h).
  bool fused_qkv = false;       // Phi-3: self_attn.qkv_proj.weight holds the q, k, v rows in order
  bool fused_gate_up = false;   // Phi-3: mlp.gate_up_proj.weight holds the gate, then the up rows
  bool sandwich_norms = false;  // Gemma 2/3: post_attention_layernorm normalises the attention
                                // output; pre_/post_feedforward_layernorm wrap the MLP
  bool norm_plus_one = false;   // Gemma: RMSNorm multiplies by (1 + weight)
  double embedding_multiplier = 1.0;      // Granite; Gemma: sqrt(hidden_size)
  double residual_multiplier = 1.0;       // Granite: each block's output is scaled before the add
  std::optional<double> attention_scale;  // softmax scale (default 1/sqrt(head_dim)); Granite
                                          // attention_multiplier, Gemma query_pre_attn_scalar^-1/2
  double logits_scaling = 1.0;            // Granite: logits are divided by it
  std::optional<double> attn_logit_softcapping;   // Gemma 2: scores -> cap * tanh(scores / cap)
  std::optional<double> final_logit_softcapping;  // Gemma 2: logits -> cap * tanh(logits / cap)
  // Gemma 2/3: which layers use sliding_window (the others attend globally); empty: every layer
  // does when sliding_window is set.
  std::vector<bool> sliding_layers;
  std::optional<double> rope_local_theta;  // Gemma 3: the sliding layers' rope base (no scaling)

  // Mixture-of-experts MLPs (merged, not run): Mixtral's num_local_experts (experts of
  // intermediate_size), Qwen2-MoE's num_experts of moe_intermediate_size plus a shared expert.
  int64_t num_experts = 0;  // 0: a dense MLP
  int64_t moe_intermediate_size = 0;
  int64_t shared_expert_intermediate_size = 0;  // Qwen2-MoE (0: none)

  // GPT-2: the prefix of every tensor name, "transformer." as GPT2LMHeadModel saves it, or "" as
  // the original checkpoints (and mergekit's gpt2.json) name them; set from the weights
  // (arch.h's adapt_to_weights).
  std::string gpt2_prefix = "transformer.";
};

// The config.json key that holds the layer count (GPT-2: n_layer), which slices rewrite.
std::string_view layer_count_key(const ModelConfig& config);

// The attention window of layer `layer` (nullopt: global attention).
std::optional<int64_t> layer_sliding_window(const ModelConfig& config, int layer);

// Parses config.json. `where` names the file in errors, which name the field:
// "[config] path/config.json: field 'num_attention_heads' must be a positive integer".
// An unsupported architecture is named: "[config] ...: architecture 'FalconForCausalLM' is not
// supported (supported: LlamaForCausalLM, ...)".
ModelConfig parse_model_config(const nlohmann::json& config, std::string_view where);

}  // namespace evomerge
