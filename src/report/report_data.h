// What the run report shows, computed from the run store alone (no models, no task files): chart
// series with their axes and colours, the tables, the commands that reproduce the run. The HTML
// renderer (report/html.h) only draws this; tests check it against hand-computed values.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "report/axis.h"
#include "store/run_store.h"

namespace evomerge::report {

// A source model of the run, in config order: the PS base model, the PS models, then DFS's models
// ("ps" there is the PS winner, key "ps"). The colour is the model's in every chart.
struct ModelKey {
  std::string ref;   // as the config gives it ("ps": the PS winner)
  std::string name;  // short: the folder name, or "PS winner"
  std::string colour;
};

struct Point {
  double x = 0, y = 0;
};

struct Series {
  std::string name;  // "best", "median", "best so far", "sigma"
  std::string colour;
  std::vector<Point> points;
  bool second_axis = false;  // drawn against FitnessPanel::y2
  bool dashed = false;
};

// Fitness by generation of one phase: the population's best and median, its interquartile band,
// the best so far, and CMA-ES's sigma on a second axis; restarts marked.
struct FitnessPanel {
  std::string phase;  // "ps", "dfs"
  std::string title;
  Axis x, y, y2;
  std::vector<Series> series;
  std::vector<std::pair<double, std::pair<double, double>>> band;  // generation, (q1, q3)
  std::vector<int64_t> restarts;  // generations that started a new IPOP run
};

// The best PS recipe: one row per (model, parameter), one column per layer group (and filter).
struct HeatmapRow {
  std::string model;  // short name
  std::string model_colour;
  std::string param;  // "weight", "density", "t"
  std::vector<double> values;
  std::vector<std::string> fills;  // sequential colour of each value within the parameter's range
};
struct Heatmap {
  std::string source;  // which candidate: "evolved PS (ps #1 ...)" or "best PS candidate ..."
  std::vector<std::string> columns;  // "layers[0,4)", "layers[0,4)/mlp", "embed", ...
  std::vector<HeatmapRow> rows;
  std::vector<std::pair<std::string, std::pair<double, double>>> ranges;  // param -> its bounds
};

// The DFS layer path: hop k runs layer `layer` of model `model` with its input scaled by `scale`.
struct PathHop {
  int model = 0;
  int layer = 0;
  double scale = 1;
  std::string colour;
};
struct PathDiagram {
  std::string source;
  std::vector<ModelKey> models;  // DFS model index -> key
  std::vector<PathHop> hops;
  int plain_layers = 0;  // model A's own path: layers 0 .. plain_layers-1
  Axis scale_axis;       // the scales' range (bar heights)
};

// The final table on the held-out split as bars with 95% intervals.
struct Bar {
  std::string label;
  FinalKind kind = FinalKind::Parent;
  std::string colour;  // parents: their model's; uniform grey; evolved rows their own
  double score = 0, lo = 0, hi = 0;
  bool winner = false;  // the evolved row selected on the optimisation split
};
// Winner minus best parent on the same items of the held-out split (paired).
struct PairedComparison {
  std::string winner, parent;
  double diff = 0, lo = 0, hi = 0;
  size_t items = 0;
};
struct FinalChart {
  std::string split;
  Axis x;  // score axis
  std::vector<Bar> bars;
  std::optional<PairedComparison> paired;
  Axis diff_axis;  // covers 0 and the paired interval
};

struct TopCandidate {
  std::string phase;
  int64_t generation = 0;
  int index = 0;
  double fitness = 0;
  std::string recipe;  // compact decoded recipe
};

struct PhaseTiming {
  std::string phase;
  int64_t generations = 0, planned = 0, evaluations = 0;
  double wall_seconds = 0;  // evaluation wall time (sum over generations that recorded it)
  double eval_seconds = 0, merge_seconds = 0;  // summed over candidates
  bool done = false;
};

struct ReportData {
  std::filesystem::path run_dir;
  RunInfo info;
  bool complete = false;  // the final table is written
  std::string status;     // "complete", "running: ps generation 3 of 12", ...
  std::vector<ModelKey> models;
  std::vector<FitnessPanel> panels;
  std::optional<Heatmap> heatmap;
  std::optional<PathDiagram> path;
  std::optional<FinalChart> final_chart;
  std::vector<FinalResult> final_rows;  // the stored final table, per-item results left out
  std::vector<TopCandidate> top;
  std::vector<PhaseTiming> timings;
  std::vector<std::pair<std::string, std::string>> commands;  // (what, shell command)
  std::vector<std::pair<std::string, std::string>> artifacts;
  int64_t generations_done = 0, generations_planned = 0;  // over all phases (progress of --watch)
};

struct ReportOptions {
  size_t top_candidates = 10;
};

ReportData build_report_data(const RunStore& store, const std::filesystem::path& run_dir,
                             const ReportOptions& options = {});

}  // namespace evomerge::report
