// Evaluators that merge and score candidates in this process, in memory:
//  - PsEvaluator: each genome is decoded into a merge config, planned against memory-mapped source
//    models (opened once, ModelCache), merged into reused f32 buffers (no file written, no
//    allocation after the first candidate) and scored through the engine reading those buffers.
//  - DfsEvaluator: each genome is decoded into a layer path over the models (no weights copied) and
//    scored through the engine's routed forward pass.
// Fitness is evolve/fitness.h's weighted value of the tasks on the generation's item subset. With
// racing (one task only), a candidate stops being scored once it cannot reach the mu-th best score
// of its generation so far; its fitness is then its optimistic bound (correct + remaining) / total,
// which ranks it below the top mu, where CMA-ES's positive weights do not read it.
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <vector>

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

// Scores a loaded engine on `items`; `race_threshold` (if set, single-task scorers) is the fitness
// a candidate must still be able to reach.
Evaluation score_engine(const eval::Scorer& scorer, Engine& engine, const Tokenizer& tokenizer,
                        const std::vector<std::vector<size_t>>& items,
                        const ScoringOptions& options,
                        std::optional<double> race_threshold = std::nullopt);

class PsEvaluator : public Evaluator {
 public:
  PsEvaluator(PsGenome genome, const eval::Scorer& scorer, const Tokenizer& tokenizer,
              ScoringOptions options, MergeOptions merge_options = {},
              EngineOptions engine_options = {});
  std::vector<Evaluation> evaluate(const std::vector<std::vector<double>>& genomes,
                                   uint64_t item_seed) override;

  // Merges genome x into the buffers and returns the engine over them (final scoring, DFS model A).
  Engine& load(std::span<const double> x);
  const MergePlan& plan() const { return *plan_; }
  const MergedBuffers& buffers() const { return buffers_; }
  std::shared_ptr<const WeightSource> weights() const { return weights_; }
  const PsGenome& genome() const { return genome_; }
  double last_merge_seconds() const { return last_merge_seconds_; }

 private:
  PsGenome genome_;
  const eval::Scorer& scorer_;
  const Tokenizer& tokenizer_;
  ScoringOptions options_;
  EngineOptions engine_options_;
  ModelCache cache_;
  Merger merger_;
  MergedBuffers buffers_;
  std::optional<MergePlan> plan_;
  std::shared_ptr<WeightSource> weights_;
  std::unique_ptr<Engine> engine_;
  double last_merge_seconds_ = 0;
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
