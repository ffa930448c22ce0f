// The racing decision (evolve/scoring.h runs the rounds): after each round, which candidates can no
// longer enter the generation's top mu on the fitness the search optimises (evolve/fitness.h), the
// accuracy plus the optional gold log-probability tie-breaker.
//
// A candidate has answered `scored` of `total` items. Its final fitness is
//   correct_final / total + epsilon x mean(lp_i),  lp_i in [kGoldLogprobFloor, 0]
// over the items that have a gold log-probability. The items still to answer can each be right
// (score 1) or wrong (0), and have any lp in [floor, 0] (or none), so
//   upper = (correct + remaining) / total + epsilon x lp_sum / (lp_items + remaining)
//   lower = correct / total + epsilon x (lp_sum + remaining x floor) / (lp_items + remaining)
// (a mean of non-positive values rises with more zeros and falls with more floors). With epsilon 0
// these are the accuracy bounds alone. A candidate stops when its upper bound is below the mu-th
// best lower bound among the candidates that have not failed: it cannot finish in the top mu.
#pragma once

#include <cstddef>
#include <vector>

#include "evolve/fitness.h"

namespace evomerge {

// What a candidate's answered items add up to so far (one task).
struct RaceTally {
  size_t scored = 0;    // items answered
  double correct = 0;   // sum of their item scores (each in [0, 1])
  double lp_sum = 0;    // sum of gold_logprob_per_token over those that have one
  size_t lp_items = 0;  // how many have one
  bool failed = false;  // a job failed: no bound, no more work
  void add(const eval::ItemResult& item);
};

struct FitnessBounds {
  double lower = 0, upper = 0;  // NaN: the tie-breaker is on and no item can have a log-prob
};

// The bounds above for a tally out of `total` items.
FitnessBounds race_bounds(const RaceTally& tally, size_t total, const FitnessOptions& options);

// Per candidate, whether it stops now: live[c], not failed, and its upper bound below the mu-th
// best lower bound (mu of the candidates not failed; fewer than mu of them: nobody stops).
std::vector<bool> race_stops(const std::vector<RaceTally>& tallies, const std::vector<bool>& live,
                             size_t total, size_t mu, const FitnessOptions& options);

}  // namespace evomerge
