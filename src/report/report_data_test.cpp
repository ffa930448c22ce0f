// The report's chart data on a small hand-made store: axes, scales, colours per model, the recipe
// heatmap, the layer path, the final bars and the paired difference, against hand-computed values.
#include "report/report_data.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "report/axis.h"
#include "report/colours.h"

namespace fs = std::filesystem;
using namespace evomerge;
using namespace evomerge::report;
using json = nlohmann::json;

namespace {

struct TempDir {
  fs::path path =
      fs::temp_directory_path() / ("evomerge-report-test-" + std::to_string(::getpid()));
  TempDir() { fs::remove_all(path); }
  ~TempDir() { fs::remove_all(path); }
};

json test_config() {
  return {{"seed", 1},
          {"tasks", {{{"file", "t.yaml"}, {"weight", 1.0}}}},
          {"test_split", "test"},
          {"ps",
           {{"base_model", "m/base"},
            {"models", {"m/math", "m/ja"}},
            {"weight", {0.0, 2.0}},
            {"density", {0.0, 1.0}},
            {"generations", 3},
            {"population", 2}}},
          {"dfs", {{"models", {"ps", "m/ja"}}, {"generations", 2}, {"population", 2}}}};
}

CandidateRecord cand(const std::string& phase, int64_t gen, int idx, double fitness, json params) {
  CandidateRecord c;
  c.phase = phase, c.generation = gen, c.index = idx, c.fitness = fitness;
  c.genome = {0.0};
  c.params = std::move(params);
  return c;
}

json ps_params(double w) {
  return {
      {"method", "task_arithmetic"},
      {"slots", {"layers[0,2)", "layers[2,4)"}},
      {"filters", {"*"}},
      {"models",
       {{{"model", "m/math"}, {"weight", {w, 0.5}}}, {{"model", "m/ja"}, {"weight", {2.0, 0.0}}}}}};
}

FinalResult row(FinalKind kind, const std::string& label, double score, std::vector<float> scores,
                json details) {
  FinalResult r;
  r.kind = kind, r.label = label, r.split = "test", r.score = score;
  r.ci_low = score - 0.1, r.ci_high = score + 0.1;
  r.details = std::move(details);
  r.items.push_back({"t", "test", {0, 1, 2, 3}, std::move(scores)});
  return r;
}

void fill_store(RunStore& store) {
  auto commit = [&](const std::string& phase, int64_t gen, std::vector<CandidateRecord> cs,
                    double sigma) {
    OptimiserState s;
    s.phase = phase, s.generation = gen, s.sigma = sigma, s.restart = 0, s.evaluations = gen * 2,
    s.wall_seconds = 1.5;
    store.commit_generation(cs, s);
  };
  commit("ps", 1, {cand("ps", 1, 0, 0.25, ps_params(1.0)), cand("ps", 1, 1, 0.5, ps_params(1.5))},
         0.3);
  commit("ps", 2, {cand("ps", 2, 0, 0.75, ps_params(0.5)), cand("ps", 2, 1, 0.25, ps_params(1.0))},
         0.2);
  store.set_phase_done("ps", {{"done", true}});
  const json path = {{"path", {{0, 0, 1.0}, {1, 2, 0.5}, {0, 3, 1.5}}}, {"length", 3}};
  commit("dfs", 1, {cand("dfs", 1, 0, 0.6, path), cand("dfs", 1, 1, 0.1, path)}, 0.5);
  store.set_phase_done("dfs", {{"done", true}});
  // Parents, the uniform merge, the evolved rows: PS is selected (opt 0.8 > 0.7) although PS+DFS
  // scores higher on the test split.
  store.add_final_result(
      row(FinalKind::Parent, "parent: base", 0.25, {0, 0, 1, 0}, {{"model", "m/base"}}));
  store.add_final_result(
      row(FinalKind::Parent, "parent: math", 0.5, {1, 0, 1, 0}, {{"model", "m/math"}}));
  store.add_final_result(row(FinalKind::Uniform, "uniform w=0.5", 0.5, {1, 1, 0, 0}, {}));
  store.add_final_result(row(FinalKind::EvolvedPs, "evolved PS", 0.75, {1, 1, 1, 0},
                             {{"opt_score", 0.8}, {"params", ps_params(0.5)}}));
  store.add_final_result(row(FinalKind::EvolvedPsDfs, "evolved PS+DFS", 1.0, {1, 1, 1, 1},
                             {{"opt_score", 0.7}, {"params", path}}));
  store.add_final_result(
      row(FinalKind::Finalist, "PS finalist", 0.25, {0, 1, 0, 0}, {{"opt_score", 0.6}}));
  store.add_artifact("recipe", "runs/x/ps_best.yml");
}

}  // namespace

