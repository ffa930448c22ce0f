#include "evolve/evolve_config.h"

#include <gtest/gtest.h>

#include "common/error.h"

using namespace evomerge;

namespace {
void expect_error(const std::string& yaml, const std::string& needle) {
  try {
    parse_evolve_config(yaml, "run.yml");
    FAIL() << "no error; wanted: " << needle;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}
}  // namespace

TEST(EvolveConfig, ParsesEverySectionWithDefaults) {
  const auto c = parse_evolve_config(R"(
seed: 9
tasks:
  - {file: a.yaml, weight: 2}
  - b.yaml
items_per_generation: 32
ps:
  base_model: m/base
  models: [m/a, m/b]
  layer_groups: 2
  filters: [self_attn]
  generations: 5
dfs:
  models: [ps, m/b]
  scaling: full
  generations: 3
final: {top: 2, uniform_grid: [0.5]}
)",
                                     "run.yml");
  EXPECT_EQ(c.seed, 9u);
  ASSERT_EQ(c.tasks.size(), 2u);
  EXPECT_EQ(c.tasks[0].weight, 2.0);
  EXPECT_EQ(c.tasks[1].file, "b.yaml");
  EXPECT_EQ(c.items_per_generation, 32u);
  ASSERT_TRUE(c.ps.has_value());
  EXPECT_EQ(c.ps->method, "dare_ties");
  EXPECT_EQ(c.ps->layer_groups, 2);
  EXPECT_DOUBLE_EQ(c.ps->sigma0, 1.0 / 6);
  EXPECT_EQ(c.ps->init, 0.5);
  ASSERT_TRUE(c.dfs.has_value());
  EXPECT_EQ(c.dfs->models[0], "ps");
  EXPECT_EQ(c.dfs->scaling, "full");
  EXPECT_EQ(c.final.top, 2);
  const auto j = c.to_json();
  EXPECT_EQ(j["ps"]["models"][1], "m/b");
  EXPECT_EQ(j["final"]["uniform_grid"], nlohmann::json({0.5}));
  EXPECT_FALSE(j.contains("threads"));  // does not change results, not part of the identity
}

TEST(EvolveConfig, BadInputNamesLineAndKey) {
  expect_error("tasks: [a.yaml]\nps: {models: [a], bogus: 1}\n",
               "run.yml:2: ps.bogus: unknown key");
  expect_error("tasks: [a.yaml]\nps: {models: [a], layer_groups: 0}\n", "ps.layer_groups");
  expect_error("tasks: [a.yaml]\n", "at least one of the sections");
  expect_error("ps: {models: [a]}\n", "tasks");
  expect_error("tasks: [a.yaml]\nps: {models: [a], weight: [1, 0]}\n", "ps.weight");
  expect_error("tasks: [a.yaml]\ndfs: {models: [ps, b]}\n", "'ps' needs a ps: section");
  expect_error("tasks: [a.yaml]\ndfs: {models: [a, b], scale: [0, 1]}\n", "dfs.scale");
  expect_error("tasks: [a.yaml]\ndfs: {models: [a, b], scaling: diagonal}\n", "dfs.scaling");
  expect_error("tasks: [{file: a.yaml, weight: -1}]\nps: {models: [a]}\n", "tasks[0].weight");
  expect_error("tasks: [a.yaml]\nps: {models: [a]}\nseed: [1]\n", "seed");
  expect_error("tasks: [a.yaml\n", "run.yml");
}
