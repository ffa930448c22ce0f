// The fitness CMA-ES climbs, from one scored report. Every task output type counts: accuracy-like
// tasks give their score in [0, 1]; perplexity-like tasks (perplexity, word/byte perplexity) give
// -ln(perplexity), the mean log-probability per unit (higher is better); bits_per_byte gives -bpb.
// The tasks are averaged with their weights, sum(w_t v_t) / sum(w_t).
//
// Accuracy on a few dozen items is quantised and often flat (every early candidate scores 0): the
// optional tie-breaker adds epsilon x the mean per-token log-probability of the gold answer, a
// dense signal that orders candidates with equal accuracy. Each item's per-token log-probability is
// clamped at kGoldLogprobFloor (a probability of ~2e-9 per token: beyond it an answer is simply
// wrong), so the tie-breaker lies in [epsilon x floor, 0]: it never lifts a candidate, with
// epsilon < 1 / (n x |floor|) (n scored items) it only breaks ties and never overturns an
// accuracy difference, and racing (evolve/race.h) can bound a candidate's fitness from below.
#pragma once

#include <span>
#include <vector>

#include "eval/scorer.h"

namespace evomerge {

// Per-token gold log-probabilities below this count as this (nats per token).
inline constexpr double kGoldLogprobFloor = -20.0;

struct FitnessOptions {
  double gold_logprob_weight = 0;  // epsilon; 0: accuracy (the tasks' values) alone
};

// One item's gold_logprob / gold_tokens clamped at kGoldLogprobFloor; NaN when it has none.
double gold_logprob_per_token(const eval::ItemResult& item);

// Mean of gold_logprob_per_token over the scored items (items without one are skipped); NaN
// when no item has one.
double mean_gold_logprob_per_token(const eval::TaskScore& task);

// The task's value in the fitness (see the file comment); NaN when it has none (failed, no items).
double task_fitness_value(const eval::TaskScore& task);

// Per task (in report order) its value in the fitness, tie-breaker included: the objectives of a
// Pareto search (evolve/pareto.h). NaN entries as in fitness_of.
std::vector<double> task_objectives(const eval::ScoreReport& report, const FitnessOptions& options);

// The weighted fitness of a report (weights[t] for rep.tasks[t]); NaN when a task failed or has no
// value (or no gold log-probability while the tie-breaker is on).
double fitness_of(const eval::ScoreReport& report, std::span<const double> weights,
                  const FitnessOptions& options);

}  // namespace evomerge
