#include "evolve/rng.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

using evomerge::Rng;

TEST(Rng, SplitMix64MatchesReferenceOutputs) {
  // splitmix64 from state 0 (Vigna's reference implementation).
  uint64_t x = 0;
  EXPECT_EQ(evomerge::splitmix64(x), 0xe220a8397b1dcdafULL);
  EXPECT_EQ(evomerge::splitmix64(x), 0x6e789e6aa1b965f4ULL);
  EXPECT_EQ(evomerge::splitmix64(x), 0x06c45d188009454fULL);
}

TEST(Rng, Xoshiro256StarStarMatchesHandComputedOutputs) {
  // State {1,2,3,4}: out0 = rotl(2*5, 7)*9 = 11520; the state update zeroes s[1], so out1 = 0.
  Rng::State st;
  st.s = {1, 2, 3, 4};
  Rng rng = Rng::from_state(st);
  EXPECT_EQ(rng.next_u64(), 11520u);
  EXPECT_EQ(rng.next_u64(), 0u);
  EXPECT_EQ(rng.next_u64(), 1509978240u);
  EXPECT_EQ(rng.next_u64(), 1215971899390074240ULL);
}

TEST(Rng, SameSeedSameStreamDifferentSeedDifferent) {
  Rng a(42), b(42), c(43);
  bool differs = false;
  for (int i = 0; i < 100; ++i) {
    const double x = a.normal();
    EXPECT_EQ(x, b.normal());
    if (x != c.normal()) differs = true;
  }
  EXPECT_TRUE(differs);
}

TEST(Rng, StateRoundTripContinuesTheStreamIncludingTheSpareNormal) {
  Rng a(7);
  a.normal();  // leaves a cached spare
  ASSERT_TRUE(a.state().has_spare);
  Rng b = Rng::from_state(a.state());
  for (int i = 0; i < 11; ++i) EXPECT_EQ(a.normal(), b.normal());
}

TEST(Rng, NormalMoments) {
  Rng rng(2024);
  const int n = 200000;
  double sum = 0, sum2 = 0, sum4 = 0;
  int within1 = 0;
  for (int i = 0; i < n; ++i) {
    const double x = rng.normal();
    sum += x;
    sum2 += x * x;
    sum4 += x * x * x * x;
    within1 += std::abs(x) < 1;
  }
  EXPECT_NEAR(sum / n, 0.0, 0.01);
  EXPECT_NEAR(sum2 / n, 1.0, 0.015);
  EXPECT_NEAR(sum4 / n, 3.0, 0.08);
  EXPECT_NEAR(static_cast<double>(within1) / n, 0.682689, 0.005);
}

TEST(Rng, UniformAndBelow) {
  Rng rng(5);
  std::vector<int> counts(7, 0);
  double sum = 0;
  for (int i = 0; i < 70000; ++i) {
    const double u = rng.uniform();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    sum += u;
    counts[rng.below(7)]++;
  }
  EXPECT_NEAR(sum / 70000, 0.5, 0.005);
  for (int c : counts) EXPECT_NEAR(c, 10000, 400);
}
