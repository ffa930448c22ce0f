// config.json parsing against the published configs of real checkpoints, and parameter counts
// against the totals their model cards / safetensors headers report.
#include "arch/config.h"

#include <gtest/gtest.h>

#include <functional>

#include "arch/arch.h"
#include "arch/test_support.h"
#include "common/error.h"
#include "common/test_util.h"

namespace evomerge {
namespace {

using json = nlohmann::json;

using testing_util::error_of;

// meta-llama/Llama-3.2-1B config.json (transformers 4.45).
const char* kLlama32_1B = R"({
  "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 128000, "eos_token_id": 128001, "head_dim": 64, "hidden_act": "silu",
  "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 8192,
  "max_position_embeddings": 131072, "mlp_bias": false, "model_type": "llama",
  "num_attention_heads": 32, "num_hidden_layers": 16, "num_key_value_heads": 8, "pretraining_tp": 1,
  "rms_norm_eps": 1e-05,
  "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                   "original_max_position_embeddings": 8192, "rope_type": "llama3"},
  "rope_theta": 500000.0, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
  "transformers_version": "4.45.0.dev0", "use_cache": true, "vocab_size": 128256})";

// Qwen/Qwen2.5-0.5B config.json.
const char* kQwen25_05B = R"({
  "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
  "eos_token_id": 151643, "hidden_act": "silu", "hidden_size": 896, "initializer_range": 0.02,
  "intermediate_size": 4864, "max_position_embeddings": 32768, "max_window_layers": 24,
  "model_type": "qwen2", "num_attention_heads": 14, "num_hidden_layers": 24, "num_key_value_heads": 2,
  "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 32768, "tie_word_embeddings": true,
  "torch_dtype": "bfloat16", "transformers_version": "4.40.1", "use_cache": true, "use_mrope": false,
  "use_sliding_window": false, "vocab_size": 151936})";

// Qwen/Qwen3-0.6B config.json.
const char* kQwen3_06B = R"({
  "architectures": ["Qwen3ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 151643, "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu",
  "hidden_size": 1024, "initializer_range": 0.02, "intermediate_size": 3072,
  "max_position_embeddings": 40960, "max_window_layers": 28, "model_type": "qwen3",
  "num_attention_heads": 16, "num_hidden_layers": 28, "num_key_value_heads": 8, "rms_norm_eps": 1e-06,
  "rope_scaling": null, "rope_theta": 1000000, "sliding_window": null, "tie_word_embeddings": true,
  "torch_dtype": "bfloat16", "transformers_version": "4.51.0", "use_cache": true,
  "use_sliding_window": false, "vocab_size": 151936})";

// mistralai/Mistral-7B-v0.1 config.json.
const char* kMistral7B = R"({
  "architectures": ["MistralForCausalLM"], "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
  "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 14336,
  "max_position_embeddings": 32768, "model_type": "mistral", "num_attention_heads": 32,
  "num_hidden_layers": 32, "num_key_value_heads": 8, "rms_norm_eps": 1e-05, "rope_theta": 10000.0,
  "sliding_window": 4096, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
  "transformers_version": "4.34.0.dev0", "use_cache": true, "vocab_size": 32000})";

TEST(Config, Llama32_1B) {
  auto c = parse_model_config(json::parse(kLlama32_1B), "llama/config.json");
  EXPECT_EQ(c.family, ArchFamily::Llama);
  EXPECT_EQ(c.architecture, "LlamaForCausalLM");
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.num_key_value_heads, 8);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_DOUBLE_EQ(c.rope_theta, 500000.0);
  EXPECT_EQ(c.rope_scaling.type, "llama3");
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 32.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling.low_freq_factor, 1.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling.high_freq_factor, 4.0);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_EQ(c.max_position_embeddings, 131072);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_FALSE(c.qkv_bias || c.o_bias || c.mlp_bias || c.qk_norm);
  EXPECT_EQ(c.bos_token_id, 128000);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{128001}));
  EXPECT_EQ(c.torch_dtype, DType::BF16);
  EXPECT_FALSE(c.sliding_window);
  // 1,235,814,400: embed 128256*2048 + 16 * (q 2048^2 + k,v 512*2048 + o 2048^2 + mlp 3*8192*2048
  // + 2 norms 2048) + final norm 2048 (tied: no lm_head).
  EXPECT_EQ(parameter_count(c), 1'235'814'400);
  EXPECT_EQ(expected_tensors(c, DType::BF16).size(), 1u + 16 * 9 + 1);
}

