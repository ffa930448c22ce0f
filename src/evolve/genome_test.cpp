#include "evolve/genome.h"

#include <gtest/gtest.h>

#include "common/error.h"
#include "common/test_util.h"

using namespace evomerge;
using evomerge::testing_util::error_of;

namespace {
PsSpaceOptions two_model_dare(int layers, int groups) {
  PsSpaceOptions o;
  o.models = {"m/a", "m/b"};
  o.base_model = "m/base";
  o.num_layers = layers;
  o.layer_groups = groups;
  return o;
}
double value(const ParamMap& p, const char* key, const char* tensor) {
  const auto it = p.find(key);
  EXPECT_NE(it, p.end()) << key;
  const auto v = it->second.evaluate(tensor, 0.5);
  EXPECT_TRUE(v.has_value()) << key << " " << tensor;
  return v.value_or(-1);
}
}  // namespace

TEST(PsGenome, LayoutAndDecodeOnHandMadeGenome) {
  PsGenome g(two_model_dare(8, 2));
  ASSERT_EQ(g.dimension(), 8u);  // 2 groups x 2 models x (weight, density)
  EXPECT_EQ(g.genes()[0].name(), "layers[0,4)/model0/weight");
  EXPECT_EQ(g.genes()[3].name(), "layers[0,4)/model1/density");
  EXPECT_EQ(g.genes()[4].name(), "layers[4,8)/model0/weight");
  EXPECT_EQ(g.initial(), std::vector<double>(8, 0.5));
  EXPECT_EQ(g.lower(), std::vector<double>(8, 0.0));
  EXPECT_EQ(g.upper(), std::vector<double>(8, 1.0));

  const std::vector<double> x{0.1, 0.2, 0.3, 0.4, 0.9, 0.8, 0.7, 0.6};
  const MergeConfig c = g.decode(x);
  EXPECT_EQ(c.merge_method, "dare_ties");
  ASSERT_TRUE(c.base_model.has_value());
  EXPECT_EQ(c.base_model->path, "m/base");
  ASSERT_EQ(c.slices.size(), 2u);
  const auto& s0 = c.slices[0];
  ASSERT_EQ(s0.sources.size(), 3u);  // two evolved models + the base (slices do not add it)
  EXPECT_EQ(s0.sources[0].model.path, "m/a");
  EXPECT_EQ(s0.sources[0].layer_start, 0);
  EXPECT_EQ(s0.sources[0].layer_end, 4);
  EXPECT_DOUBLE_EQ(value(s0.sources[0].parameters, "weight", "model.layers.1.mlp.up_proj.weight"),
                   0.1);
  EXPECT_DOUBLE_EQ(value(s0.sources[0].parameters, "density", "model.layers.1.mlp.up_proj.weight"),
                   0.2);
  EXPECT_DOUBLE_EQ(value(s0.sources[1].parameters, "weight", "x"), 0.3);
  EXPECT_DOUBLE_EQ(value(s0.sources[1].parameters, "density", "x"), 0.4);
  EXPECT_EQ(s0.sources[2].model.path, "m/base");
  EXPECT_TRUE(s0.sources[2].parameters.empty());
  const auto& s1 = c.slices[1];
  EXPECT_EQ(s1.sources[1].layer_start, 4);
  EXPECT_EQ(s1.sources[1].layer_end, 8);
  EXPECT_DOUBLE_EQ(value(s1.sources[0].parameters, "weight", "x"), 0.9);
  EXPECT_DOUBLE_EQ(value(s1.sources[1].parameters, "density", "x"), 0.6);

  // Weights are not normalised by the genome: 0.9 + 0.7 > 1 stays.
  const auto d = g.describe(x);
  EXPECT_EQ(d["models"][0]["weight"], nlohmann::json({0.1, 0.9}));
  EXPECT_EQ(d["models"][1]["density"], nlohmann::json({0.4, 0.6}));
}

