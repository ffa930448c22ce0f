// Aggregates and 95% confidence intervals for task scores.
#pragma once

#include <cstddef>
#include <span>

namespace evomerge::eval {

inline constexpr double kZ95 = 1.959963984540054;  // two-sided 95% normal quantile

struct Interval {
  double lo = 0.0;
  double hi = 0.0;
};

// Wilson score interval for a binomial proportion `successes / n` (n > 0). Unlike the normal
// (Wald) interval it stays inside [0, 1] and is sensible at 0% and 100%.
Interval wilson_interval(double successes, size_t n, double z = kZ95);

// A ratio of sums R = sum(num) / sum(den) over items (e.g. negative log-likelihood per token) with a
// normal-approximation interval from the delta method:
//   se(R) = sqrt(sum_i (num_i - R den_i)^2 / (n (n - 1))) / mean(den).
// n == 1 gives a zero-width interval.
struct RatioEstimate {
  double value = 0.0;
  Interval ci;
};
RatioEstimate ratio_estimate(std::span<const double> num, std::span<const double> den, double z = kZ95);

// Perplexity exp(R) of a per-token (per-word, per-byte) negative log-likelihood ratio, with the
// interval mapped through exp (monotone, so the bounds stay bounds).
RatioEstimate perplexity_estimate(std::span<const double> nll, std::span<const double> counts, double z = kZ95);

// A weighted mean of several tasks' scores, sum(w_t s_t) / sum(w_t), with a normal interval from
// the tasks' variances var_t (for accuracies p(1-p)/n), treating tasks as independent.
struct WeightedPart {
  double score = 0.0;
  double variance = 0.0;
  double weight = 1.0;
};
RatioEstimate weighted_total(std::span<const WeightedPart> parts, double z = kZ95);

}  // namespace evomerge::eval
