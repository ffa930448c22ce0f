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

// The mu-th best fitness among the finished candidates of this generation (nullopt until mu exist).
std::optional<double> mu_th_best(std::vector<double> done, size_t mu) {
  if (mu == 0 || done.size() < mu) return std::nullopt;
  std::nth_element(done.begin(), done.begin() + static_cast<std::ptrdiff_t>(mu - 1), done.end(),
                   std::greater<>());
  return done[mu - 1];
}

template <typename LoadFn>
std::vector<Evaluation> evaluate_all(const eval::Scorer& scorer, const Tokenizer& tokenizer,
                                     const ScoringOptions& options,
                                     const std::vector<std::vector<double>>& genomes,
                                     uint64_t item_seed, LoadFn&& load) {
  const auto items = select_items(scorer, options.items_per_task, item_seed);
  std::vector<Evaluation> out;
  std::vector<double> finished;
  const size_t mu = genomes.size() / 2;
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
    std::optional<double> threshold;
    if (options.racing && scorer.num_tasks() == 1) threshold = mu_th_best(finished, mu);
    e = score_engine(scorer, *engine, tokenizer, items, options, threshold);
    e.params = std::move(params);
    e.merge_seconds = merge_s;
    if (e.ok) finished.push_back(e.fitness);
    out.push_back(std::move(e));
  }
  return out;
}
}  // namespace

std::vector<std::vector<size_t>> select_items(const eval::Scorer& scorer, size_t items_per_task,
                                              uint64_t seed) {
  std::vector<std::vector<size_t>> items(scorer.num_tasks());
  for (size_t t = 0; t < scorer.num_tasks(); ++t) {
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
                        const ScoringOptions& options, std::optional<double> race_threshold) {
  Evaluation e;
  eval::Candidate cand{&engine, &tokenizer, {}, {}};
  eval::ScoreOptions so;
  so.micro_batch = options.micro_batch;
  so.keep_text = false;
  so.progress = false;
  double optimistic = NAN;
  if (race_threshold) {
    const double thr = *race_threshold;
    so.race = [thr,
               &optimistic](const eval::RaceUpdate& u) {  // thr by value: it dies with this block
      const double bound =
          (u.correct + static_cast<double>(u.total - u.done)) / static_cast<double>(u.total);
      optimistic = bound;
      return bound >= thr;
    };
  }
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
  bool raced_out = false;
  for (size_t t = 0; t < rep.tasks.size(); ++t) {
    const auto& ts = rep.tasks[t];
    e.task_scores[ts.task] =
        std::isfinite(ts.score) ? nlohmann::json(ts.score) : nlohmann::json(nullptr);
    raced_out |= ts.stopped_early;
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
    return e;
  }
  e.fitness = raced_out ? optimistic : rep.total;
  if (raced_out) e.task_scores["_raced_out"] = true;
  return e;
}

// ---------------------------------------------------------------------------------------------

PsEvaluator::PsEvaluator(PsGenome genome, const eval::Scorer& scorer, const Tokenizer& tokenizer,
                         ScoringOptions options, MergeOptions merge_options,
                         EngineOptions engine_options)
    : genome_(std::move(genome)),
      scorer_(scorer),
      tokenizer_(tokenizer),
      options_(options),
      engine_options_(engine_options),
      merger_([&] {
        merge_options.progress = false;
        return merge_options;
      }()) {}

Engine& PsEvaluator::load(std::span<const double> x) {
  const auto t0 = std::chrono::steady_clock::now();
  plan_ = build_plan(genome_.decode(x), cache_, merger_.options());
  const bool reallocated = buffers_.prepare(*plan_);
  merger_.merge_into(*plan_, buffers_);
  if (reallocated || !engine_) {
    // New buffers (first candidate, or a plan with different tensors): new views, new engine.
    engine_.reset();
    weights_ = make_memory_weights(buffers_.config(), buffers_.views());
    engine_ = std::make_unique<Engine>(weights_, engine_options_);
  } else {
    engine_->weights_changed();
  }
  last_merge_seconds_ = seconds_since(t0);
  return *engine_;
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
  engine_ = std::make_unique<Engine>(models_, genome_.decode(genome_.initial()), engine_options);
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
