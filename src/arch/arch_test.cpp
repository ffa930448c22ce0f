// The tensor-name registry and Model::open on generated real-format folders.
#include "arch/arch.h"

#include <gtest/gtest.h>

#include <cstring>
#include <functional>

#include "arch/test_support.h"
#include "common/error.h"
#include "io/test_support.h"
#include "common/test_util.h"

namespace evomerge {
namespace {

using json = nlohmann::json;
using testing::TempDir;

using testing_util::error_of;

TEST(ClassifyTensor, KnownNames) {
  auto e = classify_tensor("model.embed_tokens.weight");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->place, TensorPlace::PreLayer);
  EXPECT_EQ(e->role, TensorRole::Embed);
  EXPECT_EQ(e->layer, -1);
  auto n = classify_tensor("model.norm.weight");
  ASSERT_TRUE(n);
  EXPECT_EQ(n->place, TensorPlace::PostLayer);
  EXPECT_EQ(n->role, TensorRole::FinalNorm);
  auto h = classify_tensor("lm_head.weight");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->place, TensorPlace::PostLayer);
  EXPECT_EQ(h->role, TensorRole::LmHead);

  struct Case {
    const char* name;
    int layer;
    TensorRole role;
    const char* suffix;
  };
  for (const Case& c : std::initializer_list<Case>{
           {"model.layers.0.input_layernorm.weight", 0, TensorRole::AttnNorm, "input_layernorm.weight"},
           {"model.layers.13.self_attn.q_proj.weight", 13, TensorRole::Q, "self_attn.q_proj.weight"},
           {"model.layers.2.self_attn.k_proj.bias", 2, TensorRole::KBias, "self_attn.k_proj.bias"},
           {"model.layers.27.self_attn.k_norm.weight", 27, TensorRole::KNorm, "self_attn.k_norm.weight"},
           {"model.layers.1.self_attn.o_proj.weight", 1, TensorRole::O, "self_attn.o_proj.weight"},
           {"model.layers.4.post_attention_layernorm.weight", 4, TensorRole::MlpNorm,
            "post_attention_layernorm.weight"},
           {"model.layers.100.mlp.down_proj.weight", 100, TensorRole::Down, "mlp.down_proj.weight"},
           {"model.layers.5.mlp.up_proj.bias", 5, TensorRole::UpBias, "mlp.up_proj.bias"},
           {"model.layers.3.self_attn.rotary_emb.inv_freq", 3, TensorRole::Other, "self_attn.rotary_emb.inv_freq"},
       }) {
    auto loc = classify_tensor(c.name);
    ASSERT_TRUE(loc) << c.name;
    EXPECT_EQ(loc->place, TensorPlace::Layer) << c.name;
    EXPECT_EQ(loc->layer, c.layer) << c.name;
    EXPECT_EQ(loc->role, c.role) << c.name;
    EXPECT_EQ(loc->suffix, c.suffix) << c.name;
    EXPECT_EQ(layer_tensor_name(c.layer, c.suffix), c.name);
  }
}

TEST(ClassifyTensor, ForeignNames) {
  for (const char* name :
       {"transformer.blocks.0.attn.c_attn.weight", "model.layers..mlp.up_proj.weight",
        "model.layers.01.mlp.up_proj.weight", "model.layers.-1.mlp.up_proj.weight",
        "model.layers.1a.mlp.up_proj.weight", "model.layers.99999999999999.mlp.up_proj.weight",
        "model.layers.3", "model.embed_tokens.bias", "", "lm_head.weight.x"})
    EXPECT_FALSE(classify_tensor(name)) << name;
}

TEST(ClassifyTensor, RoleNames) {
  EXPECT_EQ(tensor_role_name(TensorRole::Q), "self_attn.q_proj");
  EXPECT_EQ(tensor_role_name(TensorRole::Down), "mlp.down_proj");
  EXPECT_EQ(tensor_role_name(TensorRole::Embed), "embed_tokens");
  EXPECT_EQ(tensor_role_name(TensorRole::LmHead), "lm_head");
  EXPECT_EQ(tensor_role_name(TensorRole::AttnNorm), "input_layernorm");
}

