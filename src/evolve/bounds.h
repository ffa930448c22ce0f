// Box constraints by a smooth, periodic transform (after pycma's
// BoxConstraintsLinQuadTransformation): each coordinate is mapped R -> [lb, ub] by a C^1 function
// that is the identity on [lb + al, ub - au], quadratic in the margins, and mirrored / periodic
// outside, with period 2 (ub - lb + al + au).
//
// The optimiser samples in the unbounded space; f is evaluated at transform(x); the *untransformed*
// sample updates the distribution (the transform is part of f). inverse() maps a feasible starting
// point into the unbounded space.
#pragma once

#include <Eigen/Core>
#include <vector>

namespace evomerge {

class BoxTransform {
 public:
  BoxTransform() = default;  // unbounded: identity
  // lower.size() == upper.size(); lower[i] < upper[i]; an infinite pair leaves coordinate i free.
  // Margins default to al = min((ub-lb)/2, max(1,|lb|)/20), likewise au with ub.
  BoxTransform(std::vector<double> lower, std::vector<double> upper);

  bool bounded() const { return !lower_.empty(); }
  size_t size() const { return lower_.size(); }
  const std::vector<double>& lower() const { return lower_; }
  const std::vector<double>& upper() const { return upper_; }

  double transform(size_t i, double x) const;
  double inverse(size_t i, double y) const;  // y is clamped into [lb, ub] first
  Eigen::VectorXd transform(const Eigen::VectorXd& x) const;
  Eigen::VectorXd inverse(const Eigen::VectorXd& y) const;

 private:
  std::vector<double> lower_, upper_, al_, au_;
};

}  // namespace evomerge
