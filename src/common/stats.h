// Order statistics of small samples (a generation's fitness values, chart axes).
#pragma once

#include <vector>

namespace evomerge {

// The p-quantile (p in [0, 1]) of `values` by linear interpolation between order statistics
// (Hyndman & Fan type 7, numpy's default): the median of an even sample is the mean of the middle
// two, as in CMA-ES's own generation summary. NaN for an empty sample; NaNs in `values` are
// ignored.
double quantile(std::vector<double> values, double p);

}  // namespace evomerge
