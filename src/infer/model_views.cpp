#include "infer/model_views.h"

#include "common/error.h"

namespace evomerge::infer_detail {
namespace {

// A tensor view checked against the shape the config implies. `what` names the source in errors.
TensorView checked(const WeightSource& w, const std::string& name, const Shape& shape,
                   const std::string& what) {
  if (!w.has(name)) fail("infer", "{}: tensor '{}' is missing", what, name);
  TensorView v = w.tensor(name);
  if (v.shape != shape)
    fail("infer", "{}: tensor '{}' has shape {}, expected {}", what, name, shape_string(v.shape),
         shape_string(shape));
  if (!dtype_is_compute(v.dtype))
    fail("infer", "{}: tensor '{}' has dtype {}; weights must be F32, F16 or BF16", what, name,
         dtype_name(v.dtype));
  if (v.nbytes != static_cast<size_t>(v.numel()) * dtype_size(v.dtype))
    fail("infer", "{}: tensor '{}': {} bytes for shape {}", what, name, v.nbytes,
         shape_string(v.shape));
  return v;
}

// Rows [first, first + count) of a 2-D view: a view into the same bytes.
TensorView row_range(const TensorView& v, int64_t first, int64_t count) {
  const size_t row_bytes = static_cast<size_t>(v.shape.at(1)) * dtype_size(v.dtype);
  return {v.dtype,
          {count, v.shape[1]},
          v.data + static_cast<size_t>(first) * row_bytes,
          static_cast<size_t>(count) * row_bytes};
}

}  // namespace

void check_inference_supported(const ModelConfig& c, const std::string& what) {
  switch (c.family) {
    case ArchFamily::Llama:
    case ArchFamily::Mistral:
    case ArchFamily::Qwen2:
    case ArchFamily::Qwen3:
    case ArchFamily::Phi3:
    case ArchFamily::Granite:
    case ArchFamily::Gemma2:
    case ArchFamily::Gemma3:
      return;
    default:  // registered for merging only (e.g. mixture-of-experts families)
      fail("infer", "{}: architecture {} is supported for merging but not for inference", what,
           c.architecture);
  }
}

LayerViews resolve_layer(const WeightSource& w, int index, const std::string& what) {
  const ModelConfig& c = w.config();
  const int64_t H = c.hidden_size, I = c.intermediate_size, qd = c.num_attention_heads * c.head_dim,
                kvd = c.num_key_value_heads * c.head_dim;
  auto name = [&](const char* suffix) { return layer_tensor_name(index, suffix); };
  check_inference_supported(c, what);
  LayerViews L;
  L.config = &c;
  L.index = index;
  L.file_mapped = w.file_mapped();
  L.attn_norm = checked(w, name("input_layernorm.weight"), {H}, what);
  if (c.sandwich_norms) {  // Gemma: post_attention_layernorm is the attention output's norm
    L.post_attn_norm = checked(w, name("post_attention_layernorm.weight"), {H}, what);
    L.mlp_norm = checked(w, name("pre_feedforward_layernorm.weight"), {H}, what);
    L.post_mlp_norm = checked(w, name("post_feedforward_layernorm.weight"), {H}, what);
  } else {
    L.mlp_norm = checked(w, name("post_attention_layernorm.weight"), {H}, what);
  }
  if (c.fused_qkv) {  // Phi-3: [q rows | k rows | v rows]
    TensorView qkv = checked(w, name("self_attn.qkv_proj.weight"), {qd + 2 * kvd, H}, what);
    L.q = row_range(qkv, 0, qd), L.k = row_range(qkv, qd, kvd), L.v = row_range(qkv, qd + kvd, kvd);
  } else {
    L.q = checked(w, name("self_attn.q_proj.weight"), {qd, H}, what);
    L.k = checked(w, name("self_attn.k_proj.weight"), {kvd, H}, what);
    L.v = checked(w, name("self_attn.v_proj.weight"), {kvd, H}, what);
  }
  L.o = checked(w, name("self_attn.o_proj.weight"), {H, qd}, what);
  if (c.fused_gate_up) {  // Phi-3: gate, up = gate_up_proj(x).chunk(2, dim=-1)
    TensorView gate_up = checked(w, name("mlp.gate_up_proj.weight"), {2 * I, H}, what);
    L.gate = row_range(gate_up, 0, I), L.up = row_range(gate_up, I, I);
  } else {
    L.gate = checked(w, name("mlp.gate_proj.weight"), {I, H}, what);
    L.up = checked(w, name("mlp.up_proj.weight"), {I, H}, what);
  }
  L.down = checked(w, name("mlp.down_proj.weight"), {H, I}, what);
  if (c.qkv_bias) {
    L.bq = checked(w, name("self_attn.q_proj.bias"), {qd}, what);
    L.bk = checked(w, name("self_attn.k_proj.bias"), {kvd}, what);
    L.bv = checked(w, name("self_attn.v_proj.bias"), {kvd}, what);
  }
  if (c.o_bias) L.bo = checked(w, name("self_attn.o_proj.bias"), {H}, what);
  if (c.qk_norm) {
    L.q_norm = checked(w, name("self_attn.q_norm.weight"), {c.head_dim}, what);
    L.k_norm = checked(w, name("self_attn.k_norm.weight"), {c.head_dim}, what);
  }
  if (c.mlp_bias) {
    L.bg = checked(w, name("mlp.gate_proj.bias"), {I}, what);
    L.bu = checked(w, name("mlp.up_proj.bias"), {I}, what);
    L.bd = checked(w, name("mlp.down_proj.bias"), {H}, what);
  }
  return L;
}

HeadViews resolve_head(const WeightSource& w, const std::string& what) {
  const ModelConfig& c = w.config();
  const int64_t H = c.hidden_size, V = c.vocab_size;
  check_inference_supported(c, what);
  HeadViews h;
  h.config = &c;
  h.embed = checked(w, "model.embed_tokens.weight", {V, H}, what);
  h.final_norm = checked(w, "model.norm.weight", {H}, what);
  h.head = c.tie_word_embeddings ? h.embed : checked(w, "lm_head.weight", {V, H}, what);
  return h;
}

}  // namespace evomerge::infer_detail