TEST(Config, Qwen25_05B) {
  auto c = parse_model_config(json::parse(kQwen25_05B), "qwen2/config.json");
  EXPECT_EQ(c.family, ArchFamily::Qwen2);
  EXPECT_EQ(c.head_dim, 64);  // 896 / 14
  EXPECT_TRUE(c.qkv_bias);    // hard-coded in transformers' Qwen2Attention
  EXPECT_FALSE(c.o_bias);
  EXPECT_FALSE(c.qk_norm);
  EXPECT_FALSE(c.sliding_window);  // use_sliding_window false
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_DOUBLE_EQ(c.rope_theta, 1e6);
  EXPECT_EQ(c.rope_scaling.type, "default");
  // 494,032,768 as reported for Qwen2.5-0.5B (q/k/v biases included).
  EXPECT_EQ(parameter_count(c), 494'032'768);
  EXPECT_EQ(expected_tensors(c, DType::BF16).size(), 1u + 24 * 12 + 1);
}

TEST(Config, Qwen3_06B) {
  auto c = parse_model_config(json::parse(kQwen3_06B), "qwen3/config.json");
  EXPECT_EQ(c.family, ArchFamily::Qwen3);
  EXPECT_EQ(c.head_dim, 128);  // not 1024 / 16
  EXPECT_TRUE(c.qk_norm);
  EXPECT_FALSE(c.qkv_bias || c.o_bias);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{151645}));
  EXPECT_EQ(c.rope_scaling.type, "default");  // rope_scaling null
  // 596,049,920 = 0.44B non-embedding + 151936*1024 tied embeddings.
  EXPECT_EQ(parameter_count(c), 596'049'920);
  auto specs = expected_tensors(c, DType::BF16);
  EXPECT_EQ(specs.size(), 1u + 28 * 11 + 1);
  EXPECT_EQ(specs[2].name, "model.layers.0.self_attn.q_proj.weight");
  EXPECT_EQ(specs[2].shape, (Shape{2048, 1024}));
  EXPECT_EQ(specs[5].name, "model.layers.0.self_attn.o_proj.weight");
  EXPECT_EQ(specs[5].shape, (Shape{1024, 2048}));
  EXPECT_EQ(specs[6].name, "model.layers.0.self_attn.q_norm.weight");
  EXPECT_EQ(specs[6].shape, (Shape{128}));
}

TEST(Config, Mistral7B) {
  auto c = parse_model_config(json::parse(kMistral7B), "mistral/config.json");
  EXPECT_EQ(c.family, ArchFamily::Mistral);
  EXPECT_EQ(c.sliding_window, 4096);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_EQ(c.head_dim, 128);
  // 7,241,732,096: untied, so embed and lm_head both count.
  EXPECT_EQ(parameter_count(c), 7'241'732'096);
  auto specs = expected_tensors(c, DType::BF16);
  EXPECT_EQ(specs.back().name, "lm_head.weight");
  EXPECT_EQ(specs.back().shape, (Shape{32000, 4096}));
}

// google/gemma-2-2b config.json (transformers 4.42).
const char* kGemma2_2B = R"({
  "architectures": ["Gemma2ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "attn_logit_softcapping": 50.0, "bos_token_id": 2, "cache_implementation": "hybrid",
  "eos_token_id": 1, "final_logit_softcapping": 30.0, "head_dim": 256, "hidden_act": "gelu_pytorch_tanh",
  "hidden_activation": "gelu_pytorch_tanh", "hidden_size": 2304, "initializer_range": 0.02,
  "intermediate_size": 9216, "max_position_embeddings": 8192, "model_type": "gemma2",
  "num_attention_heads": 8, "num_hidden_layers": 26, "num_key_value_heads": 4, "pad_token_id": 0,
  "query_pre_attn_scalar": 256, "rms_norm_eps": 1e-06, "rope_theta": 10000.0, "sliding_window": 4096,
  "torch_dtype": "float32", "transformers_version": "4.42.4", "use_cache": true, "vocab_size": 256000})";

