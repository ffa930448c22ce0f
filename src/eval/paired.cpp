#include "eval/paired.h"

#include <cmath>

#include "common/error.h"

namespace evomerge::eval {

PairedDifference paired_difference(const ScoreReport& a, const ScoreReport& b,
                                   std::span<const double> weights) {
  if (a.tasks.size() != b.tasks.size() || a.tasks.size() != weights.size())
    fail("eval", "paired difference: {} and {} tasks ({} weights)", a.tasks.size(), b.tasks.size(),
         weights.size());
  double w_sum = 0, weighted = 0;
  std::vector<std::pair<double, double>> parts;  // (weight, variance of the task's mean diff)
  PairedDifference out;
  for (size_t t = 0; t < a.tasks.size(); ++t) {
    const TaskScore &ta = a.tasks[t], &tb = b.tasks[t];
    if (!ta.higher_is_better || ta.failed || tb.failed) continue;
    if (ta.items.size() != tb.items.size() || ta.items.empty())
      fail("eval", "paired difference: task '{}' has {} and {} items", ta.task, ta.items.size(),
           tb.items.size());
    const size_t n = ta.items.size();
    double sum = 0;
    for (size_t i = 0; i < n; ++i) {
      if (ta.items[i].index != tb.items[i].index)
        fail("eval",
             "paired difference: task '{}' item {} is split item {} in one report and {} "
             "in the other",
             ta.task, i, ta.items[i].index, tb.items[i].index);
      sum += ta.items[i].score - tb.items[i].score;
    }
    const double mean = sum / static_cast<double>(n);
    double ss = 0;
    for (size_t i = 0; i < n; ++i) {
      const double d = ta.items[i].score - tb.items[i].score - mean;
      ss += d * d;
    }
    const double var_mean = n > 1 ? ss / static_cast<double>(n - 1) / static_cast<double>(n) : 0;
    w_sum += weights[t];
    weighted += weights[t] * mean;
    parts.push_back({weights[t], var_mean});
    out.items += n;
  }
  if (parts.empty() || !(w_sum > 0)) {
    out.difference = NAN;
    out.ci = {NAN, NAN};
    return out;
  }
  out.difference = weighted / w_sum;
  double var = 0;
  for (const auto& [w, v] : parts) var += (w / w_sum) * (w / w_sum) * v;
  const double half = kZ95 * std::sqrt(var);
  out.ci = {out.difference - half, out.difference + half};
  return out;
}

}  // namespace evomerge::eval
