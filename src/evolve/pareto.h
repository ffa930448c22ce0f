// Multi-objective search over several tasks (ps.objective: pareto): each task's value in the
// fitness (evolve/fitness.h: accuracy, or -ln perplexity, plus the optional tie-breaker) is one
// objective, all maximised. CMA-ES needs one number per candidate, so each generation it climbs a
// random scalarisation, sum_t lambda_t v_t with lambda drawn uniformly from the simplex (ParEGO's
// idea with a weighted sum instead of its Tchebycheff: a weighted sum reaches the convex part of
// the front only, the price of a one-line scalarisation); over generations the search drifts along
// the front instead of to one trade-off. The run keeps the non-dominated candidates
// (pareto_front.h).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace evomerge {

// Whether a dominates b: a >= b in every objective and > in at least one (maximisation).
bool dominates(std::span<const double> a, std::span<const double> b);

// The indices (in order) of the vectors no other vector dominates. A vector with a NaN entry is
// never kept and dominates nothing; of identical vectors only the first is kept.
std::vector<size_t> non_dominated(const std::vector<std::vector<double>>& objectives);

// n weights >= 0 summing to 1, uniform on the simplex (normalised exponentials), from `seed`.
std::vector<double> simplex_weights(size_t n, uint64_t seed);

// The seed of a generation's weights: a hash of its item seed and its genomes (the genomes follow
// from the restored optimiser state, so a resumed run draws the same weights; the item seed alone
// repeats every generation when fresh_items is off).
uint64_t scalarisation_seed(uint64_t item_seed, const std::vector<std::vector<double>>& genomes);

// sum_t weights[t] * objectives[t]; NaN when an objective is.
double scalarise(std::span<const double> objectives, std::span<const double> weights);

}  // namespace evomerge