// google/gemma-3-1b-pt config.json (transformers 4.50).
const char* kGemma3_1B = R"({
  "architectures": ["Gemma3ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "attn_logit_softcapping": null, "bos_token_id": 2, "cache_implementation": "hybrid", "eos_token_id": 1,
  "final_logit_softcapping": null, "head_dim": 256, "hidden_activation": "gelu_pytorch_tanh",
  "hidden_size": 1152, "initializer_range": 0.02, "intermediate_size": 6912, "max_position_embeddings": 32768,
  "model_type": "gemma3_text", "num_attention_heads": 4, "num_hidden_layers": 26, "num_key_value_heads": 1,
  "pad_token_id": 0, "query_pre_attn_scalar": 256, "rms_norm_eps": 1e-06, "rope_local_base_freq": 10000,
  "rope_scaling": null, "rope_theta": 1000000, "sliding_window": 512, "sliding_window_pattern": 6,
  "torch_dtype": "bfloat16", "transformers_version": "4.50.0.dev0", "use_cache": true, "vocab_size": 262144})";

// microsoft/Phi-3-mini-4k-instruct config.json.
const char* kPhi3Mini4k = R"({
  "architectures": ["Phi3ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 1, "embd_pdrop": 0.0,
  "eos_token_id": 32000, "hidden_act": "silu", "hidden_size": 3072, "initializer_range": 0.02,
  "intermediate_size": 8192, "max_position_embeddings": 4096, "model_type": "phi3",
  "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 32,
  "original_max_position_embeddings": 4096, "pad_token_id": 32000, "resid_pdrop": 0.0,
  "rms_norm_eps": 1e-05, "rope_scaling": null, "rope_theta": 10000.0, "sliding_window": 2047,
  "tie_word_embeddings": false, "torch_dtype": "bfloat16", "transformers_version": "4.40.2",
  "use_cache": true, "attention_bias": false, "vocab_size": 32064})";

