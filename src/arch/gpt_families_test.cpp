// GPT-2 and GPT-NeoX, registered for merging (not inference) with their own tensor names, as
// mergekit's gpt2.json and gpt-neox.json name them: published configs give the published parameter
// totals, names classify to layers with their own prefixes, and generated folders (both GPT-2
// spellings, with the causal-mask buffers older checkpoints carry) open.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "arch/arch.h"
#include "arch/test_support.h"
#include "io/files.h"
#include "io/safetensors.h"
#include "io/test_support.h"
#include "tensor/convert.h"

namespace evomerge {
namespace {

using json = nlohmann::json;

// openai-community/gpt2 config.json (the fields it has; task_specific_params dropped)
const char* kGpt2 = R"({
  "activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"], "attn_pdrop": 0.1,
  "bos_token_id": 50256, "embd_pdrop": 0.1, "eos_token_id": 50256, "initializer_range": 0.02,
  "layer_norm_epsilon": 1e-05, "model_type": "gpt2", "n_ctx": 1024, "n_embd": 768, "n_head": 12,
  "n_layer": 12, "n_positions": 1024, "resid_pdrop": 0.1, "summary_activation": null,
  "summary_first_dropout": 0.1, "summary_proj_to_labels": true, "summary_type": "cls_index",
  "summary_use_proj": true, "vocab_size": 50257})";

// EleutherAI/pythia-70m config.json
const char* kPythia70m = R"({
  "architectures": ["GPTNeoXForCausalLM"], "bos_token_id": 0, "eos_token_id": 0, "hidden_act": "gelu",
  "hidden_size": 512, "initializer_range": 0.02, "intermediate_size": 2048, "layer_norm_eps": 1e-05,
  "max_position_embeddings": 2048, "model_type": "gpt_neox", "num_attention_heads": 8,
  "num_hidden_layers": 6, "rotary_emb_base": 10000, "rotary_pct": 0.25, "tie_word_embeddings": false,
  "torch_dtype": "float16", "use_cache": true, "use_parallel_residual": true, "vocab_size": 50304})";

TEST(GptFamilies, PublishedConfigsGiveThePublishedParameterCounts) {
  ModelConfig g = parse_model_config(json::parse(kGpt2), "gpt2");
  EXPECT_EQ(g.family, ArchFamily::Gpt2);
  EXPECT_EQ(g.num_hidden_layers, 12);
  EXPECT_EQ(g.intermediate_size, 3072);        // n_inner absent: 4 n_embd
  EXPECT_TRUE(g.tie_word_embeddings);          // GPT2Config default
  EXPECT_EQ(parameter_count(g), 124'439'808);  // "124M": wte + wpe + 12 blocks + ln_f
  auto specs = expected_tensors(g, DType::F32);
  EXPECT_EQ(specs.front().name, "transformer.wte.weight");
  EXPECT_EQ(specs[1].name, "transformer.wpe.weight");
  EXPECT_EQ(specs[1].shape, (Shape{1024, 768}));
  EXPECT_EQ(specs[4].name, "transformer.h.0.attn.c_attn.weight");
  EXPECT_EQ(specs[4].shape, (Shape{768, 2304}));  // Conv1D: [in, out]
  EXPECT_EQ(specs.back().name, "transformer.ln_f.bias");
  EXPECT_EQ(layer_count_key(g), "n_layer");

  ModelConfig n = parse_model_config(json::parse(kPythia70m), "pythia-70m");
  EXPECT_EQ(n.family, ArchFamily::GptNeoX);
  EXPECT_FALSE(n.tie_word_embeddings);
  EXPECT_EQ(parameter_count(n), 70'426'624);  // pythia-70m's safetensors total
  EXPECT_EQ(expected_tensors(n, DType::F32).back().name, "embed_out.weight");
  EXPECT_EQ(tensor_names(n).head, "embed_out.weight");
  EXPECT_EQ(layer_count_key(n), "num_hidden_layers");
}

