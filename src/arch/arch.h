// The architecture registry: what each tensor name of a supported family means.
//
// Names follow Hugging Face checkpoints (nn.Linear weights are [out_features, in_features]):
//   pre-layer : model.embed_tokens.weight                         [vocab, hidden]
//   per layer : model.layers.{i}.input_layernorm.weight           [hidden]
//               model.layers.{i}.self_attn.{q,k,v}_proj.weight    [n_heads*head_dim |
//               n_kv*head_dim, hidden] model.layers.{i}.self_attn.{q,k,v}_proj.bias      (Qwen2;
//               Llama with attention_bias) model.layers.{i}.self_attn.o_proj.weight [hidden,
//               n_heads*head_dim] model.layers.{i}.self_attn.{q,k}_norm.weight      [head_dim]
//               (Qwen3) model.layers.{i}.post_attention_layernorm.weight  [hidden]
//               model.layers.{i}.mlp.{gate,up}_proj.weight        [intermediate, hidden]
//               model.layers.{i}.mlp.down_proj.weight             [hidden, intermediate]
//   post-layer: model.norm.weight [hidden], lm_head.weight [vocab, hidden] (absent when tied)
// Family variants (ModelConfig fields):
//   Phi-3 (fused_qkv, fused_gate_up): self_attn.qkv_proj.weight [(n_heads + 2*n_kv)*head_dim,
//   hidden]
//               replaces q/k/v_proj; mlp.gate_up_proj.weight [2*intermediate, hidden] (gate rows
//               first) replaces gate/up_proj.
//   Gemma 2/3 (sandwich_norms): also pre_feedforward_layernorm.weight and
//               post_feedforward_layernorm.weight [hidden]; Gemma 3 has q_norm/k_norm [head_dim].
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "arch/config.h"
#include "io/model_folder.h"
#include "io/safetensors.h"

namespace evomerge {

enum class TensorPlace { PreLayer, Layer, PostLayer };

enum class TensorRole {
  Embed, FinalNorm, LmHead,
  AttnNorm, Q, K, V, O, QBias, KBias, VBias, OBias, QNorm, KNorm,
  MlpNorm, Gate, Up, Down, GateBias, UpBias, DownBias,
  Other,  // a name we carry through but do not interpret
};

struct TensorLocation {
  TensorPlace place = TensorPlace::Layer;
  int layer = -1;           // for TensorPlace::Layer
  TensorRole role = TensorRole::Other;
  std::string suffix;       // the name after "model.layers.{i}." (e.g. "self_attn.q_proj.weight"), or the full name
};

// Classifies a tensor name; nullopt for names outside the Llama-family scheme.
std::optional<TensorLocation> classify_tensor(std::string_view name);

// "model.layers.{layer}.{suffix}"
std::string layer_tensor_name(int layer, std::string_view suffix);

// Short role name ("q_proj", "mlp.down_proj", "embed_tokens") used in mergekit filters and reports.
std::string_view tensor_role_name(TensorRole role);

// Every tensor the config says the model has, with its shape, in canonical order (embeddings, then
// layer by layer, then norm and head). lm_head is absent when tie_word_embeddings is set.
std::vector<TensorSpec> expected_tensors(const ModelConfig& config, DType dtype);

// Parameters per layer and total (counts elements of expected_tensors).
int64_t parameter_count(const ModelConfig& config);

// A model folder whose config is supported and whose tensors match it.
struct Model {
  ModelFolder folder;
  ModelConfig config;

  // Opens and checks: every expected tensor present with the expected shape and a compute dtype
  // (errors name the folder, tensor, expected and actual shape). Tied models may still ship lm_head.
  static Model open(std::string_view reference);
  // The head weight [vocab, hidden]: lm_head.weight, or the embeddings when tied.
  TensorView lm_head() const;
};

}  // namespace evomerge
