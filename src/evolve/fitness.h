// The fitness CMA-ES climbs, from one scored report. Every task output type counts: accuracy-like
// tasks give their score in [0, 1]; perplexity-like tasks (perplexity, word/byte perplexity) give
// -ln(perplexity), the mean log-probability per unit (higher is better); bits_per_byte gives -bpb.
// The tasks are averaged with their weights, sum(w_t v_t) / sum(w_t).
//
// Accuracy on a few dozen items is quantised and often flat (every early candidate scores 0): the
// optional tie-breaker adds epsilon x the mean per-token log-probability of the gold answer, a
// dense signal that orders candidates with equal accuracy. The per-token mean is <= 0, so the
// tie-breaker never lifts a candidate: with epsilon * |mean log-prob| below 1/n (n scored items),
// it only breaks ties and never overturns an accuracy difference.
#pragma once

#include <span>

#include "eval/scorer.h"

namespace evomerge {

struct FitnessOptions {
  double gold_logprob_weight = 0;  // epsilon; 0: accuracy (the tasks' values) alone
};

// Mean over the scored items of gold_logprob / gold_tokens (items without one are skipped); NaN
// when no item has one.
double mean_gold_logprob_per_token(const eval::TaskScore& task);

// The task's value in the fitness (see the file comment); NaN when it has none (failed, no items).
double task_fitness_value(const eval::TaskScore& task);

// The weighted fitness of a report (weights[t] for rep.tasks[t]); NaN when a task failed or has no
// value (or no gold log-probability while the tie-breaker is on).
double fitness_of(const eval::ScoreReport& report, std::span<const double> weights,
                  const FitnessOptions& options);

}  // namespace evomerge
