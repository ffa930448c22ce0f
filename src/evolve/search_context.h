// What a process needs to score the candidates of an `evomerge evolve` run, built from the run
// config alone: the tasks and their scorers (optimisation and test split), the tokenizer, the PS
// and DFS search spaces, and the options every candidate engine is built with. The single process
// and every MPI rank build the same context from the same config, so a candidate is the same model
// wherever it is scored. Building it checks every input (tasks, splits, models, architectures)
// before any work: a bad input fails here, naming the file and the field.
#pragma once

#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "eval/candidate_engine.h"
#include "eval/scorer.h"
#include "evolve/evolve_config.h"
#include "evolve/genome.h"
#include "evolve/model_evaluator.h"
#include "tokenize/tokenizer.h"

namespace evomerge {

enum class SplitKind : uint8_t { Opt, Test };

struct SearchContext {
  EvolveConfig config;
  std::unique_ptr<const eval::Scorer> opt_scorer, test_scorer;
  std::unique_ptr<const Tokenizer> tokenizer;  // the PS base (or first) model's, else DFS model A's
  std::optional<PsGenome> ps_genome;           // when the config has a ps section
  std::optional<DfsGenome> dfs_genome;         // when it has a dfs section
  std::vector<std::string> parents;            // the final table's baselines (sorted, distinct)
  EngineOptions engine;                        // for every candidate engine (candidate_engine.h)
  MergeOptions merge;
  ScoringOptions scoring;
  // PS candidates a process keeps merged at once (each one merged copy of the model in ps.dtype):
  // racing scores every live candidate once per round, and a process holding fewer than its share
  // of them merges each again every round. Results do not depend on it.
  size_t cached_candidates = 1;
  // The items finalists and baselines are chosen on: the validation part of the opt split when
  // `validation_items` is set (scoring.search_pool is the rest), else empty (the whole opt split).
  std::vector<std::vector<size_t>> selection_items;
  std::string selection_name;  // "opt validation" or the opt split's name, for logs and the table

  const eval::Scorer& scorer(SplitKind split) const {
    return split == SplitKind::Opt ? *opt_scorer : *test_scorer;
  }
};

SearchContext build_search_context(const EvolveConfig& config);

// DFS's models: the configured folders, with "ps" replaced by the PS winner merged in memory (which
// `ps_winner` keeps alive). models[0] is model A; its config.json and folder (tokenizer and other
// files) go with an exported DFS model.
struct DfsModels {
  std::vector<std::shared_ptr<const WeightSource>> models;
  nlohmann::json config_json_a;
  std::filesystem::path aux_a;
  std::unique_ptr<MergedCandidate> ps_winner;
};
// `ps_winner_x` is the PS winner's genome; required when dfs.models names "ps".
DfsModels open_dfs_models(const SearchContext& context, const std::vector<double>& ps_winner_x);

}  // namespace evomerge
