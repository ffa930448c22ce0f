#include "evolve/fitness.h"

#include <algorithm>
#include <cmath>

#include "common/error.h"

namespace evomerge {

double gold_logprob_per_token(const eval::ItemResult& item) {
  // -inf (a gold token the model rules out) is the floor too; NaN means not computed.
  if (std::isnan(item.gold_logprob) || item.gold_tokens <= 0) return NAN;
  return std::max(kGoldLogprobFloor, item.gold_logprob / static_cast<double>(item.gold_tokens));
}

double mean_gold_logprob_per_token(const eval::TaskScore& task) {
  double sum = 0;
  size_t n = 0;
  for (const auto& it : task.items) {
    const double lp = gold_logprob_per_token(it);
    if (std::isnan(lp)) continue;
    sum += lp;
    ++n;
  }
  return n ? sum / static_cast<double>(n) : NAN;
}

double task_fitness_value(const eval::TaskScore& task) {
  if (task.failed || !std::isfinite(task.score)) return NAN;
  if (task.higher_is_better) return task.score;
  if (task.metric == "bits_per_byte") return -task.score;
  return task.score > 0 ? -std::log(task.score) : NAN;  // perplexities: the mean log-prob per unit
}

std::vector<double> task_objectives(const eval::ScoreReport& report,
                                    const FitnessOptions& options) {
  std::vector<double> out;
  for (const auto& t : report.tasks) {
    double v = task_fitness_value(t);
    if (options.gold_logprob_weight != 0)
      v += options.gold_logprob_weight * mean_gold_logprob_per_token(t);
    out.push_back(v);
  }
  return out;
}

double fitness_of(const eval::ScoreReport& report, std::span<const double> weights,
                  const FitnessOptions& options) {
  EM_ASSERT(weights.size() == report.tasks.size());
  // The same order of operations as eval::weighted_total, so that accuracy-only fitness is
  // bit-identical to the report's total.
  double w = 0, s = 0;
  for (size_t t = 0; t < report.tasks.size(); ++t) {
    double v = task_fitness_value(report.tasks[t]);
    if (options.gold_logprob_weight != 0)
      v += options.gold_logprob_weight * mean_gold_logprob_per_token(report.tasks[t]);
    if (!std::isfinite(v)) return NAN;
    w += weights[t];
    s += weights[t] * v;
  }
  return w > 0 ? s / w : NAN;
}

}  // namespace evomerge
