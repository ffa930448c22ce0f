// The mixture-of-experts families, merged but not run (Mixtral, Qwen2-MoE): the tensors their
// config implies (expert tensors per layer), parameter totals of real checkpoints, generated
// folders that open (the engine refuses them by name: cli/merge_only_arch_test.cpp).
#include <gtest/gtest.h>

#include "arch/arch.h"
#include "arch/config.h"
#include "arch/test_support.h"
#include "common/error.h"
#include "common/test_util.h"
#include "io/test_support.h"

namespace evomerge {
namespace {

using json = nlohmann::json;
using testing::TempDir;
using testing_util::error_of;

struct FamilyCase {
  const char* family;
  size_t tensors;  // for the tiny config: 2 layers
  std::string name;
  Shape shape;
};

TEST(MoeFamilies, ExpectedTensorsOfTinyConfigs) {
  const std::vector<FamilyCase> cases = {
      // attention (norm, q k v o, norm) + router [3, 8] + 3 experts x (w1, w2, w3)
      {"mixtral",
       1 + 2 * (6 + 1 + 9) + 2,
       "model.layers.1.block_sparse_moe.experts.2.w2.weight",
       {8, 12}},
      {"mixtral", 1 + 2 * (6 + 1 + 9) + 2, "model.layers.0.block_sparse_moe.gate.weight", {3, 8}},
      // q k v biased, router, 3 experts of width 6, shared expert of width 10 and its [1, 8] gate
      {"qwen2_moe",
       1 + 2 * (9 + 1 + 9 + 4) + 2,
       "model.layers.0.mlp.experts.1.up_proj.weight",
       {6, 8}},
      {"qwen2_moe",
       1 + 2 * (9 + 1 + 9 + 4) + 2,
       "model.layers.1.mlp.shared_expert.down_proj.weight",
       {8, 10}},
      {"qwen2_moe",
       1 + 2 * (9 + 1 + 9 + 4) + 2,
       "model.layers.1.mlp.shared_expert_gate.weight",
       {1, 8}},
  };
  for (const auto& c : cases) {
    ModelConfig cfg = parse_model_config(testing::tiny_config(c.family), "c");
    auto specs = expected_tensors(cfg, DType::BF16);
    EXPECT_EQ(specs.size(), c.tensors) << c.family;
    auto it = std::find_if(specs.begin(), specs.end(),
                           [&](const TensorSpec& s) { return s.name == c.name; });
    ASSERT_NE(it, specs.end()) << c.family << " " << c.name;
    EXPECT_EQ(it->shape, c.shape) << c.name;
    for (const auto& s : specs) EXPECT_TRUE(classify_tensor(s.name)) << s.name;
  }
}

// Totals published for the checkpoints (model cards / safetensors metadata).
TEST(MoeFamilies, ParameterCountsOfRealCheckpoints) {
  // mistralai/Mixtral-8x7B-v0.1: 46,702,792,704 parameters.
  json mixtral = {{"architectures", {"MixtralForCausalLM"}},
                  {"hidden_size", 4096},
                  {"intermediate_size", 14336},
                  {"num_attention_heads", 32},
                  {"num_hidden_layers", 32},
                  {"num_key_value_heads", 8},
                  {"num_local_experts", 8},
                  {"num_experts_per_tok", 2},
                  {"vocab_size", 32000},
                  {"tie_word_embeddings", false},
                  {"hidden_act", "silu"},
                  {"rope_theta", 1e6}};
  EXPECT_EQ(parameter_count(parse_model_config(mixtral, "mixtral")), 46702792704);
  // Qwen/Qwen1.5-MoE-A2.7B: 14.3B in all (60 experts of 1408, a 5632-wide shared expert).
  json qmoe = {{"architectures", {"Qwen2MoeForCausalLM"}},
               {"hidden_size", 2048},
               {"intermediate_size", 5632},
               {"num_attention_heads", 16},
               {"num_hidden_layers", 24},
               {"num_key_value_heads", 16},
               {"num_experts", 60},
               {"moe_intermediate_size", 1408},
               {"shared_expert_intermediate_size", 5632},
               {"vocab_size", 151936},
               {"tie_word_embeddings", false},
               {"decoder_sparse_step", 1},
               {"mlp_only_layers", json::array()}};
  EXPECT_EQ(parameter_count(parse_model_config(qmoe, "qmoe")), 14315784192);
}

TEST(MoeFamilies, GeneratedFoldersOpenAndBadExpertSettingsAreRefused) {
  for (const char* family : {"mixtral", "qwen2_moe"}) {
    TempDir dir;
    auto specs = testing::write_model_folder(dir.path(), testing::tiny_config(family));
    Model m = Model::open(dir.path().string());
    EXPECT_EQ(m.folder.weights.names().size(), specs.size()) << family;
  }
  std::string e = error_of([] {
    json j = testing::tiny_config("qwen2_moe");
    j["mlp_only_layers"] = {1};
    parse_model_config(j, "q/config.json");
  });
  EXPECT_NE(e.find("field 'mlp_only_layers' must be empty"), std::string::npos) << e;
  e = error_of([] {
    json j = testing::tiny_config("mixtral");
    j["num_local_experts"] = 5000;
    parse_model_config(j, "m/config.json");
  });
  EXPECT_NE(e.find("5000 experts exceed the supported maximum of 1024"), std::string::npos) << e;
}

}  // namespace
}  // namespace evomerge