TEST(GptFamilies, NamesClassifyWithTheirOwnPrefixes) {
  auto loc = classify_tensor("transformer.h.3.attn.c_attn.weight");
  ASSERT_TRUE(loc);
  EXPECT_EQ(loc->place, TensorPlace::Layer);
  EXPECT_EQ(loc->layer, 3);
  EXPECT_EQ(loc->suffix, "attn.c_attn.weight");
  EXPECT_EQ(layer_tensor_name(*loc, 7), "transformer.h.7.attn.c_attn.weight");
  loc = classify_tensor("h.11.mlp.c_fc.bias");  // the original checkpoints' spelling
  ASSERT_TRUE(loc);
  EXPECT_EQ(layer_tensor_name(*loc, 0), "h.0.mlp.c_fc.bias");
  loc = classify_tensor("gpt_neox.layers.5.attention.query_key_value.weight");
  ASSERT_TRUE(loc);
  EXPECT_EQ(loc->layer, 5);
  EXPECT_EQ(layer_tensor_name(*loc, 1), "gpt_neox.layers.1.attention.query_key_value.weight");
  EXPECT_EQ(classify_tensor("wte.weight")->role, TensorRole::Embed);
  EXPECT_EQ(classify_tensor("transformer.wpe.weight")->place, TensorPlace::PreLayer);
  EXPECT_EQ(classify_tensor("transformer.ln_f.weight")->role, TensorRole::FinalNorm);
  EXPECT_EQ(classify_tensor("ln_f.bias")->place, TensorPlace::PostLayer);
  EXPECT_EQ(classify_tensor("embed_out.weight")->role, TensorRole::LmHead);
  EXPECT_EQ(classify_tensor("gpt_neox.embed_in.weight")->role, TensorRole::Embed);
  EXPECT_FALSE(classify_tensor("transformer.h.01.ln_1.weight"));  // one spelling per layer
}

TEST(GptFamilies, GeneratedFoldersOpenInBothGpt2Spellings) {
  testing::TempDir tmp("gpt_families");
  for (const char* family : {"gpt2", "gpt_neox"}) {
    const std::filesystem::path dir = tmp / family;
    std::filesystem::create_directories(dir);
    testing::write_model_folder(dir, testing::tiny_config(family));
    Model m = Model::open(dir.string());
    EXPECT_EQ(arch_family_name(m.config.family), family);
    EXPECT_EQ(m.config.num_hidden_layers, 2);
  }
  // The original GPT-2 checkpoints: no "transformer." prefix, plus h.N.attn.bias mask buffers.
  const std::filesystem::path bare = tmp / "gpt2_bare";
  std::filesystem::create_directories(bare);
  const json cfg = testing::tiny_config("gpt2");
  write_file_atomic(bare / "config.json", cfg.dump());
  ModelConfig c = parse_model_config(cfg, "c");
  c.gpt2_prefix = "";
  std::vector<std::string> names;
  std::vector<Tensor> owned;
  for (const auto& spec : expected_tensors(c, DType::F32)) {
    names.push_back(spec.name);
    owned.push_back(Tensor::from_f32(
        spec.shape, std::vector<float>(static_cast<size_t>(shape_numel(spec.shape)), 0.5f),
        DType::F32));
  }
  for (int i = 0; i < 2; ++i) {
    names.push_back("h." + std::to_string(i) + ".attn.bias");
    owned.push_back(Tensor::from_f32({1, 1, 4, 4}, std::vector<float>(16, 1.0f), DType::F32));
  }
  std::vector<std::pair<std::string, TensorView>> views;
  for (size_t i = 0; i < owned.size(); ++i) views.push_back({names[i], owned[i].view()});
  write_safetensors(bare, views);
  Model m = Model::open(bare.string());
  EXPECT_EQ(m.config.gpt2_prefix, "");
  EXPECT_EQ(tensor_names(m.config).embed, "wte.weight");
  EXPECT_EQ(m.lm_head().shape, (Shape{16, 8}));  // tied: the embeddings
}

}  // namespace
}  // namespace evomerge
