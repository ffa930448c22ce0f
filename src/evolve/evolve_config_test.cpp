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
  // A key given twice (yaml-cpp alone keeps the first, PyYAML the last): both lines named.
  expect_error("tasks: [a.yaml]\nps: {models: [a]}\nseed: 1\nseed: 2\n",
               "key 'seed' appears twice in the same mapping (lines 3 and 4)");
  expect_error("tasks: [a.yaml]\nps: {models: [a]}\n---\ntasks: [b.yaml]\n", "YAML documents");
  expect_error("ps: {models: [a]}\n", "tasks");
  expect_error("tasks: [a.yaml]\nps: {models: [a], weight: [1, 0]}\n", "ps.weight");
  expect_error("tasks: [a.yaml]\ndfs: {models: [ps, b]}\n", "'ps' needs a ps: section");
  expect_error("tasks: [a.yaml]\ndfs: {models: [a, b], scale: [0, 1]}\n", "dfs.scale");
  expect_error("tasks: [a.yaml]\ndfs: {models: [a, b], scaling: diagonal}\n", "dfs.scaling");
  expect_error("tasks: [{file: a.yaml, weight: -1}]\nps: {models: [a]}\n", "tasks[0].weight");
  expect_error("tasks: [a.yaml]\nps: {models: [a]}\nseed: [1]\n", "seed");
  expect_error("tasks: [a.yaml\n", "run.yml");
  expect_error("tasks: [a.yaml, b.yaml]\nps: {models: [a], objective: best}\n", "ps.objective");
  expect_error("tasks: [a.yaml]\nps: {models: [a], objective: pareto}\n",
               "pareto needs at least two tasks");
}

// Fuzz findings (fuzz/evolve_fuzz.cpp): a list as a mapping key threw yaml-cpp's BadConversion,
// and a string that is not UTF-8 made to_json().dump() throw nlohmann's type_error, neither
// naming the file or the field.
TEST(EvolveConfig, KeysThatAreNotStringsAndTextThatIsNotUtf8AreNamed) {
  expect_error("tasks: [a.yaml]\nps: {models: [a]}\n? [x]\n: 1\n",
               "run.yml:3: (top level): has a key that is not a string");
  expect_error("tasks: [a.yaml]\nps: {models: [a], genes: {[w]: {init: 1}}}\n",
               "run.yml:2: ps.genes: has a key that is not a string");
  expect_error("tasks: [a.yaml]\nps: {models: [a, {x: 1}: 2]}\n",
               "ps.models[1]: expected a string");
  expect_error("tasks: [a\xff.yaml]\nps: {models: [a]}\n",
               "run.yml:1: tasks[0]: 'a\\xff.yaml' is not valid UTF-8");
  expect_error("tasks: [{file: a.yaml}]\nps: {models: [a, \"b\xc3\"]}\n",
               "ps.models[1]: 'b\\xc3' is not valid UTF-8");
  expect_error("tasks: [a.yaml]\nps: {models: [a]}\nopt_split: \xed\xa0\x80\n",  // a surrogate
               "opt_split: '\\xed\\xa0\\x80' is not valid UTF-8");
  expect_error("tasks: [a.yaml]\nps: {models: [a], genes: {\"w\xff\": {init: 1}}}\n",
               "ps.genes: key 'w\\xff' is not valid UTF-8");
  // Valid UTF-8 beyond ASCII is kept and dumps.
  const auto c =
      parse_evolve_config("tasks: [\"t\xc3\xa4.yaml\"]\nps: {models: [\xe6\x97\xa5]}\n", "run.yml");
  EXPECT_EQ(c.to_json()["ps"]["models"][0], "\xe6\x97\xa5");
  EXPECT_NO_THROW((void)c.to_json().dump());
}

