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

}  // namespace

LayerViews resolve_layer(const WeightSource& w, int index, const std::string& what) {
  const ModelConfig& c = w.config();
  const int64_t H = c.hidden_size, I = c.intermediate_size, qd = c.num_attention_heads * c.head_dim,
                kvd = c.num_key_value_heads * c.head_dim;
  auto name = [&](const char* suffix) { return layer_tensor_name(index, suffix); };
  LayerViews L;
  L.config = &c;
  L.attn_norm = checked(w, name("input_layernorm.weight"), {H}, what);
  L.mlp_norm = checked(w, name("post_attention_layernorm.weight"), {H}, what);
  L.q = checked(w, name("self_attn.q_proj.weight"), {qd, H}, what);
  L.k = checked(w, name("self_attn.k_proj.weight"), {kvd, H}, what);
  L.v = checked(w, name("self_attn.v_proj.weight"), {kvd, H}, what);
  L.o = checked(w, name("self_attn.o_proj.weight"), {H, qd}, what);
  L.gate = checked(w, name("mlp.gate_proj.weight"), {I, H}, what);
  L.up = checked(w, name("mlp.up_proj.weight"), {I, H}, what);
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
  HeadViews h;
  h.config = &c;
  h.embed = checked(w, "model.embed_tokens.weight", {V, H}, what);
  h.final_norm = checked(w, "model.norm.weight", {H}, what);
  h.head = c.tie_word_embeddings ? h.embed : checked(w, "lm_head.weight", {V, H}, what);
  return h;
}

}  // namespace evomerge::infer_detail
