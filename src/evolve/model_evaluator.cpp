#include "evolve/model_evaluator.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "common/error.h"

namespace evomerge {

namespace {
double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

template <typename LoadFn>
std::vector<Evaluation> evaluate_all(const eval::Scorer& scorer, const Tokenizer& tokenizer,
                                     const ScoringOptions& options,
                                     const std::vector<std::vector<double>>& genomes,
                                     uint64_t item_seed, LoadFn&& load) {
  const auto items = select_items(scorer, options.items_per_task, item_seed, options.search_pool);
  std::vector<Evaluation> out;
  for (const auto& x : genomes) {
    Evaluation e;
    Engine* engine = nullptr;
    nlohmann::json params;
    double merge_s = 0;
    try {
      const auto t0 = std::chrono::steady_clock::now();
      engine = &load(x, params);
      merge_s = seconds_since(t0);
    } catch (const Error& err) {
      e.ok = false;
      e.error = err.what();
      e.params = params;
      out.push_back(std::move(e));
      continue;
    }
    e = score_engine(scorer, *engine, tokenizer, items, options);
    e.params = std::move(params);
    e.merge_seconds = merge_s;
    out.push_back(std::move(e));
  }
  return out;
}
}  // namespace

bool can_race(const eval::Scorer& scorer, const ScoringOptions& options) {
  // Racing bounds the accuracy still reachable; it means nothing for a perplexity.
  return options.racing && scorer.num_tasks() == 1 && !scorer.task(0).spec().metrics.empty() &&
         higher_is_better(scorer.task(0).spec().metrics[0].kind);
}

std::vector<double> scorer_weights(const eval::Scorer& scorer) {
  std::vector<double> w;
  for (size_t t = 0; t < scorer.num_tasks(); ++t) w.push_back(scorer.weight(t));
  return w;
}

ItemPools split_opt_items(const eval::Scorer& scorer, size_t validation_per_task, uint64_t seed) {
  ItemPools pools;
  pools.search.resize(scorer.num_tasks());
  pools.validation.resize(scorer.num_tasks());
  for (size_t t = 0; t < scorer.num_tasks(); ++t) {
    const size_t n = scorer.split_size(t);
    if (validation_per_task == 0 || validation_per_task >= n) {
      pools.search[t] = scorer.all_items(t);
      continue;
    }
    pools.validation[t] = scorer.sample_items(t, validation_per_task, seed + t);
    std::vector<bool> kept(n, false);
    for (size_t i : pools.validation[t]) kept[i] = true;
    for (size_t i = 0; i < n; ++i)
      if (!kept[i]) pools.search[t].push_back(i);
  }
  return pools;
}

std::vector<std::vector<size_t>> select_items(const eval::Scorer& scorer, size_t items_per_task,
                                              uint64_t seed,
                                              const std::vector<std::vector<size_t>>& pool) {
  std::vector<std::vector<size_t>> items(scorer.num_tasks());
  for (size_t t = 0; t < scorer.num_tasks(); ++t) {
    if (t < pool.size() && !pool[t].empty()) {
      // Positions in the pool, drawn as Scorer::sample_items draws items of a split.
      const auto& p = pool[t];
      for (size_t k : eval::sample_indices(p.size(), items_per_task ? items_per_task : p.size(),
                                           (seed + t) ^ (0x9E3779B97F4A7C15ULL * (t + 1))))
        items[t].push_back(p[k]);
      continue;
    }
    const size_t n = scorer.split_size(t);
    if (items_per_task == 0 || items_per_task >= n)
      items[t] = scorer.all_items(t);
    else
      items[t] = scorer.sample_items(t, items_per_task, seed + t);
  }
  return items;
}

Evaluation score_engine(const eval::Scorer& scorer, Engine& engine, const Tokenizer& tokenizer,
                        const std::vector<std::vector<size_t>>& items,
                        const ScoringOptions& options) {
  Evaluation e;
  eval::Candidate cand{&engine, &tokenizer, {}, {}};
  eval::ScoreOptions so;
  so.micro_batch = options.micro_batch;
  so.keep_text = false;
  so.progress = false;
  so.gold_logprob = options.fitness.gold_logprob_weight != 0;
  const auto t0 = std::chrono::steady_clock::now();
  eval::ScoreReport rep;
  try {
    rep = scorer.score(cand, items, so);
  } catch (const Error& err) {
    e.ok = false;
    e.error = err.what();
    e.eval_seconds = seconds_since(t0);
    return e;
  }
  e.eval_seconds = seconds_since(t0);
  fill_evaluation(rep, scorer_weights(scorer), options, e);
  return e;
}

void fill_evaluation(const eval::ScoreReport& rep, const std::vector<double>& weights,
                     const ScoringOptions& options, Evaluation& e) {
  for (const auto& ts : rep.tasks) {
    e.task_scores[ts.task] =
        std::isfinite(ts.score) ? nlohmann::json(ts.score) : nlohmann::json(nullptr);
    if (options.keep_items) {
      ItemResults ir;
      ir.task = ts.task;
      ir.split = ts.split;
      for (const auto& it : ts.items) {
        ir.items.push_back(static_cast<int32_t>(it.index));
        ir.scores.push_back(static_cast<float>(it.score));
      }
      e.items.push_back(std::move(ir));
    }
  }
  if (rep.failed) {
    e.ok = false;
    e.error = "a task failed to score";
    for (const auto& ts : rep.tasks)
      if (ts.failed) e.error = ts.task + ": " + ts.error;
    return;
  }
  e.fitness = fitness_of(rep, weights, options.fitness);
  e.objectives = task_objectives(rep, options.fitness);
  e.total = rep.total;
  e.ci_low = rep.total_ci.lo;
  e.ci_high = rep.total_ci.hi;
}

// ---------------------------------------------------------------------------------------------

PsEvaluator::PsEvaluator(PsGenome genome, const eval::Scorer& scorer, const Tokenizer& tokenizer,
                         ScoringOptions options, MergeOptions merge_options,
                         EngineOptions engine_options)
    : genome_(std::move(genome)),
      scorer_(scorer),
      tokenizer_(tokenizer),
      options_(options),
      merged_(merge_options, engine_options, tokenizer) {}

Engine& PsEvaluator::load(std::span<const double> x) {
  return merged_.load(genome_.decode(x));
}

std::vector<Evaluation> PsEvaluator::evaluate(const std::vector<std::vector<double>>& genomes,
                                              uint64_t item_seed) {
  return evaluate_all(scorer_, tokenizer_, options_, genomes, item_seed,
                      [&](const std::vector<double>& x, nlohmann::json& params) -> Engine& {
                        params = genome_.describe(x);
                        return load(x);
                      });
}

DfsEvaluator::DfsEvaluator(DfsGenome genome,
                           std::vector<std::shared_ptr<const WeightSource>> models,
                           const eval::Scorer& scorer, const Tokenizer& tokenizer,
                           ScoringOptions options, EngineOptions engine_options)
    : genome_(std::move(genome)),
      models_(std::move(models)),
      scorer_(scorer),
      tokenizer_(tokenizer),
      options_(options) {
  if (models_.size() != genome_.options().layers_per_model.size())
    fail("evolve", "dfs: {} models but the genome was built for {}", models_.size(),
         genome_.options().layers_per_model.size());
  for (size_t m = 0; m < models_.size(); ++m)
    if (models_[m]->config().num_hidden_layers != genome_.options().layers_per_model[m])
      fail("evolve", "dfs.models[{}]: has {} layers, the genome expects {}", m,
           models_[m]->config().num_hidden_layers, genome_.options().layers_per_model[m]);
  engine_ =
      make_path_engine(models_, genome_.decode(genome_.initial()), tokenizer_, engine_options);
}

Engine& DfsEvaluator::load(std::span<const double> x) {
  engine_->set_path(genome_.decode(x));
  return *engine_;
}

std::vector<Evaluation> DfsEvaluator::evaluate(const std::vector<std::vector<double>>& genomes,
                                               uint64_t item_seed) {
  return evaluate_all(scorer_, tokenizer_, options_, genomes, item_seed,
                      [&](const std::vector<double>& x, nlohmann::json& params) -> Engine& {
                        params = genome_.describe(x);
                        return load(x);
                      });
}

}  // namespace evomerge