TEST(EvolveConfig, FitnessBudgetsGenesDtypeAndPerModelGrid) {
  const auto c = parse_evolve_config(R"(
tasks: [a.yaml]
validation_items: 100
fitness: {gold_logprob_weight: 0.001}
ps:
  method: task_arithmetic
  base_model: m/base
  models: [m/a, m/b]
  weight: [0, 2]
  genes:
    "layers[0,8)/model1/weight": {init: 1.5, range: [0.5, 2]}
  dtype: bfloat16
  evaluations: 300
dfs:
  models: [ps, m/b]
  scaling: per_hop
  evaluations: 1000
  generations: 40
final: {uniform_grid: [0.5, [0.5, 1.5]]}
)",
                                     "run.yml");
  EXPECT_EQ(c.validation_items, 100u);
  EXPECT_EQ(c.gold_logprob_weight, 0.001);
  ASSERT_EQ(c.ps->genes.size(), 1u);
  const auto& g = c.ps->genes.at("layers[0,8)/model1/weight");
  EXPECT_EQ(g.init, 1.5);
  EXPECT_EQ(g.lower, 0.5);
  EXPECT_EQ(g.upper, 2.0);
  EXPECT_EQ(c.ps->dtype, DType::BF16);
  EXPECT_EQ(c.ps->evaluations, 300);
  EXPECT_EQ(c.ps->generations, 0);  // the budget alone ends the phase
  EXPECT_EQ(c.dfs->scaling, "per_hop");
  EXPECT_EQ(c.dfs->evaluations, 1000);
  EXPECT_EQ(c.dfs->generations, 40);  // both given: whichever ends first
  ASSERT_EQ(c.final.uniform_grid.size(), 2u);
  EXPECT_EQ(c.final.uniform_grid[0], std::vector<double>{0.5});
  EXPECT_EQ(c.final.uniform_grid[1], (std::vector<double>{0.5, 1.5}));
  const auto j = c.to_json();
  EXPECT_EQ(j["final"]["uniform_grid"], nlohmann::json::parse("[0.5, [0.5, 1.5]]"));
  EXPECT_EQ(j["ps"]["genes"]["layers[0,8)/model1/weight"]["range"], nlohmann::json({0.5, 2.0}));
  EXPECT_EQ(j["fitness"]["gold_logprob_weight"], 0.001);

  // Settings left at their defaults keep the canonical form (and so old runs' identity) unchanged.
  const auto plain = parse_evolve_config("tasks: [a.yaml]\nps: {models: [m/a]}\n", "run.yml");
  const auto pj = plain.to_json();
  EXPECT_FALSE(pj.contains("validation_items"));
  EXPECT_FALSE(pj.contains("fitness"));
  EXPECT_FALSE(pj.contains("micro_batch"));
  EXPECT_EQ(plain.micro_batch, 16u);
  const auto mb =
      parse_evolve_config("tasks: [a.yaml]\nmicro_batch: 4\nps: {models: [m/a]}\n", "run.yml");
  EXPECT_EQ(mb.micro_batch, 4u);
  EXPECT_EQ(mb.to_json()["micro_batch"], 4);
  expect_error("tasks: [a.yaml]\nmicro_batch: 0\nps: {models: [a]}\n", "micro_batch");
  EXPECT_FALSE(pj["ps"].contains("dtype"));
  EXPECT_FALSE(pj["ps"].contains("evaluations"));

  expect_error("tasks: [a.yaml]\nps: {models: [a, b]}\nfinal: {uniform_grid: [[1, 2, 3]]}\n",
               "final.uniform_grid[0]: 3 weights for 2 PS models");
  expect_error("tasks: [a.yaml]\nps: {models: [a], dtype: int8}\n", "ps.dtype");
  expect_error("tasks: [a.yaml]\nps: {models: [a], genes: {x: {start: 1}}}\n",
               "ps.genes.x.start: unknown key");
  expect_error("tasks: [a.yaml]\nfitness: {gold_logprob_weight: -1}\nps: {models: [a]}\n",
               "fitness.gold_logprob_weight");
  expect_error("tasks: [a.yaml]\ndfs: {models: [a, b], init_off: 0.2}\n", "dfs.init_off");
}

TEST(EvolveConfig, DeviceIsCheckedAndOnlyANonCpuOneIsPartOfTheIdentity) {
  const std::string base = "tasks: [a.yaml]\nps: {models: [a]}\n";
  const auto cpu = parse_evolve_config(base, "run.yml");
  EXPECT_EQ(cpu.device, "cpu");
  EXPECT_FALSE(cpu.to_json().contains("device"));  // runs made before the key keep their hash
  const auto gpu = parse_evolve_config(base + "device: cuda\n", "run.yml");
  EXPECT_EQ(gpu.device, "cuda:0");
  EXPECT_EQ(gpu.to_json()["device"], "cuda:0");
  EXPECT_EQ(parse_evolve_config(base + "device: cuda:3\n", "run.yml").device, "cuda:3");
  expect_error(base + "device: gpu\n", "run.yml:3: device: must be cpu, cuda or cuda:N");
  expect_error(base + "device: cuda:x\n", "device: must be cpu, cuda or cuda:N");
}

TEST(EvolveConfig, PrecisionIsCheckedAndOnlyBf16IsPartOfTheIdentity) {
  const std::string base = "tasks: [a.yaml]\nps: {models: [a]}\n";
  const auto exact = parse_evolve_config(base, "run.yml");
  EXPECT_EQ(exact.precision, Precision::Exact);
  EXPECT_FALSE(exact.to_json().contains("precision"));  // runs made before the key keep their hash
  EXPECT_EQ(parse_evolve_config(base + "precision: exact\n", "run.yml").to_json(), exact.to_json());
  const auto bf16 = parse_evolve_config(base + "precision: bf16\n", "run.yml");
  EXPECT_EQ(bf16.precision, Precision::Bf16);
  EXPECT_EQ(bf16.to_json()["precision"], "bf16");
  expect_error(base + "precision: fp8\n", "run.yml:3: precision: must be exact or bf16");
}
