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
  struct Whole {
    std::string_view name;
    TensorPlace place;
    TensorRole role;
  };
  static constexpr Whole kWhole[] = {
      {"model.embed_tokens.weight", TensorPlace::PreLayer, TensorRole::Embed},
      {"model.norm.weight", TensorPlace::PostLayer, TensorRole::FinalNorm},
      {"lm_head.weight", TensorPlace::PostLayer, TensorRole::LmHead},
      {"transformer.wte.weight", TensorPlace::PreLayer, TensorRole::Embed},
      {"wte.weight", TensorPlace::PreLayer, TensorRole::Embed},
      {"transformer.wpe.weight", TensorPlace::PreLayer, TensorRole::Other},
      {"wpe.weight", TensorPlace::PreLayer, TensorRole::Other},
      {"transformer.ln_f.weight", TensorPlace::PostLayer, TensorRole::FinalNorm},
      {"ln_f.weight", TensorPlace::PostLayer, TensorRole::FinalNorm},
      {"transformer.ln_f.bias", TensorPlace::PostLayer, TensorRole::Other},
      {"ln_f.bias", TensorPlace::PostLayer, TensorRole::Other},
      {"gpt_neox.embed_in.weight", TensorPlace::PreLayer, TensorRole::Embed},
      {"gpt_neox.final_layer_norm.weight", TensorPlace::PostLayer, TensorRole::FinalNorm},
      {"gpt_neox.final_layer_norm.bias", TensorPlace::PostLayer, TensorRole::Other},
      {"embed_out.weight", TensorPlace::PostLayer, TensorRole::LmHead},
  };
  for (const Whole& w : kWhole)
    if (name == w.name) return TensorLocation{w.place, -1, w.role, std::string(name), ""};
  static constexpr std::string_view kLayerPrefixes[] = {"model.layers.", "transformer.h.", "h.",
                                                        "gpt_neox.layers."};
  for (std::string_view prefix : kLayerPrefixes) {
    if (!name.starts_with(prefix)) continue;
    std::string_view rest = name.substr(prefix.size());
    size_t dot = rest.find('.');
    if (dot == std::string_view::npos || dot == 0) return std::nullopt;
    int layer = -1;
    auto [ptr, ec] = std::from_chars(rest.data(), rest.data() + dot, layer);
    if (ec != std::errc() || ptr != rest.data() + dot || layer < 0) return std::nullopt;
    if (dot > 1 && rest[0] == '0') return std::nullopt;  // no leading zeros: one spelling per layer
    std::string_view suffix = rest.substr(dot + 1);
    TensorLocation loc{TensorPlace::Layer, layer, TensorRole::Other, std::string(suffix),
                       std::string(prefix)};
    if (prefix == "model.layers.")
      for (const auto& r : kLayerRoles)
        if (r.suffix == suffix) loc.role = r.role;
    return loc;
  }
  return std::nullopt;
}

TensorNames tensor_names(const ModelConfig& c) {
  if (c.family == ArchFamily::Gpt2)
    return {c.gpt2_prefix + "wte.weight", c.gpt2_prefix + "ln_f.weight", "lm_head.weight"};
  if (c.family == ArchFamily::GptNeoX)
    return {"gpt_neox.embed_in.weight", "gpt_neox.final_layer_norm.weight", "embed_out.weight"};
  return {"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"};
}

void adapt_to_weights(ModelConfig& c, const ModelWeights& weights) {
  if (c.family == ArchFamily::Gpt2 && !weights.find("transformer.wte.weight") &&
      weights.find("wte.weight"))
    c.gpt2_prefix = "";
}

std::string layer_tensor_name(const TensorLocation& loc, int layer) {
  return fmt::format("{}{}.{}", loc.prefix, layer, loc.suffix);
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

// GPT-2 and GPT-NeoX: their own names, LayerNorm biases, fused attention projections.
std::vector<TensorSpec> gpt_tensors(const ModelConfig& c, DType dtype) {
  const int64_t h = c.hidden_size, inner = c.intermediate_size, v = c.vocab_size;
  std::vector<TensorSpec> specs;
  const bool gpt2 = c.family == ArchFamily::Gpt2;
  const std::string p = c.gpt2_prefix;
  auto add = [&](std::string name, Shape shape) {
    specs.push_back({std::move(name), dtype, std::move(shape)});
  };
  if (gpt2) {
    add(p + "wte.weight", {v, h});
    add(p + "wpe.weight", {c.max_position_embeddings, h});
  } else {
    add("gpt_neox.embed_in.weight", {v, h});
  }
  for (int i = 0; i < c.num_hidden_layers; ++i) {
    const std::string l =
        gpt2 ? fmt::format("{}h.{}.", p, i) : fmt::format("gpt_neox.layers.{}.", i);
    auto pair = [&](const std::string& stem, Shape w, int64_t b) {
      add(l + stem + ".weight", std::move(w));
      add(l + stem + ".bias", {b});
    };
    if (gpt2) {  // Conv1D weights: [in, out]
      pair("ln_1", {h}, h);
      pair("attn.c_attn", {h, 3 * h}, 3 * h);
      pair("attn.c_proj", {h, h}, h);
      pair("ln_2", {h}, h);
      pair("mlp.c_fc", {h, inner}, inner);
      pair("mlp.c_proj", {inner, h}, h);
    } else {
      pair("input_layernorm", {h}, h);
      pair("post_attention_layernorm", {h}, h);
      pair("attention.query_key_value", {3 * h, h}, 3 * h);
      pair("attention.dense", {h, h}, h);
      pair("mlp.dense_h_to_4h", {inner, h}, inner);
      pair("mlp.dense_4h_to_h", {h, inner}, h);
    }
  }
  if (gpt2) {
    add(p + "ln_f.weight", {h});
    add(p + "ln_f.bias", {h});
    if (!c.tie_word_embeddings) add("lm_head.weight", {v, h});
  } else {
    add("gpt_neox.final_layer_norm.weight", {h});
    add("gpt_neox.final_layer_norm.bias", {h});
    if (!c.tie_word_embeddings) add("embed_out.weight", {v, h});
  }
  return specs;
}

std::vector<TensorSpec> expected_tensors(const ModelConfig& c, DType dtype) {
  if (c.family == ArchFamily::Gpt2 || c.family == ArchFamily::GptNeoX) return gpt_tensors(c, dtype);
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
    // GPT-2 / GPT-NeoX causal-mask buffers saved by older transformers (mergekit skips them too)
    if ((config.family == ArchFamily::Gpt2 || config.family == ArchFamily::GptNeoX) &&
        (name.ends_with(".attn.bias") || name.ends_with(".attn.masked_bias") ||
         name.ends_with(".attention.bias") || name.ends_with(".attention.masked_bias")))
      continue;
    if (name == tensor_names(config).head && config.tie_word_embeddings) continue;
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
  adapt_to_weights(m.config, m.folder.weights);
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
  const TensorNames names = tensor_names(config);
  if (const TensorInfo* head = folder.weights.find(names.head); head && !config.tie_word_embeddings)
    return folder.weights.view(names.head);
  return folder.weights.view(names.embed);
}

}  // namespace evomerge
