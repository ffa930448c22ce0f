// Chart axes: a "nice" range and ticks (steps of 1, 2 or 5 times a power of ten) around the data,
// and the linear map from data values to pixels.
#pragma once

#include <string>
#include <vector>

namespace evomerge::report {

struct Axis {
  double lo = 0, hi = 1;      // the drawn range; covers the data
  std::vector<double> ticks;  // from lo to hi inclusive, evenly spaced by `step`
  double step = 0.2;
  std::string label;
  // Pixel position of v when lo is drawn at p0 and hi at p1 (p1 < p0 for a y axis).
  double map(double v, double p0, double p1) const;
  // A tick's text with as many decimals as the step needs ("0.25", "10").
  std::string format(double v) const;
};

// An axis covering [lo, hi] (either order; NaN and infinite values ignored by the caller) with
// about `target_ticks` intervals. A zero-width range is widened to a unit around the value.
// `integer`: steps of at least 1 (generations).
Axis nice_axis(double lo, double hi, int target_ticks, std::string label, bool integer = false);

}  // namespace evomerge::report