TEST(Config, Gemma2_2B) {
  ModelConfig c = parse_model_config(json::parse(kGemma2_2B), "gemma-2-2b");
  EXPECT_EQ(c.family, ArchFamily::Gemma2);
  EXPECT_TRUE(c.tie_word_embeddings);  // Gemma2Config default; the file does not say
  EXPECT_TRUE(c.sandwich_norms && c.norm_plus_one);
  EXPECT_EQ(c.hidden_act, "gelu_pytorch_tanh");
  EXPECT_DOUBLE_EQ(c.embedding_multiplier, 48.0);  // sqrt(2304)
  EXPECT_DOUBLE_EQ(*c.attention_scale, 1.0 / 16);  // 256^-1/2
  EXPECT_EQ(*c.attn_logit_softcapping, 50.0);
  EXPECT_EQ(*c.final_logit_softcapping, 30.0);
  EXPECT_EQ(layer_sliding_window(c, 0), 4096);  // even layers slide, odd ones are global
  EXPECT_EQ(layer_sliding_window(c, 1), std::nullopt);
  EXPECT_EQ(layer_sliding_window(c, 24), 4096);
  EXPECT_EQ(parameter_count(c), 2'614'341'888);  // the model card's 2.6B, safetensors header total
}

TEST(Config, Gemma3_1B) {
  ModelConfig c = parse_model_config(json::parse(kGemma3_1B), "gemma-3-1b-pt");
  EXPECT_EQ(c.family, ArchFamily::Gemma3);
  EXPECT_TRUE(c.qk_norm && c.tie_word_embeddings);
  EXPECT_FALSE(c.attn_logit_softcapping || c.final_logit_softcapping);
  EXPECT_EQ(c.rope_theta, 1e6);
  EXPECT_EQ(*c.rope_local_theta, 10000.0);
  for (int i = 0; i < 26; ++i)  // every sixth layer (5, 11, ...) is global
    EXPECT_EQ(layer_sliding_window(c, i).has_value(), (i + 1) % 6 != 0) << i;
  EXPECT_EQ(parameter_count(c), 999'885'952);
}

TEST(Config, Phi3Mini4k) {
  ModelConfig c = parse_model_config(json::parse(kPhi3Mini4k), "Phi-3-mini-4k-instruct");
  EXPECT_EQ(c.family, ArchFamily::Phi3);
  EXPECT_TRUE(c.fused_qkv && c.fused_gate_up);
  EXPECT_EQ(c.sliding_window, 2047);
  EXPECT_EQ(parameter_count(c), 3'821'079'552);
  auto specs = expected_tensors(c, DType::BF16);
  EXPECT_EQ(specs[2].name, "model.layers.0.self_attn.qkv_proj.weight");
  EXPECT_EQ(specs[2].shape, (Shape{9216, 3072}));
  // Phi-3-mini-128k's shape of longrope ("su" is its older name): 131072 / 4096 positions.
  json longrope = json::parse(kPhi3Mini4k);
  longrope["max_position_embeddings"] = 131072;
  longrope["rope_scaling"] = {{"type", "su"},
                              {"short_factor", std::vector<double>(48, 1.5)},
                              {"long_factor", std::vector<double>(48, 4.0)}};
  ModelConfig lr = parse_model_config(longrope, "cfg.json");
  EXPECT_EQ(lr.rope_scaling.type, "longrope");
  EXPECT_EQ(lr.rope_scaling.original_max_position_embeddings, 4096);
  EXPECT_DOUBLE_EQ(lr.rope_scaling.factor, 32.0);
  EXPECT_NEAR(lr.rope_scaling.attention_factor, 1.1902380714238083, 1e-12);  // sqrt(1+ln32/ln4096)
  longrope["rope_scaling"]["short_factor"] = {1.0};
  EXPECT_NE(error_of([&] {
              parse_model_config(longrope, "cfg.json");
            }).find("short_factor and long_factor need head_dim / 2 = 48 entries, got 1 and 48"),
            std::string::npos);
  longrope["rope_scaling"] = {{"type", "yarn"}, {"factor", 4.0}};
  EXPECT_NE(error_of([&] { parse_model_config(longrope, "cfg.json"); })
                .find("rope type 'yarn' is not supported (supported: default, linear, llama3, "
                      "longrope)"),
            std::string::npos);
}

TEST(Config, GraniteMultipliers) {
  json j = testing::tiny_config("llama");
  j["architectures"] = {"GraniteForCausalLM"};
  j["model_type"] = "granite";
  j["embedding_multiplier"] = 12.0, j["residual_multiplier"] = 0.22,
  j["attention_multiplier"] = 0.0078125;
  j["logits_scaling"] = 8.0;
  ModelConfig c = parse_model_config(j, "granite");
  EXPECT_EQ(c.family, ArchFamily::Granite);
  EXPECT_EQ(c.embedding_multiplier, 12.0);
  EXPECT_EQ(c.residual_multiplier, 0.22);
  EXPECT_EQ(*c.attention_scale, 0.0078125);
  EXPECT_EQ(c.logits_scaling, 8.0);
  j.erase("attention_multiplier");
  EXPECT_EQ(*parse_model_config(j, "granite").attention_scale, 1.0);  // GraniteConfig's default
}

TEST(Config, DefaultsWhenFieldsAreAbsent) {
  json j = {{"model_type", "llama"},     {"vocab_size", 10},         {"hidden_size", 12},
            {"intermediate_size", 20}, {"num_hidden_layers", 1}, {"num_attention_heads", 3}};
  auto c = parse_model_config(j, "c");
  EXPECT_EQ(c.architecture, "llama");
  EXPECT_EQ(c.num_key_value_heads, 3);
  EXPECT_EQ(c.head_dim, 4);
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_FALSE(c.torch_dtype);
  EXPECT_TRUE(c.eos_token_ids.empty());
}

TEST(Config, EosListAndV5Spellings) {
  json j = testing::tiny_config("llama");
  j["eos_token_id"] = {128001, 128008, 128009};
  j.erase("torch_dtype");
  j["dtype"] = "float16";
  j.erase("rope_theta");
  j["rope_parameters"] = {{"rope_type", "llama3"}, {"rope_theta", 500000.0}, {"factor", 8.0},
                          {"original_max_position_embeddings", 8192}};
  auto c = parse_model_config(j, "c");
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{128001, 128008, 128009}));
  EXPECT_EQ(c.torch_dtype, DType::F16);
  EXPECT_DOUBLE_EQ(c.rope_theta, 500000.0);
  EXPECT_EQ(c.rope_scaling.type, "llama3");
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 8.0);
  // The old "type" key is an alias of "rope_type".
  j.erase("rope_parameters");
  j["rope_scaling"] = {{"type", "llama3"}, {"factor", 4.0}};
  c = parse_model_config(j, "c");
  EXPECT_EQ(c.rope_scaling.type, "llama3");
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 4.0);
}

