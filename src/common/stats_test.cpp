#include "common/stats.h"

#include <gtest/gtest.h>

#include <cmath>

using evomerge::quantile;

TEST(Quantile, LinearInterpolationAsNumpy) {
  // numpy.quantile([3, 1, 4, 1, 5], [0, .25, .5, .75, 1]) = 1, 1, 3, 4, 5
  const std::vector<double> v{3, 1, 4, 1, 5};
  EXPECT_DOUBLE_EQ(quantile(v, 0.0), 1);
  EXPECT_DOUBLE_EQ(quantile(v, 0.25), 1);
  EXPECT_DOUBLE_EQ(quantile(v, 0.5), 3);
  EXPECT_DOUBLE_EQ(quantile(v, 0.75), 4);
  EXPECT_DOUBLE_EQ(quantile(v, 1.0), 5);
  // numpy.quantile([1, 2, 3, 4], .1) = 1.3; even median is the mean of the middle two.
  EXPECT_DOUBLE_EQ(quantile({4, 3, 2, 1}, 0.1), 1.3);
  EXPECT_DOUBLE_EQ(quantile({4, 3, 2, 1}, 0.5), 2.5);
}

TEST(Quantile, IgnoresNaNAndEmptyIsNaN) {
  EXPECT_DOUBLE_EQ(quantile({NAN, 2, NAN, 6}, 0.5), 4);
  EXPECT_TRUE(std::isnan(quantile({}, 0.5)));
  EXPECT_TRUE(std::isnan(quantile({NAN}, 0.5)));
  EXPECT_DOUBLE_EQ(quantile({7}, 0.9), 7);
}
