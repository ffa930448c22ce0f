#include "eval/paired.h"

#include <gtest/gtest.h>

#include <cmath>

#include "common/error.h"

namespace evomerge::eval {
namespace {

TaskScore task_of(std::vector<double> scores) {
  TaskScore t;
  t.task = "t";
  for (size_t i = 0; i < scores.size(); ++i) {
    ItemResult r;
    r.index = i * 2;  // any indices, as long as both reports share them
    r.score = scores[i];
    t.items.push_back(r);
  }
  return t;
}

TEST(PairedDifference, HandComputedMeanAndInterval) {
  // d = (1, 0, 1, 0, 0) -> mean 0.4, sample variance (3*0.16 + 2*0.36)/4 = 0.3, var of the mean
  // 0.3/5 = 0.06, half-width 1.96 * sqrt(0.06).
  ScoreReport a, b;
  a.tasks = {task_of({1, 1, 1, 0, 1})};
  b.tasks = {task_of({0, 1, 0, 0, 1})};
  const std::vector<double> w{1};
  const auto d = paired_difference(a, b, w);
  EXPECT_DOUBLE_EQ(d.difference, 0.4);
  EXPECT_NEAR(d.ci.hi - d.difference, kZ95 * std::sqrt(0.06), 1e-12);
  EXPECT_NEAR(d.difference - d.ci.lo, kZ95 * std::sqrt(0.06), 1e-12);
  EXPECT_EQ(d.items, 5u);
  // Identical models: zero difference, zero width.
  const auto same = paired_difference(a, a, w);
  EXPECT_EQ(same.difference, 0.0);
  EXPECT_EQ(same.ci.lo, 0.0);
  EXPECT_EQ(same.ci.hi, 0.0);
}

TEST(PairedDifference, WeightedOverTasksAndMismatchFails) {
  ScoreReport a, b;
  a.tasks = {task_of({1, 1}), task_of({0, 0, 0, 0})};
  b.tasks = {task_of({0, 0}), task_of({1, 1, 1, 1})};
  const std::vector<double> w{3, 1};
  const auto d = paired_difference(a, b, w);
  EXPECT_DOUBLE_EQ(d.difference, (3 * 1.0 + 1 * -1.0) / 4);
  EXPECT_EQ(d.ci.lo, d.difference);  // every d_i equal within a task: no spread
  b.tasks[1].items.pop_back();
  EXPECT_THROW(paired_difference(a, b, w), Error);
  b.tasks[1] = task_of({1, 1, 1, 1});
  b.tasks[1].items[2].index = 99;
  EXPECT_THROW(paired_difference(a, b, w), Error);
}

}  // namespace
}  // namespace evomerge::eval
