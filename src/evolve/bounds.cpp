#include "evolve/bounds.h"

#include <algorithm>
#include <cmath>

#include "common/error.h"

namespace evomerge {

BoxTransform::BoxTransform(std::vector<double> lower, std::vector<double> upper)
    : lower_(std::move(lower)), upper_(std::move(upper)) {
  if (lower_.size() != upper_.size())
    fail("cmaes", "bounds: {} lower values but {} upper values", lower_.size(), upper_.size());
  al_.resize(lower_.size());
  au_.resize(lower_.size());
  for (size_t i = 0; i < lower_.size(); ++i) {
    const double lb = lower_[i], ub = upper_[i];
    const bool free = std::isinf(lb) && std::isinf(ub) && lb < 0 && ub > 0;
    if (!free && !(std::isfinite(lb) && std::isfinite(ub) && lb < ub))
      fail("cmaes", "bounds[{}]: need finite lower < upper (or both infinite), got [{}, {}]", i, lb,
           ub);
    if (free) continue;
    al_[i] = std::min((ub - lb) / 2, std::max(1.0, std::abs(lb)) / 20);
    au_[i] = std::min((ub - lb) / 2, std::max(1.0, std::abs(ub)) / 20);
  }
}

double BoxTransform::transform(size_t i, double x) const {
  if (!bounded() || std::isinf(lower_[i])) return x;
  const double lb = lower_[i], ub = upper_[i], al = al_[i], au = au_[i];
  // Fold x into one period [lb - al, lb - al + period), then mirror the upper half.
  const double lo = lb - al, hi = ub + au;
  const double period = 2 * (hi - lo);
  if (x < lo || x > hi) {
    double r = std::fmod(x - lo, period);
    if (r < 0) r += period;
    x = lo + r;
    if (x > hi) x = 2 * hi - x;  // mirror
  }
  if (x < lb + al) return lb + (x - lo) * (x - lo) / (4 * al);
  if (x > ub - au) return ub - (x - hi) * (x - hi) / (4 * au);
  return x;
}

double BoxTransform::inverse(size_t i, double y) const {
  if (!bounded() || std::isinf(lower_[i])) return y;
  const double lb = lower_[i], ub = upper_[i], al = al_[i], au = au_[i];
  y = std::clamp(y, lb, ub);
  if (y < lb + al) return lb - al + 2 * std::sqrt(al * (y - lb));
  if (y > ub - au) return ub + au - 2 * std::sqrt(au * (ub - y));
  return y;
}

Eigen::VectorXd BoxTransform::transform(const Eigen::VectorXd& x) const {
  if (!bounded()) return x;
  EM_ASSERT(static_cast<size_t>(x.size()) == lower_.size());
  Eigen::VectorXd y(x.size());
  for (Eigen::Index i = 0; i < x.size(); ++i) y[i] = transform(static_cast<size_t>(i), x[i]);
  return y;
}

Eigen::VectorXd BoxTransform::inverse(const Eigen::VectorXd& y) const {
  if (!bounded()) return y;
  EM_ASSERT(static_cast<size_t>(y.size()) == lower_.size());
  Eigen::VectorXd x(y.size());
  for (Eigen::Index i = 0; i < y.size(); ++i) x[i] = inverse(static_cast<size_t>(i), y[i]);
  return x;
}

}  // namespace evomerge
