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
// Merge-only families with their own names (as mergekit's gpt2.json and gpt-neox.json name them):
//   GPT-2 (P = "transformer." or ""): P wte.weight [vocab, hidden], P wpe.weight [n_positions,
//               hidden]; P h.{i}.{ln_1, ln_2}.{weight, bias} [hidden], attn.c_attn.{weight [hidden,
//               3 hidden], bias}, attn.c_proj.{weight [hidden, hidden], bias}, mlp.c_fc.{weight
//               [hidden, inner], bias}, mlp.c_proj.{weight [inner, hidden], bias} (Conv1D weights
//               are [in, out]); P ln_f.{weight, bias}; lm_head.weight only when untied.
//   GPT-NeoX: gpt_neox.embed_in.weight [vocab, hidden]; gpt_neox.layers.{i}.{input_layernorm,
//               post_attention_layernorm}.{weight, bias}, attention.query_key_value.{weight
//               [3 hidden, hidden], bias}, attention.dense.{weight, bias},
//               mlp.dense_h_to_4h.{weight [inter, hidden], bias}, mlp.dense_4h_to_h.{weight, bias};
//               gpt_neox.final_layer_norm.{weight, bias}; embed_out.weight [vocab, hidden] (head).
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
  std::string prefix =
      "model.layers.";  // the layer prefix ("transformer.h.", "h.", "gpt_neox.layers.")
};

// The names of the tensors the merge treats specially, per family: the embeddings, the final norm
// and the head (lm_head.weight; GPT-NeoX embed_out.weight).
struct TensorNames {
  std::string embed, final_norm, head;
};
TensorNames tensor_names(const ModelConfig& config);

// Settles what config.json cannot say: a GPT-2 checkpoint's name prefix ("transformer." or "").
void adapt_to_weights(ModelConfig& config, const ModelWeights& weights);

// Classifies a tensor name; nullopt for names outside the schemes above.
std::optional<TensorLocation> classify_tensor(std::string_view name);

// "model.layers.{layer}.{suffix}"
std::string layer_tensor_name(int layer, std::string_view suffix);
// The name of `loc`'s tensor in layer `layer` (its own prefix and suffix).
std::string layer_tensor_name(const TensorLocation& loc, int layer);

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
