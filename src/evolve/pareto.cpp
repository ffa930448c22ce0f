#include "evolve/pareto.h"

#include <cmath>
#include <cstring>
#include <string_view>

#include "common/error.h"
#include "common/hash.h"
#include "evolve/rng.h"

namespace evomerge {

namespace {
bool has_nan(std::span<const double> v) {
  for (double x : v)
    if (std::isnan(x)) return true;
  return false;
}
}  // namespace

bool dominates(std::span<const double> a, std::span<const double> b) {
  EM_ASSERT(a.size() == b.size());
  if (has_nan(a) || has_nan(b)) return false;
  bool better = false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i] < b[i]) return false;
    if (a[i] > b[i]) better = true;
  }
  return better;
}

std::vector<size_t> non_dominated(const std::vector<std::vector<double>>& objectives) {
  std::vector<size_t> keep;
  for (size_t i = 0; i < objectives.size(); ++i) {
    if (has_nan(objectives[i])) continue;
    bool out = false;
    for (size_t j = 0; j < objectives.size() && !out; ++j)
      out = j != i && (dominates(objectives[j], objectives[i]) ||
                       (j < i && objectives[j] == objectives[i]));  // a duplicate of an earlier one
    if (!out) keep.push_back(i);
  }
  return keep;
}

std::vector<double> simplex_weights(size_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<double> w(n);
  double sum = 0;
  for (double& x : w) {
    x = -std::log(1.0 - rng.uniform());  // Exp(1); 1 - u is in (0, 1]
    sum += x;
  }
  for (double& x : w) x = sum > 0 ? x / sum : 1.0 / static_cast<double>(n);
  return w;
}

uint64_t scalarisation_seed(uint64_t item_seed, const std::vector<std::vector<double>>& genomes) {
  uint64_t h =
      fnv1a64(std::string_view(reinterpret_cast<const char*>(&item_seed), sizeof item_seed));
  for (const auto& g : genomes)
    h = fnv1a64(
        std::string_view(reinterpret_cast<const char*>(g.data()), g.size() * sizeof(double)), h);
  return h;
}

double scalarise(std::span<const double> objectives, std::span<const double> weights) {
  EM_ASSERT(objectives.size() == weights.size());
  double s = 0;
  for (size_t t = 0; t < objectives.size(); ++t) s += weights[t] * objectives[t];
  return s;
}

}  // namespace evomerge