// tiny llama (hidden 8, inter 12, 2 layers, 2 heads x 4, 1 kv head, vocab 16), counted by hand.
TEST(Config, BiasesAndTyingChangeTheTensorList) {
  json j = testing::tiny_config("llama");
  auto c = parse_model_config(j, "c");
  // embed 128 + 2 x (norms 16 + q 64 + k 32 + v 32 + o 64 + mlp 3*96) + norm 8 + lm_head 128
  EXPECT_EQ(parameter_count(c), 128 + 2 * (16 + 64 + 32 + 32 + 64 + 288) + 8 + 128);
  j["attention_bias"] = true;
  j["mlp_bias"] = true;
  j["tie_word_embeddings"] = true;
  c = parse_model_config(j, "c");
  EXPECT_TRUE(c.qkv_bias && c.o_bias && c.mlp_bias);
  // + per layer: q 8, k 4, v 4, o 8, gate 12, up 12, down 8 = 56; - lm_head 128
  EXPECT_EQ(parameter_count(c), 1256 + 2 * 56 - 128);
  std::vector<std::string> layer0;
  for (const auto& s : expected_tensors(c, DType::F32))
    if (s.name.starts_with("model.layers.0.")) layer0.push_back(s.name.substr(15));
  EXPECT_EQ(layer0, (std::vector<std::string>{
                        "input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.k_proj.weight",
                        "self_attn.v_proj.weight", "self_attn.q_proj.bias", "self_attn.k_proj.bias",
                        "self_attn.v_proj.bias", "self_attn.o_proj.weight", "self_attn.o_proj.bias",
                        "post_attention_layernorm.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight",
                        "mlp.down_proj.weight", "mlp.gate_proj.bias", "mlp.up_proj.bias", "mlp.down_proj.bias"}));
  // Mistral and Qwen build their MLP without biases, whatever mlp_bias says.
  json q = testing::tiny_config("qwen2");
  q["mlp_bias"] = true;
  q["attention_bias"] = true;
  c = parse_model_config(q, "c");
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_FALSE(c.o_bias || c.mlp_bias);
  // Qwen2 sliding window only when use_sliding_window is set.
  q["sliding_window"] = 4096;
  EXPECT_FALSE(parse_model_config(q, "c").sliding_window);
  q["use_sliding_window"] = true;
  EXPECT_EQ(parse_model_config(q, "c").sliding_window, 4096);
}

struct BadConfig {
  std::function<void(json&)> edit;
  std::string message;
};

