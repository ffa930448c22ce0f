#include "evolve/fitness.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace evomerge;

namespace {
eval::TaskScore accuracy_task(double score, std::vector<std::pair<double, int64_t>> gold) {
  eval::TaskScore t;
  t.task = "acc";
  t.metric = "exact_match";
  t.score = score;
  for (const auto& [lp, n] : gold) {
    eval::ItemResult r;
    r.gold_logprob = lp;
    r.gold_tokens = n;
    t.items.push_back(r);
  }
  return t;
}
}  // namespace

TEST(Fitness, AccuracyAloneIsTheReportTotal) {
  eval::ScoreReport rep;
  rep.tasks = {accuracy_task(0.25, {}), accuracy_task(0.75, {})};
  const std::vector<double> w{1, 3};
  EXPECT_DOUBLE_EQ(fitness_of(rep, w, {}), (0.25 * 1 + 0.75 * 3) / 4);
  eval::aggregate_report(rep, w);
  EXPECT_EQ(fitness_of(rep, w, {}), rep.total);  // bit-identical to the scorer's weighted total
}

TEST(Fitness, TieBreakerOrdersEqualAccuraciesByGoldLogprob) {
  // Two candidates, both 0 correct of 2: per-token gold log-probs (-4/2 + -3/1)/2 = -2.5 and
  // (-1/2 + -2/4)/2 = -0.5. The second is closer to right and must rank higher.
  eval::ScoreReport a, b;
  a.tasks = {accuracy_task(0.0, {{-4.0, 2}, {-3.0, 1}})};
  b.tasks = {accuracy_task(0.0, {{-1.0, 2}, {-2.0, 4}})};
  const std::vector<double> w{1};
  FitnessOptions o;
  o.gold_logprob_weight = 0.01;
  EXPECT_DOUBLE_EQ(mean_gold_logprob_per_token(a.tasks[0]), -2.5);
  EXPECT_DOUBLE_EQ(fitness_of(a, w, o), 0.01 * -2.5);
  EXPECT_DOUBLE_EQ(fitness_of(b, w, o), 0.01 * -0.5);
  EXPECT_GT(fitness_of(b, w, o), fitness_of(a, w, o));
  EXPECT_EQ(fitness_of(a, w, {}), fitness_of(b, w, {}));  // accuracy alone: a flat tie
  // A one-item accuracy gain (1/2) still dominates a small tie-breaker.
  eval::ScoreReport c;
  c.tasks = {accuracy_task(0.5, {{-9.0, 1}, {-9.0, 1}})};
  EXPECT_GT(fitness_of(c, w, o), fitness_of(b, w, o));
  // Tie-breaker on but no gold log-probability: no fitness (not a silent 0).
  eval::ScoreReport d;
  d.tasks = {accuracy_task(0.5, {})};
  EXPECT_TRUE(std::isnan(fitness_of(d, w, o)));
}

TEST(Fitness, PerplexityTasksCountAsMeanLogprob) {
  eval::TaskScore ppl;
  ppl.metric = "perplexity";
  ppl.higher_is_better = false;
  ppl.score = std::exp(2.0);  // mean NLL 2 per token
  eval::TaskScore bpb;
  bpb.metric = "bits_per_byte";
  bpb.higher_is_better = false;
  bpb.score = 1.5;
  eval::ScoreReport rep;
  rep.tasks = {accuracy_task(0.6, {}), ppl, bpb};
  const std::vector<double> w{2, 1, 1};
  EXPECT_NEAR(fitness_of(rep, w, {}), (2 * 0.6 - 2.0 - 1.5) / 4, 1e-12);
  rep.tasks[1].failed = true;
  EXPECT_TRUE(std::isnan(fitness_of(rep, w, {})));
}

TEST(Fitness, GoldLogprobIsClampedAtTheFloor) {
  // -60 over 2 tokens = -30 per token -> the floor -20; -inf (ruled out) -> -20; -3/1 stays.
  const eval::TaskScore t = accuracy_task(0.0, {{-60.0, 2}, {-INFINITY, 1}, {-3.0, 1}, {NAN, 1}});
  EXPECT_DOUBLE_EQ(mean_gold_logprob_per_token(t), (-20.0 - 20.0 - 3.0) / 3);
}