TEST(PsGenome, FiltersAndSeparateEmbedHead) {
  auto o = two_model_dare(6, 3);
  o.filters = {"self_attn"};
  o.separate_embed_head = true;
  o.method = "task_arithmetic";  // weight only
  PsGenome g(o);
  // 3 groups x 2 filter sets (self_attn, *) x 2 models + embed x 2 + head x 2.
  ASSERT_EQ(g.dimension(), 16u);
  std::vector<double> x(16);
  for (size_t i = 0; i < x.size(); ++i) x[i] = 0.01 * static_cast<double>(i + 1);
  const auto c = g.decode(x);
  ASSERT_EQ(c.slices.size(), 3u);
  // Group 0: genes 0..3 = (self_attn m0, m1), (* m0, m1); embed = genes 12, 13; head = 14, 15.
  const auto& p0 = c.slices[0].sources[0].parameters;
  EXPECT_DOUBLE_EQ(value(p0, "weight", "model.layers.0.self_attn.q_proj.weight"), 0.01);
  EXPECT_DOUBLE_EQ(value(p0, "weight", "model.layers.0.mlp.down_proj.weight"), 0.03);
  EXPECT_DOUBLE_EQ(value(p0, "weight", "model.embed_tokens.weight"), 0.13);
  EXPECT_DOUBLE_EQ(value(c.slices[0].sources[1].parameters, "weight", "model.embed_tokens.weight"),
                   0.14);
  const auto& p2 = c.slices[2].sources[1].parameters;
  EXPECT_DOUBLE_EQ(value(p2, "weight", "model.layers.5.self_attn.o_proj.weight"), 0.10);
  EXPECT_DOUBLE_EQ(value(p2, "weight", "model.layers.5.input_layernorm.weight"), 0.12);
  EXPECT_DOUBLE_EQ(value(p2, "weight", "lm_head.weight"), 0.16);
  EXPECT_DOUBLE_EQ(value(p2, "weight", "model.norm.weight"), 0.16);
  // The middle slice has no embed/head cases: embed_tokens falls to the catch-all.
  EXPECT_DOUBLE_EQ(value(c.slices[1].sources[0].parameters, "weight", "model.embed_tokens.weight"),
                   0.07);
}

TEST(PsGenome, YamlRoundTripsThroughTheMergeConfigParser) {
  auto o = two_model_dare(4, 2);
  o.filters = {"mlp"};
  o.normalize = false;
  PsGenome g(o);
  std::vector<double> x(g.dimension());
  for (size_t i = 0; i < x.size(); ++i) x[i] = 0.05 * static_cast<double>(i + 1);
  const std::string yaml = g.to_yaml(x);
  const MergeConfig back = parse_merge_config(yaml, "roundtrip.yml");
  const MergeConfig direct = g.decode(x);
  ASSERT_EQ(back.slices.size(), direct.slices.size());
  EXPECT_EQ(back.merge_method, "dare_ties");
  ASSERT_TRUE(back.parameters.count("normalize"));
  EXPECT_EQ(back.parameters.at("normalize").evaluate("x", 0).value(), 0.0);
  for (size_t s = 0; s < back.slices.size(); ++s)
    for (size_t k = 0; k < 2; ++k)
      for (const char* tensor :
           {"model.layers.1.mlp.gate_proj.weight", "model.layers.1.self_attn.k_proj.weight"})
        for (const char* key : {"weight", "density"})
          EXPECT_DOUBLE_EQ(value(back.slices[s].sources[k].parameters, key, tensor),
                           value(direct.slices[s].sources[k].parameters, key, tensor))
              << yaml;
}

TEST(PsGenome, SlerpHasOneTPerSlot) {
  PsSpaceOptions o;
  o.method = "slerp";
  o.models = {"m/a", "m/b"};
  o.num_layers = 4;
  o.layer_groups = 2;
  PsGenome g(o);
  ASSERT_EQ(g.dimension(), 2u);
  const auto c = g.decode(std::vector<double>{0.25, 0.75});
  ASSERT_TRUE(c.base_model.has_value());
  EXPECT_EQ(c.base_model->path, "m/a");
  EXPECT_DOUBLE_EQ(value(c.slices[0].parameters, "t", "x"), 0.25);
  EXPECT_DOUBLE_EQ(value(c.slices[1].parameters, "t", "x"), 0.75);
  EXPECT_EQ(c.slices[1].sources.size(), 2u);
}