TEST(Config, ErrorsNameTheFieldAndTheFile) {
  std::vector<BadConfig> cases = {
      {[](json& j) { j["architectures"] = {"FalconForCausalLM"}; },
       "cfg.json: architecture 'FalconForCausalLM' is not supported (supported: LlamaForCausalLM"},
      {[](json& j) {
         j.erase("architectures");
         j["model_type"] = "gemma";
       },
       "architecture 'gemma' is not supported"},
      {[](json& j) {
         j.erase("architectures");
         j.erase("model_type");
       },
       "fields 'architectures' and 'model_type' are both missing"},
      {[](json& j) { j["architectures"] = "LlamaForCausalLM"; },
       "field 'architectures' must be a non-empty list"},
      {[](json& j) { j.erase("hidden_size"); }, "cfg.json: field 'hidden_size' is missing"},
      {[](json& j) { j["num_hidden_layers"] = "2"; },
       "field 'num_hidden_layers' must be a positive integer, got \"2\""},
      {[](json& j) { j["vocab_size"] = 0; },
       "field 'vocab_size' must be a positive integer, got 0"},
      {[](json& j) { j["hidden_size"] = 8.5; },
       "field 'hidden_size' must be a positive integer, got 8.5"},
      {[](json& j) { j["intermediate_size"] = -12; },
       "field 'intermediate_size' must be a positive integer"},
      {[](json& j) { j["num_key_value_heads"] = 3; },
       "field 'num_attention_heads' (2) must be a multiple of 'num_key_value_heads' (3)"},
      {[](json& j) {
         j["num_attention_heads"] = 3;
         j["num_key_value_heads"] = 3;
       },
       "field 'hidden_size' (8) is not divisible by 'num_attention_heads' (3)"},
      {[](json& j) { j["head_dim"] = 5; }, "field 'head_dim' (5) must be even"},
      {[](json& j) { j["rms_norm_eps"] = "small"; },
       "field 'rms_norm_eps' must be a positive number"},
      {[](json& j) { j["rope_theta"] = -1; }, "field 'rope_theta' must be a positive number"},
      {[](json& j) {
         j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
       },
       "field 'rope_scaling': rope type 'yarn' is not supported"},
      {[](json& j) { j["rope_scaling"] = 3; }, "field 'rope_scaling' must be an object"},
      {[](json& j) { j["rope_parameters"] = "default"; },
       "field 'rope_parameters' must be an object"},
      {[](json& j) {
         j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", -2}};
       },
       "field 'rope_scaling.factor' must be a positive number"},
      {[](json& j) { j["tie_word_embeddings"] = 1; },
       "field 'tie_word_embeddings' must be true or false, got 1"},
      {[](json& j) { j["hidden_act"] = "gelu"; },
       "field 'hidden_act' \"gelu\" is not supported (only silu)"},
      {[](json& j) {
         j["eos_token_id"] = {2, "x"};
       },
       "field 'eos_token_id' must be a non-negative integer"},
      {[](json& j) { j["bos_token_id"] = -1; },
       "field 'bos_token_id' must be a non-negative integer"},
      {[](json& j) { j["torch_dtype"] = "float8"; },
       "field 'torch_dtype' \"float8\" is not a known dtype"},
      {[](json& j) { j["torch_dtype"] = 16; }, "field 'torch_dtype' 16 is not a known dtype"},
      {[](json& j) { j["num_hidden_layers"] = 1000000; },
       "field 'num_hidden_layers' (1000000) exceeds the supported maximum of 65536"},
      {[](json& j) { j["num_hidden_layers"] = int64_t{1} << 41; },
       "field 'num_hidden_layers' must be a positive integer"},
      {[](json& j) {
         j["hidden_size"] = int64_t{1} << 40;
         j["num_attention_heads"] = 1;
         j["num_key_value_heads"] = 1;
       },
       "describe more than 2^48 parameters"},
      {[](json& j) {
         j["vocab_size"] = int64_t{1} << 40;
         j["hidden_size"] = 1024;
       },
       "describe more than 2^48 parameters"},
  };
  for (const auto& bad : cases) {
    json j = testing::tiny_config("llama");
    bad.edit(j);
    std::string err = error_of([&] { parse_model_config(j, "cfg.json"); });
    EXPECT_NE(err.find(bad.message), std::string::npos) << "expected: " << bad.message << "\n     got: " << err;
    EXPECT_TRUE(err.starts_with("[config] cfg.json: ")) << err;
  }
  EXPECT_NE(error_of([] { parse_model_config(json::array(), "cfg.json"); }).find("not a JSON object"),
            std::string::npos);
}

}  // namespace
}  // namespace evomerge
