// The `evomerge evolve` config file (YAML). Every key is checked: unknown keys, wrong types and
// out-of-range values are errors naming the file, line and key, before any work starts.
//
//   seed: 1
//   tasks:                                  # fitness: weighted mean of the tasks' primary scores
//     - {file: examples/tasks/arith.yaml, weight: 1}
//   opt_split: opt                          # the split searched on
//   test_split: test                        # the held-out split of the final table
//   items_per_generation: 64                # items per task per generation (0: the whole split)
//   fresh_items: false                      # a new item subset every generation (the paper's DFS)
//   racing: false                           # stop scoring a candidate that cannot enter the top mu
//   validation_items: 0                     # per task: opt items never searched on; finalists
//                                           #   are re-scored there and the winner picked there
//   fitness:
//     gold_logprob_weight: 0                # epsilon: + epsilon x mean per-token gold log-prob
//   threads: 0
//   micro_batch: 16                         # items per engine call (and per racing round)
//   cached_candidates: 1                    # PS candidates a process keeps merged (racing)
//   device: cpu                             # cpu | cuda | cuda:N (where candidates are scored)
//   precision: exact                        # exact | bf16: the engine's weight products
//                                           #   (infer/precision.h); part of the run's identity
//   ps:                                     # parameter-space search (optional)
//     method: dare_ties                     # dare_ties | ties | task_arithmetic | linear | slerp
//     base_model: examples/models/base
//     models: [examples/models/math, examples/models/ja]
//     layer_groups: 1                       # 1 .. num_layers
//     filters: []                           # e.g. [self_attn, mlp]
//     separate_embed_head: false
//     normalize: false                      # absent: the method's default
//     weight: [0, 1]                        # gene ranges
//     density: [0, 1]
//     t: [0, 1]
//     init: 0.5                             # every gene's start (the paper's)
//     genes:                                # optional per-gene start / range, by gene name
//       "layers[0,4)/model1/weight": {init: 1.5, range: [0.5, 2]}
//     dtype: float32                        # candidates merged and scored in it; the recipe's
//                                           #   out_dtype (float32 | bfloat16 | float16)
//     evaluations: 0                        # budget in candidate evaluations (0: none)
//     sigma0: 0.1667                        # the paper's 1/6
//     population: 0                         # 0: 4 + floor(3 ln n)
//     generations: 20
//     restarts: 0                           # IPOP
//     separable: false
//     objective: weighted                   # weighted | pareto (one objective per task)
//   dfs:                                    # data-flow-space search (optional; after ps when both)
//     models: [ps, examples/models/ja]      # model A first; "ps" is the PS winner
//     repeats: 3
//     scaling: model_pair                   # full | model_pair | per_hop
//     evaluations: 0                        # budget in candidate evaluations (0: none)
//     scale: [0.1, 2.0]
//     init_on: 0.5                          # model A's layers in repetition 1
//     init_off: -0.5                        # every other indicator
//     sigma0: 0.5
//     population: 0
//     generations: 20
//     separable: true
//     restarts: 0
//   final:
//     top: 3                                # best candidates re-scored on the test split
//     uniform_grid: [0.3, 0.5, [0.5, 1.5]]  # uniform-merge baselines: one weight for every
//                                           #   model, or a list of one weight per model
//     export_models: true                   # write the best PS / DFS models into the run folder
#pragma once

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "evolve/genome.h"
#include "infer/precision.h"
#include "tensor/tensor.h"

namespace evomerge {

struct EvolveTask {
  std::filesystem::path file;
  double weight = 1.0;
};

struct PsPhaseConfig {
  std::string method = "dare_ties";
  std::string base_model;
  std::vector<std::string> models;
  int layer_groups = 1;
  std::vector<std::string> filters;
  bool separate_embed_head = false;
  std::optional<bool> normalize;
  double weight_min = 0, weight_max = 1, density_min = 0, density_max = 1, t_min = 0, t_max = 1;
  double init = 0.5;
  std::map<std::string, GeneOverride> genes;  // by gene name (evolve/genome.h)
  DType dtype = DType::F32;                   // merge, score and export dtype
  double sigma0 = 1.0 / 6;
  int population = 0;
  int generations = 20;
  int64_t evaluations = 0;  // budget in candidate evaluations; 0: generations alone
  int restarts = 0;
  bool separable = false;
  // weighted: the tasks' weighted mean; pareto: one objective per task, a random scalarisation
  // per generation, the non-dominated set kept (evolve/pareto.h)
  std::string objective = "weighted";
};

struct DfsPhaseConfig {
  std::vector<std::string> models;  // "ps" = the PS winner
  int repeats = 3;
  std::string scaling = "model_pair";
  double scale_min = 0.1, scale_max = 2.0;
  double init_on = 0.5, init_off = -0.5;
  double sigma0 = 0.5;
  int population = 0;
  int generations = 20;
  int64_t evaluations = 0;  // budget in candidate evaluations; 0: generations alone
  bool separable = true;
  int restarts = 0;
};

struct FinalConfig {
  int top = 3;
  // Each point: one weight (every model) or one weight per PS model.
  std::vector<std::vector<double>> uniform_grid{{0.3}, {0.5}, {0.7}};
  bool export_models = true;
};

struct EvolveConfig {
  uint64_t seed = 1;
  std::vector<EvolveTask> tasks;  // paths resolved against the config file's folder
  std::string opt_split = "opt";
  std::string test_split = "test";
  size_t items_per_generation = 0;
  bool fresh_items = false;
  bool racing = false;
  size_t validation_items = 0;     // per task, held out of the search (the paper kept 200)
  double gold_logprob_weight = 0;  // fitness tie-breaker epsilon (evolve/fitness.h)
  int threads = 0;
  size_t micro_batch = 16;                 // ScoringOptions::micro_batch
  size_t cached_candidates = 1;            // SearchContext::cached_candidates
  std::string device = "cpu";              // EngineOptions::device, canonical ("cpu", "cuda:N")
  Precision precision = Precision::Exact;  // EngineOptions::precision
  std::optional<PsPhaseConfig> ps;
  std::optional<DfsPhaseConfig> dfs;
  FinalConfig final;
  std::string where = "<config>";

  // The canonical form (every default spelled out): what the run store hashes.
  nlohmann::json to_json() const;
};

EvolveConfig parse_evolve_config(std::string_view yaml_text, std::string_view where,
                                 const std::filesystem::path& base_dir = {});
EvolveConfig load_evolve_config(const std::filesystem::path& path);

}  // namespace evomerge