// Every name expected_tensors produces classifies back to its layer and a known role.
TEST(ClassifyTensor, ExpectedTensorsRoundTrip) {
  for (const char* family : {"llama", "mistral", "qwen2", "qwen3"}) {
    json j = testing::tiny_config(family);
    j["attention_bias"] = true;
    j["mlp_bias"] = true;
    auto c = parse_model_config(j, "c");
    for (const auto& s : expected_tensors(c, DType::BF16)) {
      auto loc = classify_tensor(s.name);
      ASSERT_TRUE(loc) << s.name;
      EXPECT_NE(loc->role, TensorRole::Other) << s.name;
      if (loc->place == TensorPlace::Layer) {
        EXPECT_EQ(layer_tensor_name(loc->layer, loc->suffix), s.name);
      }
    }
  }
}

TEST(ModelOpen, EveryFamilyFromGeneratedFolder) {
  for (const char* family : {"llama", "mistral", "qwen2", "qwen3"}) {
    TempDir dir;
    auto specs = testing::write_model_folder(dir.path(), testing::tiny_config(family));
    Model m = Model::open(dir.path().string());
    EXPECT_EQ(arch_family_name(m.config.family), family);
    EXPECT_EQ(m.folder.weights.names().size(), specs.size());
    for (const auto& s : specs) {
      const TensorInfo* info = m.folder.weights.find(s.name);
      ASSERT_NE(info, nullptr) << s.name;
      EXPECT_EQ(info->shape, s.shape);
      EXPECT_EQ(info->dtype, DType::BF16);
    }
    EXPECT_EQ(m.folder.aux_files, (std::vector<std::string>{"generation_config.json", "tokenizer_config.json"}));
    EXPECT_EQ(m.lm_head().data, m.folder.weights.view("lm_head.weight").data);
  }
}

TEST(ModelOpen, ShardedAndTied) {
  TempDir dir;
  json j = testing::tiny_config("qwen3");
  j["tie_word_embeddings"] = true;
  testing::write_model_folder(dir.path(), j, DType::F32, /*shard_bytes=*/600);
  Model m = Model::open(dir.path().string());
  EXPECT_GT(m.folder.weights.files().size(), 2u);
  EXPECT_FALSE(m.folder.weights.contains("lm_head.weight"));
  EXPECT_EQ(m.lm_head().data, m.folder.weights.view("model.embed_tokens.weight").data);
  EXPECT_EQ(m.lm_head().shape, (Shape{16, 8}));
  // Values survive the trip: the first embedding element is 0.1*sin(1.3*0) = 0 and the second 0.1*sin(0.37).
  auto emb = to_f32(m.folder.weights.view("model.embed_tokens.weight"));
  EXPECT_FLOAT_EQ(emb[0], 0.0f);
  EXPECT_FLOAT_EQ(emb[1], 0.1f * std::sin(0.37f));
}

TEST(ModelOpen, TiedCheckpointMayStillShipLmHead) {
  TempDir dir;
  json j = testing::tiny_config("llama");
  testing::write_model_folder(dir.path(), j);  // untied: writes lm_head
  j["tie_word_embeddings"] = true;
  write_file_atomic(dir / "config.json", j.dump());
  Model m = Model::open(dir.path().string());
  EXPECT_TRUE(m.folder.weights.contains("lm_head.weight"));
  EXPECT_EQ(m.lm_head().data, m.folder.weights.view("model.embed_tokens.weight").data);
}

TEST(ModelOpen, MissingTensorWrongShapeWrongDType) {
  TempDir dir;
  json j = testing::tiny_config("llama");
  testing::write_model_folder(dir.path(), j);
  // One more layer than the weights hold.
  j["num_hidden_layers"] = 3;
  write_file_atomic(dir / "config.json", j.dump());
  std::string err = error_of([&] { Model::open(dir.path().string()); });
  EXPECT_NE(err.find("tensor 'model.layers.2.input_layernorm.weight' is missing (expected by config.json)"),
            std::string::npos)
      << err;
  // A wider intermediate size than the weights have.
  j["num_hidden_layers"] = 2;
  j["intermediate_size"] = 16;
  write_file_atomic(dir / "config.json", j.dump());
  err = error_of([&] { Model::open(dir.path().string()); });
  EXPECT_NE(err.find("tensor 'model.layers.0.mlp.gate_proj.weight' has shape [12, 8] but config.json implies [16, 8]"),
            std::string::npos)
      << err;
  // Integer weights.
  TempDir dir2;
  testing::write_model_folder(dir2.path(), testing::tiny_config("llama"), DType::F32);
  auto specs = expected_tensors(parse_model_config(testing::tiny_config("llama"), "c"), DType::F32);
  specs[0].dtype = DType::I32;
  {
    ShardedWriter w(dir2.path(), specs);
    for (const auto& s : specs) w.write(s.name, std::vector<std::byte>(s.nbytes()));
    w.finish();
  }
  err = error_of([&] { Model::open(dir2.path().string()); });
  EXPECT_NE(err.find("tensor 'model.embed_tokens.weight' has dtype I32; weights must be F32, F16 or BF16"),
            std::string::npos)
      << err;
}

