#include "evolve/pareto.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

using namespace evomerge;

TEST(Pareto, DominanceIsWeaklyBetterEverywhereAndStrictlySomewhere) {
  const std::vector<double> a{0.5, 0.7}, b{0.5, 0.6}, c{0.6, 0.5};
  EXPECT_TRUE(dominates(a, b));
  EXPECT_FALSE(dominates(b, a));
  EXPECT_FALSE(dominates(a, a));  // equal: neither dominates
  EXPECT_FALSE(dominates(a, c));  // a trade-off
  EXPECT_FALSE(dominates(c, a));
  EXPECT_FALSE(dominates(std::vector<double>{1, NAN}, std::vector<double>{0, 0}));
}

TEST(Pareto, NonDominatedFilterOnHandBuiltVectors) {
  // Two tasks. Front: (0.9, 0.1), (0.6, 0.6), (0.1, 0.9). Dominated: (0.5, 0.5) by (0.6, 0.6);
  // (0.1, 0.8) by (0.1, 0.9); (0.6, 0.6) repeated (kept once, the first); a NaN vector dropped.
  const std::vector<std::vector<double>> v{{0.5, 0.5}, {0.9, 0.1}, {0.6, 0.6}, {0.1, 0.8},
                                           {0.1, 0.9}, {0.6, 0.6}, {NAN, 1.0}};
  EXPECT_EQ(non_dominated(v), (std::vector<size_t>{1, 2, 4}));
  // Three objectives: (1, 0, 0) and (0, 1, 0) and (0, 0, 1) all survive; (0, 0, 0) does not.
  EXPECT_EQ(non_dominated({{0, 0, 0}, {1, 0, 0}, {0, 1, 0}, {0, 0, 1}}),
            (std::vector<size_t>{1, 2, 3}));
  EXPECT_TRUE(non_dominated({}).empty());
  EXPECT_EQ(non_dominated({{0.3, 0.3}}), (std::vector<size_t>{0}));
}

TEST(Pareto, SimplexWeightsAreAPointOfTheSimplexFromTheSeed) {
  for (uint64_t seed : {1u, 2u, 3u}) {
    const auto w = simplex_weights(3, seed);
    ASSERT_EQ(w.size(), 3u);
    for (double x : w) EXPECT_GE(x, 0);
    EXPECT_NEAR(std::accumulate(w.begin(), w.end(), 0.0), 1.0, 1e-12);
    EXPECT_EQ(simplex_weights(3, seed), w);  // a pure function of the seed
  }
  EXPECT_NE(simplex_weights(2, 1), simplex_weights(2, 2));
  // Uniform on the simplex: the first of two weights has mean 1/2 (1000 draws, sd ~0.009).
  double sum = 0;
  for (uint64_t s = 0; s < 1000; ++s) sum += simplex_weights(2, s)[0];
  EXPECT_NEAR(sum / 1000, 0.5, 0.05);
}

TEST(Pareto, ScalarisationAndItsSeed) {
  EXPECT_DOUBLE_EQ(scalarise(std::vector<double>{0.2, 0.8}, std::vector<double>{0.25, 0.75}),
                   0.2 * 0.25 + 0.8 * 0.75);
  const std::vector<std::vector<double>> g1{{0.1, 0.2}}, g2{{0.1, 0.3}};
  EXPECT_EQ(scalarisation_seed(7, g1), scalarisation_seed(7, g1));
  EXPECT_NE(scalarisation_seed(7, g1), scalarisation_seed(7, g2));  // same items, new genomes
  EXPECT_NE(scalarisation_seed(7, g1), scalarisation_seed(8, g1));
}
