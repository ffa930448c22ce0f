// The search loop of one phase (PS or DFS): CMA-ES ask -> evaluate a whole generation -> tell ->
// persist the generation (candidates + optimiser state, one transaction) -> report. Resumes from
// the run store's last complete generation; a resumed run with the same seed ends exactly where an
// uninterrupted one would (the optimiser state is restored bit for bit, and each generation's item
// subset is a pure function of the run seed and the generation number).
//
// Evaluation goes through the Evaluator interface: a run's phases use PhaseEvaluator
// (evolve/scoring.h), which scores in this process or hands the work to other processes (dist/).
#pragma once

#include <cmath>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "evolve/cmaes.h"
#include "store/run_store.h"

namespace evomerge {

// The outcome of evaluating one genome.
struct Evaluation {
  bool ok = true;
  std::string error;
  double fitness = 0;  // higher is better (the weighted task score)
  double total = NAN;  // the tasks' weighted total as `evomerge eval` reports it (no tie-breaker)
  double ci_low = NAN, ci_high = NAN;  // its 95% interval
  bool raced_out = false;  // racing stopped it: fitness is its optimistic bound (evolve/scoring.h)
  nlohmann::json task_scores = nlohmann::json::object();
  std::vector<double> objectives;  // per task its value in the fitness (evolve/fitness.h)
  nlohmann::json params = nlohmann::json::object();  // the decoded candidate, for the run store
  std::vector<ItemResults> items;
  double eval_seconds = 0, merge_seconds = 0;
};

class Evaluator {
 public:
  virtual ~Evaluator() = default;
  // Every genome of a generation, in order. `item_seed` selects the generation's item subset: all
  // candidates of one generation are scored on the same items (common random numbers).
  virtual std::vector<Evaluation> evaluate(const std::vector<std::vector<double>>& genomes,
                                           uint64_t item_seed) = 0;
};

struct PhaseSpec {
  std::string name;                  // "ps", "dfs": the run store's phase key
  std::vector<double> x0;            // feasible start
  std::vector<double> lower, upper;  // empty: unbounded (entries may be +-inf for free genes)
  double sigma0 = 1.0 / 6;           // the paper's (Optuna's) default for [0, 1] genes
  CmaesOptions cmaes;                // lambda, seed, separable, restarts, termination
  uint64_t items_seed = 0;           // seed of the item subsets
  bool fresh_items_each_generation = false;  // the paper's DFS minibatches; else one fixed subset
  // Return (unfinished) after this many generations in this call; 0: run to the end. For
  // time-boxed runs and the resume tests.
  int64_t stop_after_generations = 0;
};

struct GenerationReport {
  std::string phase;
  int64_t generation = 0;
  int restart = 0;
  int lambda = 0;
  double best = 0, median = 0;  // fitness (higher is better) of this generation
  double best_so_far = 0;
  double sigma = 0;
  double evals_per_second = 0;
  int failed = 0;
  StopReason local_stop = StopReason::None;  // a criterion that caused an IPOP restart
};

struct PhaseOutcome {
  bool finished = false;  // the optimiser stopped (false: stop_after_generations returned early)
  bool resumed = false;   // continued from a stored state
  StopReason stop = StopReason::None;
  int64_t generations = 0;
  int64_t evaluations = 0;
  std::vector<double> best_x;  // best evaluated genome (feasible)
  double best_fitness = 0;
  std::vector<double> mean_x;  // the final distribution mean (feasible): a less noisy pick
  nlohmann::json to_json() const;
  static PhaseOutcome from_json(const nlohmann::json& j);
};

// The item-subset seed of generation g (1-based) of a phase.
uint64_t generation_item_seed(const PhaseSpec& spec, int64_t generation);

// Runs (or resumes, or returns the stored outcome of) one phase.
PhaseOutcome run_phase(RunStore& store, Evaluator& evaluator, const PhaseSpec& spec,
                       const std::function<void(const GenerationReport&)>& on_generation = {});

}  // namespace evomerge
