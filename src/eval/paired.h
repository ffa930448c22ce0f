// Paired differences between two models scored on the same items: the winner vs a parent, vs the
// best uniform merge. Per item d_i = score_a(i) - score_b(i) (1/0 for accuracies); per task the
// mean difference with variance s_d^2 / n (s_d the sample standard deviation of the d_i), and over
// tasks the weighted mean with the report's weights, sum(w_t d_t) / sum(w_t), treating tasks as
// independent. Pairing removes the item-difficulty variance the two models share, so the interval
// is much narrower than the difference of two independent intervals.
#pragma once

#include <cstddef>
#include <span>

#include "eval/metrics.h"
#include "eval/scorer.h"

namespace evomerge::eval {

struct PairedDifference {
  double difference = 0;  // a - b, in the report total's units
  Interval ci;            // 95%, normal approximation
  size_t items = 0;       // paired items over all counted tasks
};

// Both reports must hold the same items of the same tasks (Error otherwise). Only the tasks that
// count in the report total (higher-is-better primary metric) are used.
PairedDifference paired_difference(const ScoreReport& a, const ScoreReport& b,
                                   std::span<const double> weights);

}  // namespace evomerge::eval