TEST(PsGenome, BadOptionsNameTheField) {
  auto expect_error = [](PsSpaceOptions o, const char* needle) {
    try {
      PsGenome g(o);
      FAIL() << "no error for " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  auto o = two_model_dare(4, 5);
  expect_error(o, "ps.layer_groups");
  o = two_model_dare(4, 1);
  o.method = "passthrough";
  expect_error(o, "ps.method");
  o = two_model_dare(4, 1);
  o.base_model.clear();
  expect_error(o, "ps.base_model");
  o = two_model_dare(4, 1);
  o.method = "slerp";
  o.models.push_back("m/c");
  expect_error(o, "ps.models");
  o = two_model_dare(4, 1);
  o.init_weight = 2;
  expect_error(o, "ps.weight");
  PsGenome g(two_model_dare(4, 1));
  EXPECT_THROW(g.decode(std::vector<double>{0.5}), Error);
}

TEST(DfsGenome, DecodeHandMadeGenomeWithFullW) {
  DfsSpaceOptions o;
  o.layers_per_model = {3, 2};  // A: global 0..2, B: global 3..4
  o.repeats = 2;
  DfsGenome g(o);
  EXPECT_EQ(g.total_layers(), 5);
  EXPECT_EQ(g.indicator_size(), 10);
  EXPECT_EQ(g.scale_size(), 25);
  ASSERT_EQ(g.dimension(), 35u);
  EXPECT_EQ(g.layer_of(3), std::make_pair(1, 0));
  EXPECT_EQ(g.global_index(1, 1), 4);

  std::vector<double> x(35, -1.0);
  x[0] = 1;  // A0 in repetition 1: the fixed start, not repeated
  x[1] = 1;  // A1
  x[3] = 1;  // B0
  x[9] = 1;  // B1 in repetition 2
  for (int i = 0; i < 5; ++i)
    for (int j = 0; j < 5; ++j) x[10 + i * 5 + j] = 1.0 + 0.01 * (i * 5 + j);
  const auto path = g.decode(x);
  ASSERT_EQ(path.size(), 5u);
  const int want[5][2] = {{0, 0}, {0, 1}, {1, 0}, {1, 1}, {0, 2}};
  for (int k = 0; k < 5; ++k) {
    EXPECT_EQ(path[k].model, want[k][0]) << k;
    EXPECT_EQ(path[k].layer, want[k][1]) << k;
  }
  EXPECT_FLOAT_EQ(path[0].input_scale, 1.0f);               // reads the embeddings
  EXPECT_FLOAT_EQ(path[1].input_scale, 1.0f + 0.01f * 1);   // W[0][1]
  EXPECT_FLOAT_EQ(path[2].input_scale, 1.0f + 0.01f * 8);   // W[1][3]
  EXPECT_FLOAT_EQ(path[3].input_scale, 1.0f + 0.01f * 19);  // W[3][4]
  EXPECT_FLOAT_EQ(path[4].input_scale, 1.0f + 0.01f * 22);  // W[4][2]

  // A2 selected in repetition 2 (t = 7) before B1: A2 appears twice, the fixed end is appended.
  x[7] = 1;
  const auto path2 = g.decode(x);
  ASSERT_EQ(path2.size(), 6u);
  EXPECT_EQ(path2[3].layer, 2);
  EXPECT_EQ(path2[4].model, 1);
  EXPECT_EQ(path2[5].model, 0);
  EXPECT_FLOAT_EQ(path2[3].input_scale, 1.0f + 0.01f * 17);  // W[3][2]
  // Path ending on A2 already: no second A2.
  x[9] = -1;
  const auto path3 = g.decode(x);
  ASSERT_EQ(path3.size(), 4u);  // A0 A1 B0 A2
  EXPECT_EQ(path3[3].model, 0);
  EXPECT_EQ(path3[3].layer, 2);
}

TEST(DfsGenome, ModelPairScalingAndInitialPath) {
  DfsSpaceOptions o;
  o.layers_per_model = {3, 2};
  o.repeats = 3;
  o.scaling = DfsScaling::ModelPair;
  DfsGenome g(o);
  ASSERT_EQ(g.dimension(), 15u + 4u);
  // The initial genome is model A in order, every scale 1.
  const auto init = g.initial();
  const auto p0 = g.decode(init);
  ASSERT_EQ(p0.size(), 3u);
  for (int k = 0; k < 3; ++k) {
    EXPECT_EQ(p0[k].model, 0);
    EXPECT_EQ(p0[k].layer, k);
    EXPECT_EQ(p0[k].input_scale, 1.0f);
  }
  // Scale genes bounded and positive; indicators free.
  EXPECT_TRUE(std::isinf(g.lower()[0]));
  EXPECT_EQ(g.lower()[15], 0.1);
  EXPECT_EQ(g.upper()[18], 2.0);

  std::vector<double> x(19, -1.0);
  x[4] = 1;                                            // B1 (global 4) in repetition 1
  x[15] = 0.5, x[16] = 0.6, x[17] = 0.7, x[18] = 0.8;  // W[A][A], W[A][B], W[B][A], W[B][B]
  const auto p = g.decode(x);
  ASSERT_EQ(p.size(), 3u);  // A0, B1, A2
  EXPECT_EQ(p[1].model, 1);
  EXPECT_EQ(p[1].layer, 1);
  EXPECT_FLOAT_EQ(p[1].input_scale, 0.6f);
  EXPECT_FLOAT_EQ(p[2].input_scale, 0.7f);
}

TEST(DfsGenome, BadOptions) {
  DfsSpaceOptions o;
  EXPECT_THROW(DfsGenome{o}, Error);
  o.layers_per_model = {2, 0};
  EXPECT_THROW(DfsGenome{o}, Error);
  o.layers_per_model = {2, 2};
  o.scale_min = 0;
  EXPECT_THROW(DfsGenome{o}, Error);
  o.scale_min = 0.1;
  o.repeats = 0;
  EXPECT_THROW(DfsGenome{o}, Error);
  o.repeats = 2;
  DfsGenome g(o);
  EXPECT_THROW(g.decode(std::vector<double>(3, 0.0)), Error);
}

TEST(DfsGenome, PerHopScalesAndPlainStart) {
  DfsSpaceOptions o;
  o.layers_per_model = {3, 2};  // A: global 0..2, B: global 3..4; T = 10
  o.repeats = 2;
  o.scaling = DfsScaling::PerHop;
  o.init_on = 0.5, o.init_off = 0.0;  // the paper's zeros, A's first repetition positive
  DfsGenome g(o);
  EXPECT_EQ(g.scale_size(), 11);  // one per indicator entry + the fixed end hop
  ASSERT_EQ(g.dimension(), 21u);
  // The start is model A's plain path, every scale 1.
  const auto p0 = g.decode(g.initial());
  ASSERT_EQ(p0.size(), 3u);
  for (int k = 0; k < 3; ++k) {
    EXPECT_EQ(p0[k].model, 0);
    EXPECT_EQ(p0[k].layer, k);
  }
  EXPECT_EQ(p0[1].input_scale, 1.0f);

  std::vector<double> x(21, -1.0);
  for (int i = 0; i < 11; ++i) x[10 + i] = 0.5 + 0.1 * i;
  x[3] = 1;  // B0 in repetition 1 (entry 3)
  x[6] = 1;  // A1 in repetition 2 (entry 6)
  const auto p = g.decode(x);
  ASSERT_EQ(p.size(), 4u);  // A0, B0, A1, then the fixed end A2
  EXPECT_EQ(p[1].model, 1);
  EXPECT_FLOAT_EQ(p[0].input_scale, 1.0f);         // reads the embeddings
  EXPECT_FLOAT_EQ(p[1].input_scale, 0.5f + 0.3f);  // entry 3's scale
  EXPECT_FLOAT_EQ(p[2].input_scale, 0.5f + 0.6f);  // entry 6's scale
  EXPECT_FLOAT_EQ(p[3].input_scale, 0.5f + 1.0f);  // the end hop's own scale (entry T)
}

TEST(DfsGenome, StartMustBeModelAsPlainPath) {
  DfsSpaceOptions o;
  o.layers_per_model = {2, 2};
  o.init_on = 0.0;
  EXPECT_THROW(DfsGenome{o}, Error);
  o.init_on = 0.5, o.init_off = 0.1;  // would put B's layers on the starting path
  EXPECT_THROW(DfsGenome{o}, Error);
}

TEST(PsGenome, PerGeneStartsRangesAndPerModelUniformPoints) {
  PsSpaceOptions o = two_model_dare(4, 1);
  o.method = "task_arithmetic";
  o.weight_max = 2.0;
  o.genes["layers[0,4)/model1/weight"] = {1.5, 0.5, 1.8};
  PsGenome g(o);
  ASSERT_EQ(g.dimension(), 2u);
  EXPECT_EQ(g.initial(), (std::vector<double>{0.5, 1.5}));
  EXPECT_EQ(g.lower(), (std::vector<double>{0.0, 0.5}));
  EXPECT_EQ(g.upper(), (std::vector<double>{2.0, 1.8}));
  // lambda_A = 0.5, lambda_B = 1.5 is a point of the space; values are clamped into each range.
  const std::vector<double> w{0.5, 1.5};
  EXPECT_EQ(g.uniform_point(w, 0.5), w);
  const std::vector<double> w2{2.5, 0.1};
  EXPECT_EQ(g.uniform_point(w2, 0.5), (std::vector<double>{2.0, 0.5}));
  EXPECT_EQ(g.uniform_point(0.7, 0.5), (std::vector<double>{0.7, 0.7}));

  auto bad = o;
  bad.genes = {{"layers[0,4)/model2/weight", {1.0, {}, {}}}};
  EXPECT_NE(error_of([&] { PsGenome{bad}; }).find("ps.genes: 'layers[0,4)/model2/weight'"),
            std::string::npos);
  bad.genes = {{"layers[0,4)/model0/weight", {2.5, {}, {}}}};
  EXPECT_NE(error_of([&] { PsGenome{bad}; }).find("outside"), std::string::npos);
}
