// The report's SVG charts, one function each (internal to the report stage; html.cpp lays them
// out). Every drawn data point carries class "pt" so tests can count them in the DOM.
#pragma once

#include <string>

#include "report/report_data.h"

namespace evomerge::report {

std::string fitness_svg(const FitnessPanel& panel);
std::string heatmap_svg(const Heatmap& heatmap);
std::string path_svg(const PathDiagram& path);
std::string final_svg(const FinalChart& chart);
std::string paired_svg(const FinalChart& chart);  // empty without a paired comparison

}  // namespace evomerge::report
