// Colours of the report: one per source model (the same model has the same colour in every chart),
// and a sequential scale for heatmap cells.
#pragma once

#include <cstddef>
#include <string>

namespace evomerge::report {

// Okabe & Ito's colour-blind-safe palette without its yellow (too light on white): blue, orange,
// green, pink, sky blue, vermillion, black; model i gets entry i mod 7.
std::string model_colour(size_t index);

// t in [0, 1] (clamped; NaN: grey) from near-white to dark blue, linear in sRGB between 3 stops.
std::string sequential_colour(double t);

}  // namespace evomerge::report
