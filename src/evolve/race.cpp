#include "evolve/race.h"

#include <algorithm>
#include <cmath>
#include <functional>

#include "common/error.h"

namespace evomerge {

void RaceTally::add(const eval::ItemResult& item) {
  ++scored;
  correct += item.score;
  const double lp = gold_logprob_per_token(item);
  if (std::isnan(lp)) return;
  lp_sum += lp;
  ++lp_items;
}

FitnessBounds race_bounds(const RaceTally& tally, size_t total, const FitnessOptions& options) {
  EM_ASSERT(tally.scored <= total && total > 0);
  const double n = static_cast<double>(total);
  const double remaining = static_cast<double>(total - tally.scored);
  FitnessBounds b{tally.correct / n, (tally.correct + remaining) / n};
  const double eps = options.gold_logprob_weight;
  if (eps == 0) return b;
  const double lp_n = static_cast<double>(tally.lp_items) + remaining;
  if (lp_n == 0) return {NAN, NAN};  // fitness_of gives no value either
  b.lower += eps * (tally.lp_sum + remaining * kGoldLogprobFloor) / lp_n;
  b.upper += eps * tally.lp_sum / lp_n;
  return b;
}

std::vector<bool> race_stops(const std::vector<RaceTally>& tallies, const std::vector<bool>& live,
                             size_t total, size_t mu, const FitnessOptions& options) {
  EM_ASSERT(live.size() == tallies.size());
  std::vector<bool> stop(tallies.size(), false);
  std::vector<FitnessBounds> bounds;
  std::vector<double> lower;
  for (const auto& t : tallies) {
    bounds.push_back(t.failed ? FitnessBounds{NAN, NAN} : race_bounds(t, total, options));
    if (!t.failed) lower.push_back(bounds.back().lower);
  }
  if (mu == 0 || lower.size() < mu) return stop;
  // NaN lower bounds sort last (they promise nothing).
  for (double& l : lower)
    if (std::isnan(l)) l = -INFINITY;
  std::nth_element(lower.begin(), lower.begin() + static_cast<std::ptrdiff_t>(mu - 1), lower.end(),
                   std::greater<>());
  const double threshold = lower[mu - 1];
  for (size_t c = 0; c < tallies.size(); ++c)
    stop[c] = live[c] && !tallies[c].failed && bounds[c].upper < threshold;  // NaN: never stops
  return stop;
}

}  // namespace evomerge