TEST(ReportAxis, NiceRangesAndTicks) {
  const Axis a = nice_axis(0.23, 0.87, 5, "fitness");
  EXPECT_DOUBLE_EQ(a.step, 0.2);  // 0.64 / 5 = 0.128 -> 0.2
  EXPECT_NEAR(a.lo, 0.2, 1e-12);
  EXPECT_NEAR(a.hi, 1.0, 1e-12);
  ASSERT_EQ(a.ticks.size(), 5u);
  EXPECT_EQ(a.format(a.ticks[1]), "0.4");
  EXPECT_DOUBLE_EQ(a.map(0.6, 0, 100), 50.0);
  EXPECT_DOUBLE_EQ(a.map(0.2, 300, 100), 300.0);  // y axis: lo at the bottom
  const Axis g = nice_axis(1, 12, 6, "generation");
  EXPECT_DOUBLE_EQ(g.step, 2.0);
  EXPECT_EQ(g.format(10), "10");
  EXPECT_DOUBLE_EQ(nice_axis(1, 3, 6, "generation", /*integer=*/true).step, 1.0);  // not 0.5
  const Axis q = nice_axis(0, 1, 4, "x");
  EXPECT_DOUBLE_EQ(q.step, 0.25);
  EXPECT_EQ(q.format(0.75), "0.75");
  const Axis flat = nice_axis(0.5, 0.5, 4, "flat");  // one value: widened, still covers it
  EXPECT_LT(flat.lo, 0.5);
  EXPECT_GT(flat.hi, 0.5);
}

TEST(ReportColours, PaletteAndSequentialScale) {
  EXPECT_EQ(model_colour(0), "#0072B2");
  EXPECT_EQ(model_colour(1), "#E69F00");
  EXPECT_EQ(model_colour(7), model_colour(0));
  EXPECT_EQ(sequential_colour(0), "#f7fbff");
  EXPECT_EQ(sequential_colour(0.5), "#6baed6");
  EXPECT_EQ(sequential_colour(1), "#08306b");
  EXPECT_EQ(sequential_colour(2), "#08306b");
  EXPECT_EQ(sequential_colour(NAN), "#bbbbbb");
}

