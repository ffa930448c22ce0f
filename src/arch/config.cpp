#include "arch/config.h"

#include <cmath>

#include "common/error.h"

namespace evomerge {

using json = nlohmann::json;

std::string_view arch_family_name(ArchFamily family) {
  switch (family) {
    case ArchFamily::Llama: return "llama";
    case ArchFamily::Mistral: return "mistral";
    case ArchFamily::Qwen2: return "qwen2";
    case ArchFamily::Qwen3: return "qwen3";
    case ArchFamily::Phi3:
      return "phi3";
    case ArchFamily::Granite:
      return "granite";
    case ArchFamily::Gemma2:
      return "gemma2";
    case ArchFamily::Gemma3:
      return "gemma3_text";
    case ArchFamily::Mixtral:
      return "mixtral";
    case ArchFamily::Qwen2Moe:
      return "qwen2_moe";
    case ArchFamily::Gpt2:
      return "gpt2";
    case ArchFamily::GptNeoX:
      return "gpt_neox";
  }
  return "?";
}

std::string_view layer_count_key(const ModelConfig& config) {
  return config.family == ArchFamily::Gpt2 ? "n_layer" : "num_hidden_layers";
}

namespace {

struct Reader {
  const json& config;
  std::string_view where;

  const json* get(const char* key) const {
    auto it = config.find(key);
    return (it == config.end() || it->is_null()) ? nullptr : &*it;
  }
  int64_t positive_int(const char* key) const {
    const json* v = get(key);
    if (!v) fail("config", "{}: field '{}' is missing", where, key);
    if (!v->is_number_integer() || v->get<int64_t>() <= 0 || v->get<int64_t>() > (int64_t{1} << 40))
      fail("config", "{}: field '{}' must be a positive integer, got {}", where, key, v->dump());
    return v->get<int64_t>();
  }
  int64_t positive_int_or(const char* key, int64_t fallback) const { return get(key) ? positive_int(key) : fallback; }
  double positive_number_or(const char* key, double fallback) const {
    const json* v = get(key);
    if (!v) return fallback;
    if (!v->is_number() || v->get<double>() <= 0)
      fail("config", "{}: field '{}' must be a positive number, got {}", where, key, v->dump());
    return v->get<double>();
  }
  bool bool_or(const char* key, bool fallback) const {
    const json* v = get(key);
    if (!v) return fallback;
    if (!v->is_boolean()) fail("config", "{}: field '{}' must be true or false, got {}", where, key, v->dump());
    return v->get<bool>();
  }
};

RopeScaling parse_rope(const json* scaling, std::string_view where, const char* field) {
  RopeScaling r;
  if (!scaling) return r;
  if (!scaling->is_object()) fail("config", "{}: field '{}' must be an object", where, field);
  std::string type = "default";
  if (auto it = scaling->find("rope_type"); it != scaling->end() && it->is_string()) type = it->get<std::string>();
  else if (auto it2 = scaling->find("type"); it2 != scaling->end() && it2->is_string()) type = it2->get<std::string>();
  if (type == "su") type = "longrope";  // Phi-3's first name for it
  if (type != "default" && type != "linear" && type != "llama3" && type != "longrope")
    fail("config",
         "{}: field '{}': rope type '{}' is not supported (supported: default, linear, llama3, "
         "longrope)",
         where, field, type);
  r.type = type;
  if (type == "longrope") {
    auto factors = [&](const char* key) {
      auto it = scaling->find(key);
      std::vector<double> out;
      if (it == scaling->end() || !it->is_array() || it->empty() || it->size() > 65536)
        fail("config", "{}: field '{}.{}' must be a list of head_dim / 2 numbers", where, field,
             key);
      for (const json& v : *it) {
        if (!v.is_number() || v.get<double>() <= 0)
          fail("config", "{}: field '{}.{}' must hold positive numbers, got {}", where, field, key,
               v.dump());
        out.push_back(v.get<double>());
      }
      return out;
    };
    r.short_factor = factors("short_factor");
    r.long_factor = factors("long_factor");
    if (auto it = scaling->find("factor"); it != scaling->end() && it->is_number())
      r.factor = it->get<double>();
    r.attention_factor = -1;  // derived in finish_longrope unless given
    if (auto it = scaling->find("attention_factor"); it != scaling->end() && !it->is_null()) {
      if (!it->is_number() || it->get<double>() <= 0)
        fail("config", "{}: field '{}.attention_factor' must be a positive number", where, field);
      r.attention_factor = it->get<double>();
    }
  }
  if (type == "linear") {
    auto it = scaling->find("factor");
    if (it == scaling->end() || !it->is_number() || it->get<double>() <= 0)
      fail("config", "{}: field '{}.factor' must be a positive number", where, field);
    r.factor = it->get<double>();
  }
  if (type == "llama3") {
    auto num = [&](const char* key, double fallback) {
      auto it = scaling->find(key);
      if (it == scaling->end()) return fallback;
      if (!it->is_number() || it->get<double>() <= 0)
        fail("config", "{}: field '{}.{}' must be a positive number", where, field, key);
      return it->get<double>();
    };
    r.factor = num("factor", 8.0);
    r.low_freq_factor = num("low_freq_factor", 1.0);
    r.high_freq_factor = num("high_freq_factor", 4.0);
    r.original_max_position_embeddings = static_cast<int64_t>(num("original_max_position_embeddings", 8192));
    if (r.high_freq_factor <= r.low_freq_factor)
      fail("config", "{}: field '{}': high_freq_factor must exceed low_freq_factor", where, field);
  }
  return r;
}

// _compute_longrope_parameters: with a top-level original_max_position_embeddings (Phi-3),
// factor = max_position_embeddings / original; attention_factor from factor unless given.
void finish_longrope(ModelConfig& c, const Reader& rd) {
  RopeScaling& r = c.rope_scaling;
  if (rd.get("original_max_position_embeddings")) {
    r.original_max_position_embeddings = rd.positive_int("original_max_position_embeddings");
    r.factor = static_cast<double>(c.max_position_embeddings) /
               static_cast<double>(r.original_max_position_embeddings);
  } else {
    r.original_max_position_embeddings = c.max_position_embeddings;
  }
  if (r.attention_factor < 0)
    r.attention_factor =
        r.factor <= 1.0
            ? 1.0
            : std::sqrt(1.0 + std::log(r.factor) / std::log(static_cast<double>(
                                                       r.original_max_position_embeddings)));
  const size_t half = static_cast<size_t>(c.head_dim / 2);
  if (r.short_factor.size() != half || r.long_factor.size() != half)
    fail("config",
         "{}: field 'rope_scaling': short_factor and long_factor need head_dim / 2 = {} entries, "
         "got {} and {}",
         rd.where, half, r.short_factor.size(), r.long_factor.size());
}

// A hostile config must not make later stages loop or allocate without bound (expected_tensors
// builds one spec per tensor; parameter counts must fit in int64).
// Mixtral: num_local_experts experts (w1/w2/w3 of intermediate_size); Qwen2-MoE: num_experts of
// moe_intermediate_size plus a shared expert. Qwen2-MoE layers with a dense MLP (mlp_only_layers,
// decoder_sparse_step > 1) would change meaning when slices renumber layers: refused.
void parse_experts(const Reader& rd, ModelConfig& c, std::string_view where) {
  constexpr int64_t kMaxExperts = 1024;
  if (c.family == ArchFamily::Mixtral) {
    c.num_experts = rd.positive_int_or("num_local_experts", 8);
    c.moe_intermediate_size = c.intermediate_size;
  } else if (c.family == ArchFamily::Qwen2Moe) {
    c.num_experts = rd.positive_int_or("num_experts", 60);
    c.moe_intermediate_size = rd.positive_int_or("moe_intermediate_size", 1408);
    c.shared_expert_intermediate_size = rd.positive_int_or("shared_expert_intermediate_size", 5632);
    if (rd.positive_int_or("decoder_sparse_step", 1) != 1)
      fail("config",
           "{}: field 'decoder_sparse_step' other than 1 (dense layers between sparse ones) is not "
           "supported",
           where);
    if (const json* dense = rd.get("mlp_only_layers");
        dense && !(dense->is_array() && dense->empty()))
      fail("config",
           "{}: field 'mlp_only_layers' must be empty (dense layers in a MoE model are not "
           "supported)",
           where);
  } else {
    return;
  }
  if (c.num_experts > kMaxExperts)
    fail("config", "{}: {} experts exceed the supported maximum of {}", where, c.num_experts,
         kMaxExperts);
}

// GPT-2 (GPT2Config): n_embd, n_layer, n_head, n_positions (wpe rows), n_inner (null: 4 n_embd),
// tied embeddings unless tie_word_embeddings is false. Read for merging (tensor shapes) only.
void parse_gpt2(const Reader& rd, ModelConfig& c) {
  c.vocab_size = rd.positive_int("vocab_size");
  c.hidden_size = rd.positive_int("n_embd");
  c.num_hidden_layers = rd.positive_int("n_layer");
  c.num_attention_heads = rd.positive_int("n_head");
  c.num_key_value_heads = c.num_attention_heads;
  if (c.hidden_size % c.num_attention_heads != 0)
    fail("config", "{}: field 'n_embd' ({}) is not divisible by 'n_head' ({})", rd.where,
         c.hidden_size, c.num_attention_heads);
  c.head_dim = c.hidden_size / c.num_attention_heads;
  c.intermediate_size = rd.positive_int_or("n_inner", 4 * c.hidden_size);
  c.max_position_embeddings = rd.positive_int_or("n_positions", 1024);
  if (c.max_position_embeddings > (int64_t{1} << 24))
    fail("config", "{}: field 'n_positions' ({}) exceeds the supported maximum of {}", rd.where,
         c.max_position_embeddings, int64_t{1} << 24);
  c.rms_norm_eps = rd.positive_number_or("layer_norm_epsilon", 1e-5);
  c.tie_word_embeddings = rd.bool_or("tie_word_embeddings", true);
  c.hidden_act = "gelu_new";
}

void check_size_bounds(const ModelConfig& c, std::string_view where) {
  constexpr int64_t kMaxLayers = 1 << 16;
  constexpr int64_t kMaxParameters = int64_t{1} << 48;
  if (c.num_hidden_layers > kMaxLayers)
    fail("config", "{}: field 'num_hidden_layers' ({}) exceeds the supported maximum of {}", where,
         c.num_hidden_layers, kMaxLayers);
  // Every field is <= 2^40 (Reader::positive_int), and each product below multiplies at most one
  // checked (<= 2^48) quantity by one field, so nothing overflows 128 bits. Biases and norms are
  // counted generously: this is an upper bound, not parameter_count().
  using u128 = unsigned __int128;
  auto too_big = [&] {
    fail("config", "{}: the sizes in this config describe more than 2^48 parameters; not a real model", where);
  };
  const u128 h = c.hidden_size, v = c.vocab_size, inter = c.intermediate_size, hd = c.head_dim;
  const u128 q = u128(c.num_attention_heads) * hd, kv = u128(c.num_key_value_heads) * hd;
  if (q > kMaxParameters || kv > kMaxParameters) too_big();
  // Experts: <= 1024 (parse_experts) of a checked width, plus the router rows.
  const u128 experts = u128(c.num_experts) + 1,
             moe = std::max(c.moe_intermediate_size, c.shared_expert_intermediate_size);
  const u128 per_layer = 2 * q * h + 2 * kv * h + 3 * (inter + experts * moe) * h +
                         (experts + 4) * h + q + 2 * kv + inter + 2 * hd;
  if (per_layer > kMaxParameters) too_big();
  if (2 * v * h + h + per_layer * u128(c.num_hidden_layers) > kMaxParameters) too_big();
}

// A non-negative number field, or nullopt when absent or null.
std::optional<double> optional_number(const Reader& rd, const char* key) {
  const json* v = rd.get(key);
  if (!v) return std::nullopt;
  if (!v->is_number() || v->get<double>() <= 0)
    fail("config", "{}: field '{}' must be a positive number or null, got {}", rd.where, key,
         v->dump());
  return v->get<double>();
}

// Gemma 2/3: which layers slide. config.layer_types when present (transformers >= 4.53 writes it),
// else Gemma 2's alternation (even layers slide) or Gemma 3's sliding_window_pattern (every
// pattern-th layer, counting from 1, is global).
std::vector<bool> gemma_sliding_layers(const ModelConfig& c, const Reader& rd) {
  std::vector<bool> sliding(static_cast<size_t>(c.num_hidden_layers));
  if (const json* types = rd.get("layer_types")) {
    if (!types->is_array() || static_cast<int64_t>(types->size()) != c.num_hidden_layers)
      fail("config", "{}: field 'layer_types' must be a list of {} entries (num_hidden_layers)",
           rd.where, c.num_hidden_layers);
    for (size_t i = 0; i < sliding.size(); ++i) {
      const json& t = (*types)[i];
      if (t == "sliding_attention")
        sliding[i] = true;
      else if (t != "full_attention")
        fail("config",
             "{}: field 'layer_types[{}]' {} must be \"sliding_attention\" or \"full_attention\"",
             rd.where, i, t.dump());
    }
    return sliding;
  }
  const int64_t pattern =
      c.family == ArchFamily::Gemma2 ? 2 : rd.positive_int_or("sliding_window_pattern", 6);
  for (size_t i = 0; i < sliding.size(); ++i)
    sliding[i] = (static_cast<int64_t>(i) + 1) % pattern != 0;
  return sliding;
}

// The activation (`key` of config.json, else `fallback`) must be `expected`.
std::string checked_activation(const Reader& rd, const char* key, const char* expected) {
  const json* act = rd.get(key);
  if (act && (!act->is_string() || act->get<std::string>() != expected))
    fail("config", "{}: field '{}' {} is not supported (only {})", rd.where, key, act->dump(),
         expected);
  return expected;
}

// The forward-pass details of Phi-3, Granite and Gemma 2/3 (transformers' defaults where absent).
void parse_family_details(ModelConfig& c, const Reader& rd) {
  switch (c.family) {
    case ArchFamily::Phi3: {
      c.fused_qkv = c.fused_gate_up = true;
      if (auto f = optional_number(rd, "partial_rotary_factor"); f && *f != 1.0)
        fail("config", "{}: field 'partial_rotary_factor' {} is not supported (only 1.0)", rd.where,
             *f);
      break;
    }
    case ArchFamily::Granite:
      c.embedding_multiplier = rd.positive_number_or("embedding_multiplier", 1.0);
      c.residual_multiplier = rd.positive_number_or("residual_multiplier", 1.0);
      c.attention_scale = rd.positive_number_or("attention_multiplier", 1.0);
      c.logits_scaling = rd.positive_number_or("logits_scaling", 1.0);
      break;
    case ArchFamily::Gemma2:
    case ArchFamily::Gemma3: {
      const bool g2 = c.family == ArchFamily::Gemma2;
      c.sandwich_norms = c.norm_plus_one = true;
      c.embedding_multiplier = std::sqrt(static_cast<double>(c.hidden_size));
      c.attention_scale = 1.0 / std::sqrt(rd.positive_number_or("query_pre_attn_scalar", 256.0));
      c.attn_logit_softcapping = rd.get("attn_logit_softcapping")
                                     ? optional_number(rd, "attn_logit_softcapping")
                                     : (g2 ? std::optional(50.0) : std::nullopt);
      c.final_logit_softcapping = rd.get("final_logit_softcapping")
                                      ? optional_number(rd, "final_logit_softcapping")
                                      : (g2 ? std::optional(30.0) : std::nullopt);
      c.sliding_window = rd.positive_int_or("sliding_window", 4096);
      c.sliding_layers = gemma_sliding_layers(c, rd);
      if (!g2) c.rope_local_theta = rd.positive_number_or("rope_local_base_freq", 10000.0);
      // Gemma's MLP reads hidden_activation (hidden_act is a leftover some configs also carry).
      c.hidden_act =
          checked_activation(rd, rd.get("hidden_activation") ? "hidden_activation" : "hidden_act",
                             "gelu_pytorch_tanh");
      return;
    }
    case ArchFamily::GptNeoX:  // merged, not run: its activation (gelu) and rotary_pct are not read
      c.hidden_act = "gelu";
      return;
    default:
      break;
  }
  c.hidden_act = checked_activation(rd, "hidden_act", "silu");
}

// architectures / model_type -> the family (one of the supported ones, or an error listing them).
void parse_family(Reader& rd, ModelConfig& c, std::string_view where) {
  std::string arch;
  if (const json* a = rd.get("architectures")) {
    if (!a->is_array() || a->empty() || !(*a)[0].is_string())
      fail("config", "{}: field 'architectures' must be a non-empty list of strings", where);
    arch = (*a)[0].get<std::string>();
  }
  std::string model_type;
  if (const json* t = rd.get("model_type"); t && t->is_string()) model_type = t->get<std::string>();
  if (arch.empty() && model_type.empty()) fail("config", "{}: fields 'architectures' and 'model_type' are both missing", where);
  struct Known {
    const char* architecture;
    const char* model_type;
    ArchFamily family;
  };
  static constexpr Known kKnown[] = {
      {"LlamaForCausalLM", "llama", ArchFamily::Llama},
      {"MistralForCausalLM", "mistral", ArchFamily::Mistral},
      {"Qwen2ForCausalLM", "qwen2", ArchFamily::Qwen2},
      {"Qwen3ForCausalLM", "qwen3", ArchFamily::Qwen3},
      {"Phi3ForCausalLM", "phi3", ArchFamily::Phi3},
      {"GraniteForCausalLM", "granite", ArchFamily::Granite},
      {"Gemma2ForCausalLM", "gemma2", ArchFamily::Gemma2},
      {"Gemma3ForCausalLM", "gemma3_text", ArchFamily::Gemma3},
      {"MixtralForCausalLM", "mixtral", ArchFamily::Mixtral},
      {"Qwen2MoeForCausalLM", "qwen2_moe", ArchFamily::Qwen2Moe},
      {"GPT2LMHeadModel", "gpt2", ArchFamily::Gpt2},
      {"GPTNeoXForCausalLM", "gpt_neox", ArchFamily::GptNeoX},
  };
  const Known* known = nullptr;
  for (const Known& k : kKnown)
    if (arch == k.architecture || (arch.empty() && model_type == k.model_type)) known = &k;
  if (!known)
    fail("config",
         "{}: architecture '{}' is not supported (supported: LlamaForCausalLM, MistralForCausalLM, "
         "Qwen2ForCausalLM, Qwen3ForCausalLM, Phi3ForCausalLM, GraniteForCausalLM, "
         "Gemma2ForCausalLM, "
         "Gemma3ForCausalLM, and for merging only MixtralForCausalLM, Qwen2MoeForCausalLM, "
         "GPT2LMHeadModel, GPTNeoXForCausalLM)",
         where, arch.empty() ? model_type : arch);
  c.family = known->family;
  c.architecture = arch.empty() ? std::string(arch_family_name(c.family)) : arch;
  c.model_type = model_type.empty() ? std::string(arch_family_name(c.family)) : model_type;
}

// Sizes: vocabulary, widths, layers, heads (grouped-query heads must divide the query heads), norm
// epsilon and context.
void parse_shape(Reader& rd, ModelConfig& c, std::string_view where) {
  c.vocab_size = rd.positive_int("vocab_size");
  c.hidden_size = rd.positive_int("hidden_size");
  c.intermediate_size = rd.positive_int("intermediate_size");
  c.num_hidden_layers = rd.positive_int("num_hidden_layers");
  c.num_attention_heads = rd.positive_int("num_attention_heads");
  c.num_key_value_heads = rd.positive_int_or("num_key_value_heads", c.num_attention_heads);
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    fail("config", "{}: field 'num_attention_heads' ({}) must be a multiple of 'num_key_value_heads' ({})", where,
         c.num_attention_heads, c.num_key_value_heads);
  if (rd.get("head_dim")) {
    c.head_dim = rd.positive_int("head_dim");
  } else {
    if (c.hidden_size % c.num_attention_heads != 0)
      fail("config", "{}: field 'hidden_size' ({}) is not divisible by 'num_attention_heads' ({}) and 'head_dim' is absent",
           where, c.hidden_size, c.num_attention_heads);
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
  if (c.head_dim % 2 != 0) fail("config", "{}: field 'head_dim' ({}) must be even for RoPE", where, c.head_dim);
  // transformers' defaults: 1e-6, Phi-3 1e-5
  c.rms_norm_eps =
      rd.positive_number_or("rms_norm_eps", c.family == ArchFamily::Phi3 ? 1e-5 : 1e-6);
  c.max_position_embeddings = rd.positive_int_or("max_position_embeddings", 2048);

}

// rope_theta and the scaling, from rope_scaling or (transformers >= 5) rope_parameters.
void parse_rope_settings(Reader& rd, ModelConfig& c, std::string_view where) {
  const json* rope_params = rd.get("rope_parameters");
  double default_theta = 10000.0;
  if (rope_params) {
    c.rope_scaling = parse_rope(rope_params, where, "rope_parameters");  // fails unless an object
    if (auto it = rope_params->find("rope_theta"); it != rope_params->end()) {
      if (!it->is_number() || it->get<double>() <= 0)
        fail("config", "{}: field 'rope_parameters.rope_theta' must be a positive number", where);
      default_theta = it->get<double>();
    }
  }
  if (c.family == ArchFamily::Gemma3 && !rope_params) default_theta = 1e6;  // Gemma3TextConfig
  c.rope_theta = rd.positive_number_or("rope_theta", default_theta);
  if (const json* scaling = rd.get("rope_scaling")) c.rope_scaling = parse_rope(scaling, where, "rope_scaling");
  if (c.rope_scaling.type == "longrope") finish_longrope(c, rd);

}

// Which projections carry biases (per family, as transformers builds them), tied embeddings and
// the sliding window.
void parse_biases_and_window(Reader& rd, ModelConfig& c) {
  const bool gemma = c.family == ArchFamily::Gemma2 || c.family == ArchFamily::Gemma3;
  c.tie_word_embeddings =
      rd.bool_or("tie_word_embeddings", gemma);  // Gemma configs default to tied
  bool attention_bias = rd.bool_or("attention_bias", false);
  // Only Llama's and Granite's MLP read mlp_bias; the others build their MLP without biases.
  c.mlp_bias = rd.bool_or("mlp_bias", false) &&
               (c.family == ArchFamily::Llama || c.family == ArchFamily::Granite);
  switch (c.family) {
    case ArchFamily::Llama:
    case ArchFamily::Granite:
      c.qkv_bias = attention_bias;
      c.o_bias = attention_bias;
      break;
    case ArchFamily::Mistral:
    case ArchFamily::Phi3:
    case ArchFamily::Mixtral:
    case ArchFamily::Gpt2:  // parsed by parse_gpt2
    case ArchFamily::GptNeoX:
      break;
    case ArchFamily::Qwen2Moe:
      c.qkv_bias = true;
      break;                                           // hard-coded in transformers, as Qwen2
    case ArchFamily::Qwen2: c.qkv_bias = true; break;  // hard-coded in transformers
    case ArchFamily::Qwen3: c.qkv_bias = attention_bias; c.o_bias = attention_bias; c.qk_norm = true; break;
    case ArchFamily::Gemma2:
    case ArchFamily::Gemma3:
      c.qkv_bias = attention_bias;
      c.o_bias = attention_bias;
      c.qk_norm = c.family == ArchFamily::Gemma3;
      break;
  }
  if (c.family == ArchFamily::Mistral || c.family == ArchFamily::Phi3) {
    if (rd.get("sliding_window")) c.sliding_window = rd.positive_int("sliding_window");
  } else if (c.family == ArchFamily::Qwen2 || c.family == ArchFamily::Qwen3) {
    if (rd.bool_or("use_sliding_window", false) && rd.get("sliding_window"))
      c.sliding_window = rd.positive_int("sliding_window");
  }
}

// bos / eos token ids (eos may be a list) and the stored dtype.
void parse_tokens_and_dtype(Reader& rd, ModelConfig& c, std::string_view where) {
  auto token_id = [&](const json& v, const char* key) {
    if (!v.is_number_integer() || v.get<int64_t>() < 0)
      fail("config", "{}: field '{}' must be a non-negative integer or a list of them, got {}", where, key, v.dump());
    return v.get<int64_t>();
  };
  if (const json* b = rd.get("bos_token_id")) c.bos_token_id = token_id(*b, "bos_token_id");
  if (const json* e = rd.get("eos_token_id")) {
    if (e->is_array())
      for (const auto& x : *e) c.eos_token_ids.push_back(token_id(x, "eos_token_id"));
    else
      c.eos_token_ids.push_back(token_id(*e, "eos_token_id"));
  }
  const char* dtype_key = rd.get("torch_dtype") ? "torch_dtype" : "dtype";  // transformers v5 writes "dtype"
  if (const json* dt = rd.get(dtype_key)) {
    if (dt->is_string()) c.torch_dtype = dtype_from_torch_name(dt->get<std::string>());
    if (!c.torch_dtype) fail("config", "{}: field '{}' {} is not a known dtype", where, dtype_key, dt->dump());
  }
}

}  // namespace

std::optional<int64_t> layer_sliding_window(const ModelConfig& c, int layer) {
  if (!c.sliding_layers.empty() && !c.sliding_layers.at(static_cast<size_t>(layer)))
    return std::nullopt;
  return c.sliding_window;
}

ModelConfig parse_model_config(const json& config, std::string_view where) {
  if (!config.is_object()) fail("config", "{}: not a JSON object", where);
  Reader rd{config, where};
  ModelConfig c;
  parse_family(rd, c, where);
  if (c.family == ArchFamily::Gpt2) {
    parse_gpt2(rd, c);
    check_size_bounds(c, where);
    return c;
  }

  parse_shape(rd, c, where);
  parse_rope_settings(rd, c, where);
  parse_biases_and_window(rd, c);
  parse_family_details(c, rd);
  parse_experts(rd, c, where);
  parse_tokens_and_dtype(rd, c, where);
  check_size_bounds(c, where);
  return c;
}

}  // namespace evomerge
