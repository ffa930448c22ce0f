// End-to-end: a real small search (`evomerge evolve` on tiny generated models) and its report,
// checked as a file (self-contained: no scripts, no fetches) and as a page in headless Chromium
// over the DevTools protocol (tests/report/check_report.js): no console errors, every chart has the
// data points the store says it should, and the screenshot is not blank. Skips, saying why, where
// Chromium or Node is missing (scripts/setup.sh installs both).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "infer/random_model.h"
#include "io/test_support.h"
#include "report/report_data.h"
#include "test_support.h"
#include "tokenize/test_support.h"

namespace evomerge {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using testing::read_bytes;
using testing::TempDir;

using testing::evomerge_cli;
using testing::run_shell;

std::string which(const char* program) {
  for (const char* dir : {"/usr/bin", "/usr/local/bin", "/bin"}) {
    const fs::path p = fs::path(dir) / program;
    if (fs::exists(p)) return p.string();
  }
  return "";
}

// Three tiny Llama models (base and two "fine-tunes"), a multiple-choice task, a PS+DFS config.
void make_inputs(const fs::path& dir) {
  for (auto [name, seed] : {std::pair{"base", 1}, {"ft1", 2}, {"ft2", 3}}) {
    RandomModelSpec spec;
    spec.config = small_model_config("llama", 99, 32, 64, 3, 4, 2);
    spec.config["max_position_embeddings"] = 64;
    spec.config["bos_token_id"] = 97;
    spec.config["eos_token_id"] = 98;
    spec.seed = seed;
    spec.stddev = 0.3f;
    write_random_model(dir / name, spec);
    testing_util::write_char_tokenizer(dir / name);
  }
  for (const char* split : {"opt", "test"}) {
    std::ofstream out(dir / fmt::format("mc.{}.jsonl", split));
    const char* qs[] = {"sky is", "fire is", "ice is", "grass is",
                        "sun is", "snow is", "sea is", "coal is"};
    for (int i = 0; i < 8; ++i)
      out << fmt::format(
                 R"({{"q": "{} {}", "choices": ["blue", "hot", "cold", "green"], "label": {}}})",
                 split, qs[i], (i * 3 + split[0]) % 4)
          << "\n";
  }
  std::ofstream(dir / "mc.yaml")
      << "task: mc\ndataset_path: json\ndataset_kwargs: {data_files: {opt: mc.opt.jsonl, test: "
         "mc.test.jsonl}}\ntest_split: test\noutput_type: multiple_choice\n"
         "doc_to_text: \"Q: {{q}}\\nA:\"\ndoc_to_target: \"{{label}}\"\n"
         "doc_to_choice: \"{{choices}}\"\nmetric_list: [{metric: acc}]\n";
  std::ofstream(dir / "run.yml")
      << "seed: 3\ntasks: [{file: mc.yaml, weight: 1}]\nitems_per_generation: 6\nthreads: 1\n"
         "ps:\n  method: task_arithmetic\n  base_model: base\n  models: [ft1, ft2]\n"
         "  layer_groups: 3\n  weight: [0, 1.5]\n  population: 4\n  generations: 3\n"
         "dfs:\n  models: [ps, ft2]\n  repeats: 2\n  population: 4\n  generations: 2\n"
         "final: {top: 1, uniform_grid: [0.5], export_models: false}\n";
}

// The data points each chart should draw, from the same store the page was made from.
std::map<std::string, int> expected_points(const fs::path& run_dir) {
  const auto d = report::build_report_data(RunStore::open_existing(run_dir), run_dir);
  std::map<std::string, int> n;
  for (const auto& p : d.panels)
    for (const auto& s : p.series) n["fitness-" + p.phase] += static_cast<int>(s.points.size());
  if (d.heatmap)
    for (const auto& r : d.heatmap->rows) n["recipe-heatmap"] += static_cast<int>(r.values.size());
  if (d.path) n["dfs-path"] = static_cast<int>(d.path->hops.size());
  if (d.final_chart) {
    n["final"] = static_cast<int>(d.final_chart->bars.size());
    if (d.final_chart->paired) n["paired"] = 1;
  }
  return n;
}

TEST(ReportCli, EvolveWritesASelfContainedReportThatChromiumRenders) {
  TempDir dir("report-e2e");
  make_inputs(dir.path());
  const fs::path run_dir = dir.path() / "run";
  const auto evolve = run_shell(fmt::format("cd '{}' && '{}' -q evolve run.yml --run run --json",
                                            dir.path().string(), EVOMERGE_CLI),
                                dir.path());
  ASSERT_EQ(evolve.status, 0) << evolve.err;
  const json result = json::parse(evolve.out);
  EXPECT_TRUE(result["complete"].get<bool>());
  EXPECT_EQ(result["table"][0]["kind"], "parent");
  EXPECT_TRUE(fs::exists(run_dir / "report.html"));
  EXPECT_TRUE(fs::exists(run_dir / "results.md"));

  // `evomerge report` writes the same page elsewhere; it is self-contained.
  const fs::path page = dir.path() / "page.html";
  const auto rep = evomerge_cli(
      fmt::format("report --run '{}' -o '{}' --json", run_dir.string(), page.string()), dir);
  ASSERT_EQ(rep.status, 0) << rep.err;
  EXPECT_EQ(json::parse(rep.out)["status"], "complete");
  const std::string html = read_bytes(page);
  // The final table as a table (the formatter of results.md), and results.md among the files.
  EXPECT_NE(html.find("<h3>Final table</h3>\n<table><tr><th>model</th><th>split</th>"),
            std::string::npos);
  EXPECT_NE(html.find(fmt::format("<li>results: <code>{}</code></li>",
                                  (run_dir / "results.md").string())),
            std::string::npos);
  EXPECT_EQ(
      read_bytes(run_dir / "results.md").rfind("# evomerge evolve: final table\n\n| model |", 0),
      0u);
  for (const char* banned : {"<script", "<link", "src=", "url(", "https://", "@import"})
    EXPECT_EQ(html.find(banned), std::string::npos) << banned;
  const auto expected = expected_points(run_dir);
  for (const char* chart :
       {"fitness-ps", "fitness-dfs", "recipe-heatmap", "dfs-path", "final", "paired"})
    EXPECT_GT(expected.count(chart) ? expected.at(chart) : 0, 0)
        << chart << " has no data in the store";

  const std::string chromium = which("chromium"), node = which("node");
  if (chromium.empty() || node.empty())
    GTEST_SKIP() << "headless check skipped: " << (chromium.empty() ? "chromium" : "node")
                 << " is not installed (scripts/setup.sh installs Debian's chromium and nodejs)";
  const fs::path png = fs::temp_directory_path() / "evomerge-report-e2e.png";
  const auto check =
      run_shell(fmt::format("'{}' '{}/tests/report/check_report.js' '{}' '{}' '{}' '{}'", node,
                            EVOMERGE_SOURCE_DIR, chromium, page.string(), png.string(),
                            (dir.path() / "profile").string()),
                dir.path());
  ASSERT_EQ(check.status, 0) << check.out << check.err;
  const json page_state = json::parse(check.out);
  EXPECT_TRUE(page_state["errors"].empty()) << page_state["errors"].dump();
  for (const auto& [chart, n] : expected) {
    ASSERT_TRUE(page_state["charts"].contains(chart))
        << chart << " missing from the page: " << page_state["charts"].dump();
    EXPECT_EQ(page_state["charts"][chart].get<int>(), n) << chart;
  }
  EXPECT_EQ(page_state["width"].get<int>(), 1200);
  EXPECT_GT(page_state["height"].get<int>(), 1500);
  EXPECT_GT(page_state["inked"].get<double>(), 0.02) << "screenshot nearly blank: " << png;
  std::fprintf(stderr, "report screenshot: %s\n", png.c_str());
}

TEST(CliUsage, SuggestsTheClosestSubcommandOrOptionAndTakesQuietAnywhere) {
  TempDir dir("cli-usage");
  const auto sub = evomerge_cli("evolv x.yml --run r", dir);
  EXPECT_EQ(sub.status, 2);
  EXPECT_NE(sub.err.find("did you mean 'evolve'?"), std::string::npos) << sub.err;
  const auto flag = evomerge_cli("report --run r --wach", dir);
  EXPECT_EQ(flag.status, 2);
  EXPECT_NE(flag.err.find("did you mean '--watch'?"), std::string::npos) << flag.err;
  const auto far = evomerge_cli("frobnicate", dir);
  EXPECT_EQ(far.status, 2);
  EXPECT_EQ(far.err.find("did you mean"), std::string::npos) << far.err;
  // -q before and after the subcommand parse alike (here both reach the same missing-run error).
  const auto before =
      evomerge_cli(fmt::format("-q report --run '{}'", (dir.path() / "none").string()), dir);
  const auto after =
      evomerge_cli(fmt::format("report -q --run '{}'", (dir.path() / "none").string()), dir);
  EXPECT_EQ(before.status, 1);
  EXPECT_EQ(after.status, 1);
  EXPECT_NE(after.err.find("no run database here"), std::string::npos) << after.err;
}

}  // namespace
}  // namespace evomerge
