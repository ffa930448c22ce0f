#include "report/colours.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>

namespace evomerge::report {

std::string model_colour(size_t index) {
  static constexpr std::array<const char*, 7> kPalette = {
      "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000"};
  return kPalette[index % kPalette.size()];
}

std::string sequential_colour(double t) {
  if (std::isnan(t)) return "#bbbbbb";
  t = std::clamp(t, 0.0, 1.0);
  // #f7fbff -> #6baed6 -> #08306b (ColorBrewer "Blues" end points and middle).
  static constexpr int kStops[3][3] = {{0xf7, 0xfb, 0xff}, {0x6b, 0xae, 0xd6}, {0x08, 0x30, 0x6b}};
  const int seg = t < 0.5 ? 0 : 1;
  const double u = t < 0.5 ? t / 0.5 : (t - 0.5) / 0.5;
  int rgb[3];
  for (int c = 0; c < 3; ++c)
    rgb[c] =
        static_cast<int>(std::lround(kStops[seg][c] + u * (kStops[seg + 1][c] - kStops[seg][c])));
  return fmt::format("#{:02x}{:02x}{:02x}", rgb[0], rgb[1], rgb[2]);
}

}  // namespace evomerge::report