// Weights of a layer the config does not have (config says 1 layer, weights hold 2): an error
// naming the tensors, where it used to be accepted silently.
TEST(ModelOpen, UnexpectedTensorsAreNamed) {
  TempDir dir;
  json j = testing::tiny_config("llama");
  testing::write_model_folder(dir.path(), j);
  j["num_hidden_layers"] = 1;
  write_file_atomic(dir / "config.json", j.dump());
  const std::string err = error_of([&] { Model::open(dir.path().string()); });
  EXPECT_NE(err.find("tensors 'model.layers.1.input_layernorm.weight', "
                     "'model.layers.1.self_attn.q_proj.weight', "
                     "'model.layers.1.self_attn.k_proj.weight', "
                     "'model.layers.1.self_attn.v_proj.weight', ... (9 "
                     "in all) are not part of a LlamaForCausalLM with 1 layers (config.json)"),
            std::string::npos)
      << err;
  // A rotary inv_freq buffer (older transformers saved them) is not an error.
  TempDir dir2;
  json k = testing::tiny_config("llama");
  auto specs = expected_tensors(parse_model_config(k, "c"), DType::F32);
  specs.push_back({"model.layers.0.self_attn.rotary_emb.inv_freq", DType::F32, {2}});
  write_file_atomic(dir2 / "config.json", k.dump());
  {
    ShardedWriter w(dir2.path(), specs);
    for (const auto& s : specs) w.write(s.name, std::vector<std::byte>(s.nbytes()));
    w.finish();
  }
  EXPECT_NO_THROW(Model::open(dir2.path().string()));
}

}  // namespace
}  // namespace evomerge

namespace evomerge {
namespace {

// examples/models/base was written by an independent writer (tools/fixtures/st.py: Python, from the
// format spec, tensors packed in sorted-name order, __metadata__ last). Reading it and writing its
// tensors back with ShardedWriter must reproduce its data buffer byte for byte and the same table.
TEST(GoldenFixture, IndependentWriterFileReadsAndRewritesIdentically) {
  const std::filesystem::path dir = std::filesystem::path(EVOMERGE_SOURCE_DIR) / "examples/models/base";
  if (!std::filesystem::exists(dir / "model.safetensors")) GTEST_SKIP() << "bundled model not present";
  Model m = Model::open(dir.string());
  EXPECT_EQ(m.config.num_hidden_layers, 4);
  // 768x128 embed + lm_head, 4 x (q 128x128, k/v 64x128, o 128x128, mlp 3x384x128, 2 norms), norm.
  EXPECT_EQ(parameter_count(m.config), 2 * 768 * 128 + 4 * (16384 + 2 * 8192 + 16384 + 3 * 384 * 128 + 256) + 128);
  const SafetensorsFile& original = m.folder.weights.files().at(0);
  EXPECT_EQ(original.metadata(), (std::map<std::string, std::string>{{"format", "pt"}}));

  std::vector<std::pair<std::string, TensorView>> tensors;
  std::vector<std::string> names = m.folder.weights.names();
  std::sort(names.begin(), names.end());
  for (const auto& name : names) tensors.emplace_back(name, m.folder.weights.view(name));
  TempDir out;
  write_safetensors(out.path(), tensors);
  SafetensorsFile copy = SafetensorsFile::open(out / "model.safetensors");
  ASSERT_EQ(copy.tensors().size(), original.tensors().size());
  for (size_t i = 0; i < copy.tensors().size(); ++i) {
    const auto& a = original.tensors()[i];
    const auto& b = copy.tensors()[i];
    EXPECT_EQ(a.name, b.name);
    EXPECT_EQ(a.dtype, b.dtype);
    EXPECT_EQ(a.shape, b.shape);
    EXPECT_EQ(a.data_begin, b.data_begin);
    EXPECT_EQ(a.data_end, b.data_end);
  }
  auto data_of = [](const SafetensorsFile& f) {
    auto all = f.mapping()->bytes();
    uint64_t n = 0;
    std::memcpy(&n, all.data(), 8);
    return std::string(reinterpret_cast<const char*>(all.data()) + 8 + n, all.size() - 8 - n);
  };
  EXPECT_TRUE(data_of(original) == data_of(copy));
}

}  // namespace
}  // namespace evomerge
