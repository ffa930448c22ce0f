#include "report/axis.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace evomerge::report {

double Axis::map(double v, double p0, double p1) const {
  if (!(hi > lo)) return p0;
  return p0 + (v - lo) / (hi - lo) * (p1 - p0);
}

std::string Axis::format(double v) const {
  int decimals = 0;
  if (step > 0 && step < 1)
    decimals = std::min(6, static_cast<int>(std::ceil(-std::log10(step) - 1e-9)));
  // A step like 0.25 needs one more decimal than its order of magnitude says.
  if (step > 0 && decimals < 6 &&
      std::fabs(std::round(step * std::pow(10, decimals)) - step * std::pow(10, decimals)) > 1e-9)
    ++decimals;
  if (std::fabs(v) < step * 1e-9) v = 0;  // no "-0.0"
  return fmt::format("{:.{}f}", v, decimals);
}

Axis nice_axis(double lo, double hi, int target_ticks, std::string label, bool integer) {
  Axis a;
  a.label = std::move(label);
  if (lo > hi) std::swap(lo, hi);
  if (!(hi - lo > 0)) {
    const double pad = lo == 0 ? 0.5 : std::fabs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  target_ticks = std::max(1, target_ticks);
  const double raw = (hi - lo) / target_ticks;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double frac = raw / mag;
  const double nice = frac <= 1 ? 1 : frac <= 2 ? 2 : frac <= 2.5 ? 2.5 : frac <= 5 ? 5 : 10;
  a.step = integer ? std::max(1.0, nice * mag) : nice * mag;
  a.lo = std::floor(lo / a.step + 1e-9) * a.step;
  a.hi = std::ceil(hi / a.step - 1e-9) * a.step;
  const int n = static_cast<int>(std::lround((a.hi - a.lo) / a.step));
  for (int i = 0; i <= n; ++i) a.ticks.push_back(a.lo + i * a.step);
  return a;
}

}  // namespace evomerge::report
