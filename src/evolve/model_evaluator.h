// Evaluators that merge and score candidates in this process, in memory:
//  - PsEvaluator: each genome is decoded into a merge config and merged in memory
//    (MergedCandidate, eval/candidate_engine.h: buffers in the merge's output dtype, reused from
//    one candidate to the next, no file written) and scored through the engine reading those
//    buffers.
//  - DfsEvaluator: each genome is decoded into a layer path over the models (no weights copied) and
//    scored through the engine's routed forward pass.
// Fitness is evolve/fitness.h's weighted value of the tasks on the generation's item subset.
// evaluate() scores the candidates one after the other with no racing; a run's phases score
// through evolve/scoring.h (item batches, racing in rounds, several processes), which loads
// candidates with load().
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "eval/candidate_engine.h"
#include "eval/scorer.h"
#include "evolve/fitness.h"
#include "evolve/genome.h"
#include "evolve/search.h"
#include "infer/engine.h"
#include "merge/merge.h"
#include "tokenize/tokenizer.h"

namespace evomerge {

struct ScoringOptions {
  size_t items_per_task = 0;  // items of the optimisation split per generation; 0: all
  bool racing = false;        // single accuracy-primary task only (else ignored)
  size_t micro_batch = 16;
  bool keep_items = true;  // per-item results into the run store
  FitnessOptions fitness;  // evolve/fitness.h: the value of a scored report, tie-breaker
  // Per task, the items a search generation may draw from (empty: the whole split). The rest of
  // the split is kept for re-scoring the finalists (split_opt_items).
  std::vector<std::vector<size_t>> search_pool;
  // Items per unit of work (evolve/work.h), rounded down to whole micro-batches; results do not
  // depend on it, only how finely a candidate's scoring can be spread.
  size_t job_items = 64;
};

// The optimisation split divided once per run: `validation_per_task` items of each task (drawn
// with `seed`, so both parts mix every kind of item even in a sorted file) are never searched on
// and re-score the finalists; the rest is the search pool. 0 (or a split too small to keep at
// least one search item): everything is searched on, nothing is kept.
struct ItemPools {
  std::vector<std::vector<size_t>> search, validation;
};
ItemPools split_opt_items(const eval::Scorer& scorer, size_t validation_per_task, uint64_t seed);

// The items of each task for one generation (same for every candidate of the generation), drawn
// from `pool` (per task; empty: the whole split).
std::vector<std::vector<size_t>> select_items(const eval::Scorer& scorer, size_t items_per_task,
                                              uint64_t seed,
                                              const std::vector<std::vector<size_t>>& pool = {});

// Fills `e` from a scored report: per-task scores, per-item results (options.keep_items), and,
// unless a task failed (then e.ok = false with the first task's error), fitness, total and its
// interval. The one conversion from a report to an Evaluation (search, finalists, final table).
void fill_evaluation(const eval::ScoreReport& rep, const std::vector<double>& weights,
                     const ScoringOptions& options, Evaluation& e);

// Whether racing applies: asked for, and a single task whose primary metric is an accuracy.
bool can_race(const eval::Scorer& scorer, const ScoringOptions& options);

// The scorer's task weights, in task order (for fitness_of).
std::vector<double> scorer_weights(const eval::Scorer& scorer);

// Scores a loaded engine on `items`.
Evaluation score_engine(const eval::Scorer& scorer, Engine& engine, const Tokenizer& tokenizer,
                        const std::vector<std::vector<size_t>>& items,
                        const ScoringOptions& options);

class PsEvaluator : public Evaluator {
 public:
  PsEvaluator(PsGenome genome, const eval::Scorer& scorer, const Tokenizer& tokenizer,
              ScoringOptions options, MergeOptions merge_options = {},
              EngineOptions engine_options = {});
  std::vector<Evaluation> evaluate(const std::vector<std::vector<double>>& genomes,
                                   uint64_t item_seed) override;

  // Merges genome x into the buffers and returns the engine over them (final scoring, DFS model A).
  Engine& load(std::span<const double> x);
  const MergePlan& plan() const { return merged_.plan(); }
  const MergedBuffers& buffers() const { return merged_.buffers(); }
  std::shared_ptr<const WeightSource> weights() const { return merged_.weights(); }
  const PsGenome& genome() const { return genome_; }
  double last_merge_seconds() const { return merged_.last_merge_seconds(); }

 private:
  PsGenome genome_;
  const eval::Scorer& scorer_;
  const Tokenizer& tokenizer_;
  ScoringOptions options_;
  MergedCandidate merged_;
};

class DfsEvaluator : public Evaluator {
 public:
  // models[0] is model A (its embeddings, final norm and head are used).
  DfsEvaluator(DfsGenome genome, std::vector<std::shared_ptr<const WeightSource>> models,
               const eval::Scorer& scorer, const Tokenizer& tokenizer, ScoringOptions options,
               EngineOptions engine_options = {});
  std::vector<Evaluation> evaluate(const std::vector<std::vector<double>>& genomes,
                                   uint64_t item_seed) override;
  Engine& load(std::span<const double> x);
  const DfsGenome& genome() const { return genome_; }
  const std::vector<std::shared_ptr<const WeightSource>>& models() const { return models_; }

 private:
  DfsGenome genome_;
  std::vector<std::shared_ptr<const WeightSource>> models_;
  const eval::Scorer& scorer_;
  const Tokenizer& tokenizer_;
  ScoringOptions options_;
  std::unique_ptr<Engine> engine_;
};

}  // namespace evomerge