TEST(ReportData, ChartsFromASmallStore) {
  TempDir dir;
  RunInfo info;
  info.config = test_config();
  info.config_text = "seed: 1\n";
  info.seed = 1;
  info.evomerge_version = "test";
  {
    auto store = RunStore::open(dir.path, info);
    fill_store(store);
  }
  const auto store = RunStore::open_existing(dir.path);
  const ReportData d = build_report_data(store, dir.path);
  EXPECT_TRUE(d.complete);
  EXPECT_EQ(d.status, "complete");

  // Models in config order, one colour each; "ps" is the PS winner.
  ASSERT_EQ(d.models.size(), 4u);
  EXPECT_EQ(d.models[0].name, "base");
  EXPECT_EQ(d.models[1].colour, model_colour(1));
  EXPECT_EQ(d.models[3].ref, "ps");
  EXPECT_EQ(d.models[3].name, "PS winner");
  EXPECT_EQ(d.models[2].ref, "m/ja");

  // Fitness panels: PS gen 1 best 0.5 median 0.375, gen 2 best 0.75; sigma on the second axis.
  ASSERT_EQ(d.panels.size(), 2u);
  const auto& ps = d.panels[0];
  EXPECT_EQ(ps.phase, "ps");
  ASSERT_EQ(ps.series.size(), 4u);
  ASSERT_EQ(ps.series[0].points.size(), 2u);
  EXPECT_DOUBLE_EQ(ps.series[0].points[1].y, 0.75);
  EXPECT_DOUBLE_EQ(ps.series[1].points[0].y, 0.375);
  EXPECT_TRUE(ps.series[3].second_axis);
  EXPECT_DOUBLE_EQ(ps.series[3].points[1].y, 0.2);
  EXPECT_LE(ps.y.lo, 0.3125);  // the lowest drawn value: gen 1 q1
  EXPECT_GE(ps.y.hi, 0.75);
  EXPECT_DOUBLE_EQ(ps.y2.lo, 0.0);
  EXPECT_GE(ps.y2.hi, 0.3);
  ASSERT_EQ(ps.band.size(), 2u);
  EXPECT_DOUBLE_EQ(ps.band[0].second.first, 0.3125);  // q1 of {0.25, 0.5}
  EXPECT_DOUBLE_EQ(ps.band[0].second.second, 0.4375);

  // Heatmap of the evolved PS row: math weight [0.5, 0.5], ja [2, 0] within [0, 2].
  ASSERT_TRUE(d.heatmap);
  EXPECT_EQ(d.heatmap->source, "evolved PS");
  EXPECT_EQ(d.heatmap->columns, (std::vector<std::string>{"layers[0,2)", "layers[2,4)"}));
  ASSERT_EQ(d.heatmap->rows.size(), 2u);
  EXPECT_EQ(d.heatmap->rows[0].model, "math");
  EXPECT_EQ(d.heatmap->rows[0].model_colour, model_colour(1));
  EXPECT_EQ(d.heatmap->rows[1].fills[0], sequential_colour(1.0));
  EXPECT_EQ(d.heatmap->rows[1].fills[1], sequential_colour(0.0));
  EXPECT_EQ(d.heatmap->rows[0].fills[0], sequential_colour(0.25));

  // The layer path of the evolved PS+DFS row: model A (the PS winner) has 4 layers.
  ASSERT_TRUE(d.path);
  ASSERT_EQ(d.path->hops.size(), 3u);
  EXPECT_EQ(d.path->plain_layers, 4);
  EXPECT_EQ(d.path->hops[0].colour, model_colour(3));  // "ps"
  EXPECT_EQ(d.path->hops[1].colour, model_colour(2));  // m/ja
  EXPECT_DOUBLE_EQ(d.path->hops[2].scale, 1.5);
  EXPECT_DOUBLE_EQ(d.path->scale_axis.lo, 0.0);
  EXPECT_GE(d.path->scale_axis.hi, 1.5);

  // Final bars: finalists are not drawn; the winner is selected by opt_score, not test score.
  ASSERT_TRUE(d.final_chart);
  const auto& c = *d.final_chart;
  ASSERT_EQ(c.bars.size(), 5u);
  EXPECT_EQ(c.bars[1].colour, model_colour(1));
  EXPECT_EQ(c.bars[2].colour, "#999999");
  EXPECT_TRUE(c.bars[3].winner);
  EXPECT_FALSE(c.bars[4].winner);
  EXPECT_EQ(c.bars[3].colour, model_colour(3));
  EXPECT_GE(c.x.hi, 1.1);
  // Paired: evolved PS {1,1,1,0} minus best parent (math) {1,0,1,0}: diffs 0,1,0,0, mean 0.25,
  // sample variance 0.25, se = sqrt(0.25 / 4) = 0.25.
  ASSERT_TRUE(c.paired);
  EXPECT_EQ(c.paired->winner, "evolved PS");
  EXPECT_EQ(c.paired->parent, "parent: math");
  EXPECT_EQ(c.paired->items, 4u);
  EXPECT_DOUBLE_EQ(c.paired->diff, 0.25);
  EXPECT_NEAR(c.paired->hi - c.paired->diff, 1.959963984540054 * 0.25, 1e-12);
  EXPECT_LE(c.diff_axis.lo, c.paired->lo);

  // Top candidates across phases, best first; timings; the rebuild command names the recipe.
  ASSERT_GE(d.top.size(), 3u);
  EXPECT_DOUBLE_EQ(d.top[0].fitness, 0.75);
  EXPECT_EQ(d.top[0].recipe, "math: w 0.50 0.50; ja: w 2.00 0.00");
  EXPECT_EQ(d.top[1].recipe, "path A0 B2x0.50 A3x1.50");
  ASSERT_EQ(d.timings.size(), 2u);
  EXPECT_EQ(d.timings[0].generations, 2);
  EXPECT_EQ(d.timings[0].planned, 3);
  EXPECT_EQ(d.timings[0].evaluations, 4);
  EXPECT_DOUBLE_EQ(d.timings[0].wall_seconds, 3.0);
  bool rebuild = false;
  for (const auto& [what, cmd] : d.commands)
    rebuild = rebuild || cmd == "evomerge merge runs/x/ps_best.yml OUT_DIR";
  EXPECT_TRUE(rebuild);
}

TEST(ReportData, ARunningSearchShowsItsProgress) {
  TempDir dir;
  RunInfo info;
  info.config = test_config();
  info.seed = 1;
  {
    auto store = RunStore::open(dir.path, info);
    OptimiserState s;
    s.phase = "ps", s.generation = 1;
    store.commit_generation({cand("ps", 1, 0, 0.5, ps_params(1.0))}, s);
  }
  const auto d = build_report_data(RunStore::open_existing(dir.path), dir.path);
  EXPECT_FALSE(d.complete);
  EXPECT_EQ(d.status, "running: ps generation 1 of 3");
  EXPECT_EQ(d.generations_done, 1);
  EXPECT_EQ(d.generations_planned, 5);
  EXPECT_FALSE(d.final_chart);
  ASSERT_TRUE(d.heatmap);
  EXPECT_NE(d.heatmap->source.find("best ps candidate so far"), std::string::npos);
  EXPECT_FALSE(d.path);  // no DFS candidate yet
}
