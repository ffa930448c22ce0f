#include "eval/metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace evomerge::eval {
namespace {

TEST(Wilson, KnownValues) {
  // Wilson (1927) closed form evaluated by hand in Python; 5/10 -> [0.2366, 0.7634] and
  // 0/10 -> [0, 0.2775] are also what statsmodels' proportion_confint(method="wilson") prints.
  Interval a = wilson_interval(5, 10);
  EXPECT_NEAR(a.lo, 0.236593, 1e-5);
  EXPECT_NEAR(a.hi, 0.763407, 1e-5);
  Interval z = wilson_interval(0, 10);
  EXPECT_NEAR(z.lo, 0.0, 1e-12);
  EXPECT_NEAR(z.hi, 0.277533, 1e-5);
  Interval o = wilson_interval(10, 10);
  EXPECT_NEAR(o.lo, 0.722467, 1e-5);
  EXPECT_NEAR(o.hi, 1.0, 1e-12);
  Interval big = wilson_interval(520, 1000);
  EXPECT_NEAR(big.lo, 0.489018, 1e-5);
  EXPECT_NEAR(big.hi, 0.550829, 1e-5);
}

TEST(Ratio, PerTokenAndPerplexity) {
  // Two items: nll 2 over 1 token, nll 6 over 3 tokens -> 8/4 = 2 per token, residuals 0, 0.
  std::vector<double> nll{2, 6}, n{1, 3};
  RatioEstimate r = ratio_estimate(nll, n);
  EXPECT_DOUBLE_EQ(r.value, 2.0);
  EXPECT_DOUBLE_EQ(r.ci.lo, 2.0);
  EXPECT_DOUBLE_EQ(r.ci.hi, 2.0);
  // nll {1, 3}, tokens {1, 1}: R = 2; residuals -1, 1; se = sqrt(2 / 2) / 1 = 1.
  std::vector<double> a{1, 3}, b{1, 1};
  r = ratio_estimate(a, b);
  EXPECT_DOUBLE_EQ(r.value, 2.0);
  EXPECT_NEAR(r.ci.hi - r.value, kZ95, 1e-12);
  RatioEstimate p = perplexity_estimate(a, b);
  EXPECT_NEAR(p.value, std::exp(2.0), 1e-12);
  EXPECT_NEAR(p.ci.lo, std::exp(2.0 - kZ95), 1e-9);
}

TEST(WeightedTotal, MeanAndVariance) {
  std::vector<WeightedPart> parts{{0.5, 0.01, 1.0}, {0.8, 0.04, 3.0}};
  RatioEstimate r = weighted_total(parts);
  EXPECT_DOUBLE_EQ(r.value, (0.5 + 2.4) / 4.0);
  double se = std::sqrt(0.0625 * 0.01 + 0.5625 * 0.04);
  EXPECT_NEAR(r.ci.hi, r.value + kZ95 * se, 1e-12);
}

}  // namespace
}  // namespace evomerge::eval
