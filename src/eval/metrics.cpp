#include "eval/metrics.h"

#include <cmath>

#include "common/error.h"

namespace evomerge::eval {

Interval wilson_interval(double successes, size_t n, double z) {
  EM_ASSERT(n > 0);
  const double nn = static_cast<double>(n);
  const double p = successes / nn;
  const double z2 = z * z;
  const double denom = 1.0 + z2 / nn;
  const double center = (p + z2 / (2.0 * nn)) / denom;
  const double half = z / denom * std::sqrt(p * (1.0 - p) / nn + z2 / (4.0 * nn * nn));
  return {std::max(0.0, center - half), std::min(1.0, center + half)};
}

RatioEstimate ratio_estimate(std::span<const double> num, std::span<const double> den, double z) {
  EM_ASSERT(num.size() == den.size() && !num.empty());
  double sn = 0, sd = 0;
  for (size_t i = 0; i < num.size(); ++i) sn += num[i], sd += den[i];
  EM_ASSERT(sd > 0);
  RatioEstimate r;
  r.value = sn / sd;
  const size_t n = num.size();
  if (n < 2) {
    r.ci = {r.value, r.value};
    return r;
  }
  double ss = 0;
  for (size_t i = 0; i < n; ++i) {
    double e = num[i] - r.value * den[i];
    ss += e * e;
  }
  const double mean_den = sd / static_cast<double>(n);
  const double se = std::sqrt(ss / (static_cast<double>(n) * static_cast<double>(n - 1))) / mean_den;
  r.ci = {r.value - z * se, r.value + z * se};
  return r;
}

RatioEstimate perplexity_estimate(std::span<const double> nll, std::span<const double> counts, double z) {
  RatioEstimate r = ratio_estimate(nll, counts, z);
  return {std::exp(r.value), {std::exp(r.ci.lo), std::exp(r.ci.hi)}};
}

RatioEstimate weighted_total(std::span<const WeightedPart> parts, double z) {
  EM_ASSERT(!parts.empty());
  double w = 0, s = 0;
  for (const auto& p : parts) w += p.weight, s += p.weight * p.score;
  EM_ASSERT(w > 0);
  double var = 0;
  for (const auto& p : parts) var += (p.weight / w) * (p.weight / w) * p.variance;
  RatioEstimate r;
  r.value = s / w;
  double se = std::sqrt(var);
  r.ci = {r.value - z * se, r.value + z * se};
  return r;
}

}  // namespace evomerge::eval
