#include "arch/arch.h"

#include <fmt/format.h>
#include <charconv>
#include <set>

#include <functional>

#include "common/error.h"
#include "common/text.h"

namespace evomerge {

namespace {
struct RoleSuffix {
  TensorRole role;
  std::string_view suffix;
};
constexpr RoleSuffix kLayerRoles[] = {
    {TensorRole::AttnNorm, "input_layernorm.weight"},   {TensorRole::Q, "self_attn.q_proj.weight"},
    {TensorRole::K, "self_attn.k_proj.weight"},         {TensorRole::V, "self_attn.v_proj.weight"},
    {TensorRole::O, "self_attn.o_proj.weight"},         {TensorRole::QBias, "self_attn.q_proj.bias"},
    {TensorRole::KBias, "self_attn.k_proj.bias"},       {TensorRole::VBias, "self_attn.v_proj.bias"},
    {TensorRole::OBias, "self_attn.o_proj.bias"},       {TensorRole::QNorm, "self_attn.q_norm.weight"},
    {TensorRole::KNorm, "self_attn.k_norm.weight"},     {TensorRole::MlpNorm, "post_attention_layernorm.weight"},
    {TensorRole::Gate, "mlp.gate_proj.weight"},         {TensorRole::Up, "mlp.up_proj.weight"},
    {TensorRole::Down, "mlp.down_proj.weight"},         {TensorRole::GateBias, "mlp.gate_proj.bias"},
    {TensorRole::UpBias, "mlp.up_proj.bias"},           {TensorRole::DownBias, "mlp.down_proj.bias"},
};
}  // namespace

std::string_view tensor_role_name(TensorRole role) {
  switch (role) {
    case TensorRole::Embed: return "embed_tokens";
    case TensorRole::FinalNorm: return "norm";
    case TensorRole::LmHead: return "lm_head";
    case TensorRole::Other: return "other";
    default: break;
  }
  for (const auto& r : kLayerRoles)
    if (r.role == role) return r.suffix.substr(0, r.suffix.rfind('.'));
  return "?";
}

std::optional<TensorLocation> classify_tensor(std::string_view name) {
  if (name == "model.embed_tokens.weight") return TensorLocation{TensorPlace::PreLayer, -1, TensorRole::Embed, std::string(name)};
  if (name == "model.norm.weight") return TensorLocation{TensorPlace::PostLayer, -1, TensorRole::FinalNorm, std::string(name)};
  if (name == "lm_head.weight") return TensorLocation{TensorPlace::PostLayer, -1, TensorRole::LmHead, std::string(name)};
  constexpr std::string_view prefix = "model.layers.";
  if (!name.starts_with(prefix)) return std::nullopt;
  std::string_view rest = name.substr(prefix.size());
  size_t dot = rest.find('.');
  if (dot == std::string_view::npos || dot == 0) return std::nullopt;
  int layer = -1;
  auto [ptr, ec] = std::from_chars(rest.data(), rest.data() + dot, layer);
  if (ec != std::errc() || ptr != rest.data() + dot || layer < 0) return std::nullopt;
  if (dot > 1 && rest[0] == '0') return std::nullopt;  // no leading zeros: one spelling per layer
  std::string_view suffix = rest.substr(dot + 1);
  TensorLocation loc{TensorPlace::Layer, layer, TensorRole::Other, std::string(suffix)};
  for (const auto& r : kLayerRoles)
    if (r.suffix == suffix) loc.role = r.role;
  return loc;
}

std::string layer_tensor_name(int layer, std::string_view suffix) { return fmt::format("model.layers.{}.{}", layer, suffix); }

namespace {

// Mixtral: block_sparse_moe.{gate, experts.E.w1|w2|w3}; Qwen2-MoE: mlp.{gate, experts.E.*_proj,
// shared_expert.*_proj, shared_expert_gate}. Router gates are [experts, hidden].
void add_moe_mlp(const std::function<void(std::string_view, Shape)>& add, const ModelConfig& c) {
  const int64_t h = c.hidden_size, e = c.num_experts, m = c.moe_intermediate_size;
  if (c.family == ArchFamily::Mixtral) {
    add("block_sparse_moe.gate.weight", {e, h});
    for (int64_t x = 0; x < e; ++x) {
      const std::string p = fmt::format("block_sparse_moe.experts.{}.", x);
      add(p + "w1.weight", {m, h});
      add(p + "w2.weight", {h, m});
      add(p + "w3.weight", {m, h});
    }
    return;
  }
  add("mlp.gate.weight", {e, h});
  for (int64_t x = 0; x < e; ++x) {
    const std::string p = fmt::format("mlp.experts.{}.", x);
    add(p + "gate_proj.weight", {m, h});
    add(p + "up_proj.weight", {m, h});
    add(p + "down_proj.weight", {h, m});
  }
  if (const int64_t s = c.shared_expert_intermediate_size; s > 0) {
    add("mlp.shared_expert.gate_proj.weight", {s, h});
    add("mlp.shared_expert.up_proj.weight", {s, h});
    add("mlp.shared_expert.down_proj.weight", {h, s});
    add("mlp.shared_expert_gate.weight", {1, h});
  }
}

}  // namespace

std::vector<TensorSpec> expected_tensors(const ModelConfig& c, DType dtype) {
  const int64_t h = c.hidden_size, q_out = c.num_attention_heads * c.head_dim, kv_out = c.num_key_value_heads * c.head_dim;
  std::vector<TensorSpec> specs;
  specs.push_back({"model.embed_tokens.weight", dtype, {c.vocab_size, h}});
  for (int i = 0; i < c.num_hidden_layers; ++i) {
    auto add = [&](std::string_view suffix, Shape shape) { specs.push_back({layer_tensor_name(i, suffix), dtype, std::move(shape)}); };
    add("input_layernorm.weight", {h});
    if (c.fused_qkv) {
      add("self_attn.qkv_proj.weight", {q_out + 2 * kv_out, h});
    } else {
      add("self_attn.q_proj.weight", {q_out, h});
      add("self_attn.k_proj.weight", {kv_out, h});
      add("self_attn.v_proj.weight", {kv_out, h});
    }
    if (c.qkv_bias) {
      add("self_attn.q_proj.bias", {q_out});
      add("self_attn.k_proj.bias", {kv_out});
      add("self_attn.v_proj.bias", {kv_out});
    }
    add("self_attn.o_proj.weight", {h, q_out});
    if (c.o_bias) add("self_attn.o_proj.bias", {h});
    if (c.qk_norm) {
      add("self_attn.q_norm.weight", {c.head_dim});
      add("self_attn.k_norm.weight", {c.head_dim});
    }
    add("post_attention_layernorm.weight", {h});
    if (c.num_experts > 0) {
      add_moe_mlp(add, c);
      continue;
    }
    if (c.sandwich_norms) {
      add("pre_feedforward_layernorm.weight", {h});
      add("post_feedforward_layernorm.weight", {h});
    }
    if (c.fused_gate_up) {
      add("mlp.gate_up_proj.weight", {2 * c.intermediate_size, h});
    } else {
      add("mlp.gate_proj.weight", {c.intermediate_size, h});
      add("mlp.up_proj.weight", {c.intermediate_size, h});
    }
    add("mlp.down_proj.weight", {h, c.intermediate_size});
    if (c.mlp_bias) {
      add("mlp.gate_proj.bias", {c.intermediate_size});
      add("mlp.up_proj.bias", {c.intermediate_size});
      add("mlp.down_proj.bias", {h});
    }
  }
  specs.push_back({"model.norm.weight", dtype, {h}});
  if (!c.tie_word_embeddings) specs.push_back({"lm_head.weight", dtype, {c.vocab_size, h}});
  return specs;
}

int64_t parameter_count(const ModelConfig& config) {
  int64_t total = 0;
  for (const auto& s : expected_tensors(config, DType::F32)) total += shape_numel(s.shape);
  return total;
}

namespace {

// Tensors the architecture does not have are an error naming them: `model.layers.99.*` in a 2-layer
// model means config.json and the weights disagree (a wrong or truncated config), and mergekit
// would silently drop them. Two kinds are known harmless and skipped: rotary `inv_freq` buffers
// that older transformers saved (recomputed from the config), and an `lm_head.weight` kept by a
// model with tied embeddings (the head is the embedding).
void check_no_unexpected_tensors(const ModelFolder& folder, const ModelConfig& config,
                                 const std::vector<TensorSpec>& specs) {
  std::set<std::string_view> expected;
  for (const auto& s : specs) expected.insert(s.name);
  std::vector<std::string> extra;
  for (const auto& name : folder.weights.names()) {
    if (expected.count(name) || name.ends_with(".rotary_emb.inv_freq")) continue;
    if (name == "lm_head.weight" && config.tie_word_embeddings) continue;
    extra.push_back(name);
  }
  if (extra.empty()) return;
  std::string listed;
  for (size_t i = 0; i < extra.size() && i < 4; ++i)
    listed += (i ? ", '" : "'") + printable(extra[i]) + "'";
  if (extra.size() > 4) listed += fmt::format(", ... ({} in all)", extra.size());
  fail("model",
       "{}: {} {} {} not part of a {} with {} layers (config.json); the weights and "
       "config.json disagree",
       folder.dir.string(), extra.size() == 1 ? "tensor" : "tensors", listed,
       extra.size() == 1 ? "is" : "are", config.architecture, config.num_hidden_layers);
}

}  // namespace

Model Model::open(std::string_view reference) {
  Model m{ModelFolder::open(reference), {}};
  std::string where = (m.folder.dir / "config.json").string();
  m.config = parse_model_config(m.folder.config, where);
  const auto specs = expected_tensors(m.config, DType::F32);
  check_no_unexpected_tensors(m.folder, m.config, specs);
  for (const auto& spec : specs) {
    const TensorInfo* info = m.folder.weights.find(spec.name);
    if (!info) fail("model", "{}: tensor '{}' is missing (expected by config.json)", m.folder.dir.string(), spec.name);
    if (info->shape != spec.shape)
      fail("model", "{}: tensor '{}' has shape {} but config.json implies {}", m.folder.dir.string(), spec.name,
           shape_string(info->shape), shape_string(spec.shape));
    if (!dtype_is_compute(info->dtype))
      fail("model", "{}: tensor '{}' has dtype {}; weights must be F32, F16 or BF16", m.folder.dir.string(),
           spec.name, dtype_name(info->dtype));
  }
  return m;
}

TensorView Model::lm_head() const {
  if (const TensorInfo* head = folder.weights.find("lm_head.weight"); head && !config.tie_word_embeddings)
    return folder.weights.view("lm_head.weight");
  return folder.weights.view("model.embed_tokens.weight");
}

}  // namespace evomerge
