#include "evolve/race.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace evomerge;

namespace {
// A tally from hand-written items: (score, per-token gold log-prob; NaN: none), one token each.
RaceTally tally_of(std::vector<std::pair<double, double>> items) {
  RaceTally t;
  for (const auto& [score, lp] : items) {
    eval::ItemResult it;
    it.score = score;
    it.gold_logprob = lp;
    it.gold_tokens = 1;
    t.add(it);
  }
  return t;
}
FitnessOptions eps(double e) {
  FitnessOptions o;
  o.gold_logprob_weight = e;
  return o;
}
}  // namespace

TEST(Race, AccuracyBoundsWithoutTieBreaker) {
  const RaceTally t = tally_of({{1, NAN}, {0, NAN}, {1, NAN}});
  const FitnessBounds b = race_bounds(t, 8, {});
  EXPECT_DOUBLE_EQ(b.lower, 2.0 / 8);
  EXPECT_DOUBLE_EQ(b.upper, (2.0 + 5) / 8);
}

TEST(Race, TieBreakerBoundsByHand) {
  // 2 of 4 items answered, both right, lp -10 each; eps 0.01, floor -20:
  // upper = 4/4 + 0.01 x (-20) / 4 = 0.95; lower = 2/4 + 0.01 x (-20 - 40) / 4 = 0.35.
  const RaceTally t = tally_of({{1, -10}, {1, -10}});
  const FitnessBounds b = race_bounds(t, 4, eps(0.01));
  EXPECT_DOUBLE_EQ(b.upper, 0.95);
  EXPECT_DOUBLE_EQ(b.lower, 0.35);
  // A log-prob below the floor counts as the floor (here -50 -> -20, and -inf too).
  const RaceTally low = tally_of({{1, -50}, {1, -INFINITY}});
  EXPECT_DOUBLE_EQ(low.lp_sum, -40);
  // Finished: both bounds are the fitness fitness_of computes.
  eval::ScoreReport rep;
  eval::TaskScore ts;
  ts.metric = "acc";
  ts.score = 0.5;
  for (double lp : {-1.0, -3.0}) {
    eval::ItemResult it;
    it.score = lp == -1.0 ? 1 : 0;
    it.gold_logprob = lp;
    it.gold_tokens = 1;
    ts.items.push_back(it);
  }
  rep.tasks = {ts};
  const RaceTally done = tally_of({{1, -1}, {0, -3}});
  const FitnessBounds f = race_bounds(done, 2, eps(0.01));
  EXPECT_DOUBLE_EQ(f.lower, fitness_of(rep, std::vector<double>{1}, eps(0.01)));
  EXPECT_DOUBLE_EQ(f.upper, f.lower);
  // Tie-breaker on but no item can carry a log-prob: no bound.
  EXPECT_TRUE(std::isnan(race_bounds(tally_of({{1, NAN}}), 1, eps(0.01)).upper));
}

TEST(Race, StopsOnTheFitnessNotOnAccuracyAlone) {
  // 4 items, 3 answered, mu = 1. a: 3 right, lp -10 each; b: 1 right, lp -0.1 each.
  // Accuracy alone: b's best 2/4 < a's worst 3/4, so b stops.
  const std::vector<RaceTally> t{tally_of({{1, -10}, {1, -10}, {1, -10}}),
                                 tally_of({{1, -0.1}, {0, -0.1}, {0, -0.1}})};
  const std::vector<bool> live{true, true};
  EXPECT_EQ(race_stops(t, live, 4, 1, {}), (std::vector<bool>{false, true}));
  // A heavy tie-breaker (eps 0.1): a's worst fitness 3/4 + 0.1 x (-30 - 20) / 4 = -0.5, b's best
  // 2/4 + 0.1 x (-0.3) / 4 = 0.4925: b may still finish ahead, so it goes on.
  EXPECT_EQ(race_stops(t, live, 4, 1, eps(0.1)), (std::vector<bool>{false, false}));
  // A small one (eps 0.001): a's worst 0.7375 > b's best ~0.49993: b stops.
  EXPECT_EQ(race_stops(t, live, 4, 1, eps(0.001)), (std::vector<bool>{false, true}));
}

TEST(Race, TieBreakerStopsWhatAccuracyCannotSeparate) {
  // 4 items, 3 answered, mu = 1, eps 0.01. a: 3 right, lp 0; b: 2 right, lp -20 (the floor).
  // Accuracy alone b's best 3/4 equals a's worst 3/4: not below, b goes on. On the fitness b's
  // best is 3/4 + 0.01 x (-60) / 4 = 0.6, a's worst 3/4 + 0.01 x (0 - 20) / 4 = 0.7: b stops.
  const std::vector<RaceTally> t{tally_of({{1, 0}, {1, 0}, {1, 0}}),
                                 tally_of({{1, -20}, {1, -20}, {0, -20}})};
  EXPECT_EQ(race_stops(t, {true, true}, 4, 1, {}), (std::vector<bool>{false, false}));
  EXPECT_DOUBLE_EQ(race_bounds(t[1], 4, eps(0.01)).upper, 0.6);
  EXPECT_DOUBLE_EQ(race_bounds(t[0], 4, eps(0.01)).lower, 0.7);
  EXPECT_EQ(race_stops(t, {true, true}, 4, 1, eps(0.01)), (std::vector<bool>{false, true}));
}

TEST(Race, FailedCandidatesNeitherStopNorSetTheBar) {
  RaceTally failed = tally_of({{1, NAN}, {1, NAN}});
  failed.failed = true;
  const std::vector<RaceTally> t{failed, tally_of({{0, NAN}, {0, NAN}}),
                                 tally_of({{1, NAN}, {0, NAN}})};
  // mu = 1 of the two not failed: the bar is 1/4 (the third), the second's best 2/4 is not below.
  EXPECT_EQ(race_stops(t, {false, true, true}, 4, 1, {}), (std::vector<bool>{false, false, false}));
  // mu = 3 but only two have not failed: nobody stops.
  EXPECT_EQ(race_stops(t, {false, true, true}, 4, 3, {}), (std::vector<bool>{false, false, false}));
}
