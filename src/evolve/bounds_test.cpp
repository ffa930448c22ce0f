#include "evolve/bounds.h"

#include <gtest/gtest.h>

#include <cmath>

#include "common/error.h"

using evomerge::BoxTransform;

TEST(BoxTransform, HandValuesOnUnitBox) {
  BoxTransform t({0.0}, {1.0});                // margins al = au = min(0.5, 1/20) = 0.05
  EXPECT_DOUBLE_EQ(t.transform(0, 0.5), 0.5);  // identity inside [0.05, 0.95]
  EXPECT_DOUBLE_EQ(t.transform(0, 0.05), 0.05);
  EXPECT_DOUBLE_EQ(t.transform(0, 0.95), 0.95);
  EXPECT_DOUBLE_EQ(t.transform(0, 0.0), 0.0125);  // (0 + 0.05)^2 / (4 * 0.05)
  EXPECT_DOUBLE_EQ(t.transform(0, -0.05), 0.0);   // lb - al maps to lb
  EXPECT_DOUBLE_EQ(t.transform(0, 1.05), 1.0);    // ub + au maps to ub
  EXPECT_NEAR(t.transform(0, 1.0), 0.9875, 1e-15);
  // Mirrored about lb - al and periodic with period 2 * (1 + 0.1) = 2.2.
  EXPECT_NEAR(t.transform(0, -0.1), t.transform(0, 0.0), 1e-15);
  EXPECT_NEAR(t.transform(0, 0.3 + 2.2), 0.3, 1e-12);
  EXPECT_NEAR(t.transform(0, 0.3 - 4.4), 0.3, 1e-12);
  EXPECT_NEAR(t.transform(0, 1.6), t.transform(0, 0.5), 1e-12);  // mirror about 1.05
}

TEST(BoxTransform, RangeContinuityAndSmoothness) {
  BoxTransform t({-2.0, 0.0}, {3.0, 0.1});
  for (size_t i = 0; i < 2; ++i) {
    const double lb = t.lower()[i], ub = t.upper()[i];
    double prev = t.transform(i, -50.0);
    double prev_slope = 0;
    const double h = 1e-4;
    for (double x = -50.0 + h; x < 50.0; x += h) {
      const double y = t.transform(i, x);
      ASSERT_GE(y, lb);
      ASSERT_LE(y, ub);
      const double slope = (y - prev) / h;
      ASSERT_LE(std::abs(slope), 1.0 + 1e-6);  // never steeper than the identity
      // C^1: the slope changes by O(h / margin) per step, never jumps.
      if (x > -50.0 + 2 * h) ASSERT_LT(std::abs(slope - prev_slope), 0.05) << "x=" << x;
      prev = y;
      prev_slope = slope;
    }
  }
}

TEST(BoxTransform, InverseRoundTrips) {
  BoxTransform t({0.0, -1.0}, {1.0, 10.0});
  for (double y = 0.0; y <= 1.0; y += 0.001) EXPECT_NEAR(t.transform(0, t.inverse(0, y)), y, 1e-12);
  for (double y = -1.0; y <= 10.0; y += 0.01)
    EXPECT_NEAR(t.transform(1, t.inverse(1, y)), y, 1e-12);
  // inverse maps into the fundamental interval [lb - al, ub + au].
  EXPECT_DOUBLE_EQ(t.inverse(0, 0.0), -0.05);
  EXPECT_DOUBLE_EQ(t.inverse(0, 1.0), 1.05);
  EXPECT_DOUBLE_EQ(t.inverse(0, 0.5), 0.5);
}

TEST(BoxTransform, UnboundedIsIdentityAndBadBoundsFail) {
  BoxTransform none;
  Eigen::VectorXd x(2);
  x << -7.5, 1e9;
  EXPECT_EQ(none.transform(x), x);
  const double inf = std::numeric_limits<double>::infinity();
  BoxTransform partly({-inf, 0.0}, {inf, 1.0});
  EXPECT_EQ(partly.transform(0, -123.0), -123.0);
  EXPECT_THROW(BoxTransform({1.0}, {0.0}), evomerge::Error);
  EXPECT_THROW(BoxTransform({0.0}, {inf}), evomerge::Error);
  EXPECT_THROW(BoxTransform({0.0, 0.0}, {1.0}), evomerge::Error);
}
