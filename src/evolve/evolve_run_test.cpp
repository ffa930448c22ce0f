#include "evolve/evolve_run.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <stdexcept>

#include "common/error.h"
#include "common/progress.h"
#include "eval/scorer.h"
#include "evolve/pareto.h"
#include "evolve/search_context.h"
#include "evolve/test_support.h"
#include "evolve/work.h"
#include "infer/engine.h"
#include "io/files.h"
#include "merge/config.h"
#include "merge/merge.h"
#include "tokenize/tokenizer.h"

namespace fs = std::filesystem;
using namespace evomerge;
using json = nlohmann::json;

namespace {

class EvolveRunTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    Progress::set_global_enabled(false);
    dir_ = new fs::path(fs::temp_directory_path() /
                        ("evomerge_evolve_run_test_" + std::to_string(::getpid())));
    testing_util::write_evolve_fixture(*dir_);
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
  }
  static std::string config_text(int ps_generations = 2) {
    return testing_util::evolve_fixture_config(ps_generations);
  }
  static EvolveSummary run(const fs::path& run_dir, int64_t stop_after = 0,
                           int ps_generations = 2) {
    const auto text = config_text(ps_generations);
    EvolveRunOptions o;
    o.run_dir = run_dir;
    o.config_text = text;
    o.stop_after_generations = stop_after;
    o.progress = false;
    o.log = [](const std::string&) {};
    return run_evolve(parse_evolve_config(text, (*dir_ / "run.yml").string(), *dir_), o);
  }
  static EvolveRunOptions options(const fs::path& run_dir, std::vector<std::string>* lines) {
    EvolveRunOptions o;
    o.run_dir = run_dir;
    o.config_text = config_text();
    o.progress = false;
    o.log = [lines](const std::string& l) { lines->push_back(l); };
    return o;
  }
  static EvolveConfig config() {
    return parse_evolve_config(config_text(), (*dir_ / "run.yml").string(), *dir_);
  }
  static fs::path* dir_;
};
fs::path* EvolveRunTest::dir_ = nullptr;

// One call of the work runner: the split and the distinct candidates of its jobs, in order.
struct RunnerCall {
  SplitKind split;
  std::vector<CandidateRef> candidates;
  bool operator==(const RunnerCall&) const = default;
};

// Scores in this process and records every call. With `kill_at` >= 0 it throws instead of running
// call number `kill_at`: what a SIGKILL at that moment leaves (what was stored before it is kept,
// the call in progress is lost).
class RecordingRunner : public WorkRunner {
 public:
  explicit RecordingRunner(const SearchContext& ctx, int64_t kill_at = -1, size_t slots = 1)
      : local_(ctx), kill_at_(kill_at), slots_(slots) {}
  size_t slots() const override { return slots_; }
  std::vector<JobResult> run(const std::vector<ScoreJob>& jobs) override {
    if (static_cast<int64_t>(calls.size()) == kill_at_) throw std::runtime_error("killed");
    RunnerCall call{jobs.empty() ? SplitKind::Opt : jobs[0].split, {}};
    for (const auto& j : jobs)
      if (std::find(call.candidates.begin(), call.candidates.end(), j.candidate) ==
          call.candidates.end())
        call.candidates.push_back(j.candidate);
    calls.push_back(std::move(call));
    return local_.run(jobs);
  }
  std::vector<RunnerCall> calls;

 private:
  LocalRunner local_;
  int64_t kill_at_;
  size_t slots_;
};

}  // namespace

TEST_F(EvolveRunTest, PsThenDfsWritesTableRecipeAndModels) {
  const fs::path run_dir = *dir_ / "run_full";
  const auto s = run(run_dir);
  ASSERT_TRUE(s.complete);
  ASSERT_TRUE(s.ps && s.dfs);
  EXPECT_EQ(s.ps->generations, 2);
  EXPECT_EQ(s.dfs->generations, 2);
  // parents (base, ft1, ft2), the uniform merge, evolved PS, evolved PS+DFS, then the finalists
  // that were not selected (top 1 + the distribution mean per phase, + the DFS start: the ones
  // distinct from the winner)
  ASSERT_GE(s.table.size(), 7u);
  ASSERT_LE(s.table.size(), 9u);
  for (size_t i = 6; i < s.table.size(); ++i)
    EXPECT_NE(s.table[i].label.find("(not selected)"), std::string::npos) << s.table[i].label;
  EXPECT_EQ(s.table[0].label, "parent: base");
  EXPECT_NE(s.table[3].label.find("uniform"), std::string::npos);
  EXPECT_NE(s.table[4].label.find("evolved PS"), std::string::npos);
  EXPECT_NE(s.table[5].label.find("evolved PS+DFS"), std::string::npos);
  // The row kinds are data (reports draw from them), the labels are for people.
  const FinalKind kinds[] = {FinalKind::Parent,  FinalKind::Parent,    FinalKind::Parent,
                             FinalKind::Uniform, FinalKind::EvolvedPs, FinalKind::EvolvedPsDfs};
  for (size_t i = 0; i < 6; ++i) EXPECT_EQ(s.table[i].kind, kinds[i]) << s.table[i].label;
  EXPECT_EQ(s.table[4].phase, "ps");
  EXPECT_EQ(s.table[5].phase, "dfs");
  for (size_t i = 6; i < s.table.size(); ++i) EXPECT_EQ(s.table[i].kind, FinalKind::Finalist);
  // Every final row keeps its per-item results on the whole test split (8 items), in item order.
  const auto rows = RunStore::open_existing(run_dir).final_results(/*with_items=*/true);
  ASSERT_EQ(rows.size(), s.table.size());
  for (const auto& r : rows) {
    ASSERT_EQ(r.items.size(), 1u) << r.label;
    EXPECT_EQ(r.items[0].items, (std::vector<int32_t>{0, 1, 2, 3, 4, 5, 6, 7})) << r.label;
    double correct = 0;
    for (float v : r.items[0].scores) correct += v;
    EXPECT_DOUBLE_EQ(correct / 8, r.score) << r.label;
  }
  // One summary row per generation, with its evaluation wall time.
  const auto gens = RunStore::open_existing(run_dir).generations("ps");
  ASSERT_EQ(gens.size(), 2u);
  EXPECT_EQ(gens[1].evaluations, 8);  // 2 generations of 4
  EXPECT_GT(gens[0].wall_seconds, 0.0);
  EXPECT_GT(gens[0].sigma, 0.0);
  for (const auto& r : s.table) {
    EXPECT_EQ(r.split, "test");
    EXPECT_GE(r.score, 0.0);
    EXPECT_LE(r.score, 1.0);
    EXPECT_LE(r.ci_low, r.score);
    EXPECT_GE(r.ci_high, r.score);
  }
  // One winner, chosen on opt; PS+DFS is never worse than its start (the PS winner) there, since
  // the DFS start is one of its finalists.
  int winners = 0;
  for (const auto& r : s.table) winners += r.details.value("winner", false);
  EXPECT_EQ(winners, 1);
  EXPECT_GE(s.table[5].details["opt_score"].get<double>(),
            s.table[4].details["opt_score"].get<double>());
  const bool ps_won = s.table[4].details["winner"].get<bool>();
  EXPECT_NE(s.table[ps_won ? 4 : 5].label.find("[winner on opt]"), std::string::npos);
  // The winner's paired differences on the test items, against the best parent and the best
  // uniform merge, kept in its row (results.md is written from them by the report stage).
  const json& paired = s.table[ps_won ? 4 : 5].details["paired"];
  EXPECT_TRUE(paired.contains("uniform dare_ties w=0.5")) << paired.dump();
  EXPECT_EQ(paired.size(), 2u) << paired.dump();
  for (const auto& [label, d] : paired.items()) {
    EXPECT_LE(d["ci"][0].get<double>(), d["difference"].get<double>()) << label;
    EXPECT_GE(d["ci"][1].get<double>(), d["difference"].get<double>()) << label;
    EXPECT_GT(d["items"].get<int64_t>(), 0) << label;
  }
  // The recipe is a mergekit config the merge engine accepts.
  const auto recipe = parse_merge_config(read_text_file(run_dir / "ps_best.yml"), "ps_best.yml");
  EXPECT_EQ(recipe.merge_method, "dare_ties");
  EXPECT_TRUE(fs::exists(run_dir / "ps_best_model" / "config.json"));
  const auto dfs_cfg = json::parse(read_text_file(run_dir / "dfs_best_model" / "config.json"));
  EXPECT_GE(dfs_cfg["num_hidden_layers"].get<int>(), 2);
  EXPECT_TRUE(fs::exists(run_dir / "dfs_best_model" / "tokenizer.json"));
  // recipe, model, dfs-model (results.md and report.html are the report stage's)
  EXPECT_EQ(s.artifacts.size(), 3u);
  EXPECT_FALSE(fs::exists(run_dir / "results.md"));
}

TEST_F(EvolveRunTest, ExportedRecipeAndModelRescoreToTheStoredScore) {
  // What the table reports for the evolved PS model is exactly what the exported folder and the
  // exported recipe (rebuilt with the run's DARE seed) score: same dtype, same arithmetic.
  const fs::path run_dir = *dir_ / "run_honest";
  const auto s = run(run_dir);
  ASSERT_TRUE(s.complete);
  const auto row = std::find_if(s.table.begin(), s.table.end(), [](const FinalResult& r) {
    return r.label.rfind("evolved PS (", 0) == 0;
  });
  ASSERT_NE(row, s.table.end());
  const std::string recipe_text = read_text_file(run_dir / "ps_best.yml");
  EXPECT_NE(recipe_text.find("out_dtype: float32"), std::string::npos) << recipe_text;
  EXPECT_NE(recipe_text.find("--random-seed 3"), std::string::npos) << recipe_text;
  const fs::path rebuilt = *dir_ / "honest_rebuilt";
  MergeOptions mo;
  mo.random_seed = 3;  // the run's seed, as the recipe's header says
  mo.progress = false;
  merge_to_folder(parse_merge_config(recipe_text, "ps_best.yml"), rebuilt, mo, {});
  const eval::Scorer scorer({{*dir_ / "mc.yaml", 1.0}}, "test");
  for (const auto& folder : {run_dir / "ps_best_model", rebuilt}) {
    EngineOptions eo;
    eo.threads = 1;
    Engine engine(open_folder_weights(folder.string()), eo);
    const Tokenizer tok = Tokenizer::load(folder);
    eval::ScoreOptions so;
    so.micro_batch = 16;
    const auto rep = scorer.score({&engine, &tok, {}, {}}, {}, so);
    EXPECT_EQ(rep.total, row->score) << folder;
  }
}

TEST_F(EvolveRunTest, InterruptedRunResumesToTheSameResult) {
  const auto full = run(*dir_ / "run_a");
  const fs::path b = *dir_ / "run_b";
  int calls = 0;
  EvolveSummary s;
  do {
    s = run(b, 1);
    ++calls;
  } while (!s.complete && calls < 10);
  ASSERT_TRUE(s.complete);
  EXPECT_GE(calls, 3);  // PS and DFS each paused after every generation
  const auto ca = RunStore::open_existing(*dir_ / "run_a").candidates("dfs");
  const auto cb = RunStore::open_existing(b).candidates("dfs");
  ASSERT_EQ(ca.size(), cb.size());
  for (size_t i = 0; i < ca.size(); ++i) EXPECT_EQ(ca[i].genome, cb[i].genome);
  ASSERT_EQ(full.table.size(), s.table.size());
  for (size_t i = 0; i < s.table.size(); ++i) {
    EXPECT_EQ(full.table[i].label, s.table[i].label);
    EXPECT_EQ(full.table[i].score, s.table[i].score);
  }
}

// A finished run run again: the table and artifacts come from the store; nothing is scored (no
// finalist or final-row lines in the log) and the artifacts are not recorded twice.
TEST_F(EvolveRunTest, FinishedRunAnswersFromTheStore) {
  const fs::path run_dir = *dir_ / "run_done";
  const auto first = run(run_dir);
  ASSERT_TRUE(first.complete);
  const auto text = config_text();
  EvolveRunOptions o;
  o.run_dir = run_dir;
  o.config_text = text;
  o.progress = false;
  std::vector<std::string> lines;
  o.log = [&](const std::string& l) { lines.push_back(l); };
  const SearchContext ctx = build_search_context(config());
  RecordingRunner runner(ctx);
  const auto again = run_evolve_with(ctx, runner, o);
  ASSERT_TRUE(again.complete);
  EXPECT_TRUE(runner.calls.empty());  // nothing scored
  ASSERT_EQ(again.table.size(), first.table.size());
  for (size_t i = 0; i < again.table.size(); ++i) {
    EXPECT_EQ(again.table[i].label, first.table[i].label);
    EXPECT_EQ(again.table[i].score, first.table[i].score);
  }
  EXPECT_EQ(again.artifacts, first.artifacts);
  for (const auto& l : lines) {
    EXPECT_EQ(l.find("[final]"), std::string::npos) << l;
    EXPECT_EQ(l.find("finalist"), std::string::npos) << l;
  }
  ASSERT_FALSE(lines.empty());
  EXPECT_NE(lines.back().find("is finished; its table from the store"), std::string::npos);
}

// With several slots (MPI ranks) the final table's rows are scored in groups of as many rows as
// there are slots, so that each rank can score a whole row (one merge) instead of every rank
// merging every row; the table is the one-slot table, per-item results included.
TEST_F(EvolveRunTest, SeveralSlotsScoreTheFinalRowsInGroupsWithTheSameTable) {
  const EvolveConfig cfg = config();
  const SearchContext ctx = build_search_context(cfg);
  RecordingRunner one(ctx), three(ctx, -1, 3);
  std::vector<std::string> log;
  ASSERT_TRUE(run_evolve_with(ctx, one, options(*dir_ / "slots_1", &log)).complete);
  ASSERT_TRUE(run_evolve_with(ctx, three, options(*dir_ / "slots_3", &log)).complete);
  auto test_call_sizes = [](const RecordingRunner& r) {
    std::vector<size_t> sizes;
    for (const auto& c : r.calls)
      if (c.split == SplitKind::Test) sizes.push_back(c.candidates.size());
    return sizes;
  };
  const auto rows = RunStore::open_existing(*dir_ / "slots_1").final_results(/*with_items=*/true);
  ASSERT_GE(rows.size(), 4u);
  EXPECT_EQ(test_call_sizes(one), std::vector<size_t>(rows.size(), 1));
  std::vector<size_t> groups(rows.size() / 3, 3);
  if (rows.size() % 3) groups.push_back(rows.size() % 3);
  EXPECT_EQ(test_call_sizes(three), groups);
  const auto grouped =
      RunStore::open_existing(*dir_ / "slots_3").final_results(/*with_items=*/true);
  ASSERT_EQ(grouped.size(), rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    EXPECT_EQ(grouped[i].label, rows[i].label);
    EXPECT_EQ(grouped[i].score, rows[i].score) << rows[i].label;
    EXPECT_EQ(grouped[i].details, rows[i].details) << rows[i].label;
    ASSERT_EQ(grouped[i].items.size(), rows[i].items.size());
    for (size_t t = 0; t < rows[i].items.size(); ++t)
      EXPECT_EQ(grouped[i].items[t].scores, rows[i].items[t].scores);
  }
}

// A kill in the final stage (while the finalists are scored on the selection items, or in the
// middle of the final table): the resumed run scores exactly what the killed one had not (the
// killed run's calls then the resumed run's are the uninterrupted run's calls, nothing twice) and
// ends with the uninterrupted table (scores, intervals, details, per-item results).
TEST_F(EvolveRunTest, KillInTheFinalStageResumesWithoutScoringAnythingTwice) {
  const EvolveConfig cfg = config();
  const SearchContext ctx = build_search_context(cfg);
  std::vector<std::string> log;
  RecordingRunner full(ctx);
  const fs::path ref = *dir_ / "final_ref";
  ASSERT_TRUE(run_evolve_with(ctx, full, options(ref, &log)).complete);
  // Where to kill: the second single-candidate selection call (a PS finalist: the first is
  // stored), and the fourth final-table row on the test split.
  int64_t second_finalist = -1, fourth_row = -1;
  for (int64_t i = 0, single_opt = 0, test = 0; i < static_cast<int64_t>(full.calls.size()); ++i) {
    const auto& c = full.calls[static_cast<size_t>(i)];
    if (c.split == SplitKind::Opt && c.candidates.size() == 1 && ++single_opt == 2)
      second_finalist = i;
    if (c.split == SplitKind::Test && ++test == 4) fourth_row = i;
  }
  ASSERT_GT(second_finalist, 0);
  ASSERT_GT(fourth_row, second_finalist);
  const auto expected = RunStore::open_existing(ref).final_results(/*with_items=*/true);

  for (const int64_t kill_at : {second_finalist, fourth_row}) {
    SCOPED_TRACE(kill_at == second_finalist ? "killed at a finalist" : "killed at a final row");
    const fs::path dir = *dir_ / fmt::format("final_kill_{}", kill_at);
    RecordingRunner killed(ctx, kill_at);
    EXPECT_THROW(run_evolve_with(ctx, killed, options(dir, &log)), std::runtime_error);
    if (kill_at == fourth_row) {
      EXPECT_EQ(RunStore::open_existing(dir).final_results().size(), 3u);
    }
    std::vector<std::string> resumed_log;
    RecordingRunner resumed(ctx);
    ASSERT_TRUE(run_evolve_with(ctx, resumed, options(dir, &resumed_log)).complete);
    auto calls = killed.calls;
    calls.insert(calls.end(), resumed.calls.begin(), resumed.calls.end());
    EXPECT_EQ(calls, full.calls);
    const auto reused = std::count_if(resumed_log.begin(), resumed_log.end(), [](const auto& l) {
      return l.find("(from the store)") != std::string::npos;
    });
    // Every single-candidate call the killed run finished (a finalist, a uniform-grid point, a
    // final row) is read back, not scored.
    EXPECT_EQ(reused, std::count_if(killed.calls.begin(), killed.calls.end(),
                                    [](const RunnerCall& c) { return c.candidates.size() == 1; }));

    const auto rows = RunStore::open_existing(dir).final_results(/*with_items=*/true);
    ASSERT_EQ(rows.size(), expected.size());
    for (size_t i = 0; i < rows.size(); ++i) {
      EXPECT_EQ(rows[i].label, expected[i].label);
      EXPECT_EQ(rows[i].task_scores, expected[i].task_scores);
      EXPECT_EQ(rows[i].score, expected[i].score) << rows[i].label;
      EXPECT_EQ(rows[i].ci_low, expected[i].ci_low);
      EXPECT_EQ(rows[i].ci_high, expected[i].ci_high);
      EXPECT_EQ(rows[i].details, expected[i].details) << rows[i].label;
      ASSERT_EQ(rows[i].items.size(), expected[i].items.size());
      for (size_t t = 0; t < rows[i].items.size(); ++t) {
        EXPECT_EQ(rows[i].items[t].items, expected[i].items[t].items);
        EXPECT_EQ(rows[i].items[t].scores, expected[i].items[t].scores);
      }
    }
    // results.md is made from exactly these rows by the report stage (report/final_table.h);
    // kill_test compares the files of killed and uninterrupted runs through the binary.
  }
}

TEST_F(EvolveRunTest, RefusesAFolderMadeByAnotherConfig) {
  const fs::path run_dir = *dir_ / "run_c";
  run(run_dir, 1);
  try {
    run(run_dir, 1, /*ps_generations=*/3);
    FAIL() << "expected a refusal";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/ps/generations"), std::string::npos) << e.what();
  }
}

TEST_F(EvolveRunTest, BadInputsFailBeforeWork) {
  auto bad = [&](const std::string& text, const std::string& needle) {
    EvolveRunOptions o;
    o.run_dir = *dir_ / "never";
    o.progress = false;
    o.log = [](const std::string&) {};
    try {
      run_evolve(parse_evolve_config(text, "bad.yml", *dir_), o);
      FAIL() << "no error for " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
    EXPECT_FALSE(fs::exists(*dir_ / "never"));
  };
  bad("tasks: [mc.yaml]\nopt_split: train\nps: {base_model: base, models: [ft1]}\n",
      "no split 'train'");
  bad("tasks: [missing.yaml]\nps: {base_model: base, models: [ft1]}\n", "missing.yaml");
  bad("tasks: [mc.yaml]\nps: {base_model: base, models: [nowhere]}\n", "nowhere");
  // The genome's range check names the config file too (it used to name only the field).
  bad("tasks: [mc.yaml]\nps: {base_model: base, models: [ft1], layer_groups: 65536}\n",
      "[evolve] bad.yml: ps.layer_groups: 65536 is not in [1, ");
}

TEST_F(EvolveRunTest, ValidationItemsSelectTheWinnerAndAreNeverSearched) {
  const std::string text = R"(seed: 4
tasks: [{file: mc.yaml, weight: 1}]
items_per_generation: 6
validation_items: 3
threads: 1
ps:
  base_model: base
  models: [ft1, ft2]
  population: 4
  generations: 2
final: {top: 1, uniform_grid: [0.5, [0.2, 0.9]]}
)";
  EvolveRunOptions o;
  o.run_dir = *dir_ / "run_validation";
  o.config_text = text;
  o.progress = false;
  std::vector<std::string> lines;
  o.log = [&](const std::string& l) { lines.push_back(l); };
  const auto s = run_evolve(parse_evolve_config(text, (*dir_ / "run.yml").string(), *dir_), o);
  ASSERT_TRUE(s.complete);
  // Every search candidate answered only the 5 items outside the validation part (8 - 3).
  std::set<int32_t> searched;
  for (const auto& c : RunStore::open_existing(o.run_dir).candidates("ps", -1, true))
    for (const auto& ir : c.items) searched.insert(ir.items.begin(), ir.items.end());
  EXPECT_EQ(searched.size(), 5u);
  int finalist_lines = 0;
  for (const auto& l : lines)
    finalist_lines +=
        l.find("finalist") != std::string::npos && l.find("opt validation") != std::string::npos;
  EXPECT_GE(finalist_lines, 2);  // top 1 + the mean, scored on the validation items
  bool per_model_grid = false;
  for (const auto& l : lines)
    per_model_grid |= l.find("uniform weight [0.2, 0.9]") != std::string::npos;
  EXPECT_TRUE(per_model_grid);
}

TEST_F(EvolveRunTest, ParetoSearchKeepsANonDominatedFrontOverTwoTasks) {
  // Two tasks: the fixture's mc, and the same questions asked another way (another prompt, so
  // another task with its own scores).
  std::string mc2;
  {
    std::ifstream in(*dir_ / "mc.yaml");
    mc2.assign(std::istreambuf_iterator<char>(in), {});
  }
  mc2.replace(mc2.find("task: mc"), 8, "task: mc2");
  mc2.replace(mc2.find("Q: {{q}}\\nA:"), 12, "{{q}} means:");
  std::ofstream(*dir_ / "mc2.yaml") << mc2;
  const std::string text = R"(seed: 5
tasks: [{file: mc.yaml, weight: 1}, {file: mc2.yaml, weight: 1}]
items_per_generation: 6
fresh_items: false
threads: 1
ps:
  base_model: base
  models: [ft1, ft2]
  population: 4
  generations: 3
  objective: pareto
final: {top: 1, uniform_grid: [0.5]}
)";
  EvolveRunOptions o;
  o.run_dir = *dir_ / "run_pareto";
  o.config_text = text;
  o.progress = false;
  o.log = [](const std::string&) {};
  const auto s = run_evolve(parse_evolve_config(text, (*dir_ / "run.yml").string(), *dir_), o);
  ASSERT_TRUE(s.complete);
  RunStore store = RunStore::open_existing(o.run_dir);
  const auto front = store.pareto_front("ps");
  ASSERT_FALSE(front.empty());
  // Each member has both tasks' scores on both splits, and none dominates another.
  std::vector<std::vector<double>> sel;
  for (const auto& m : front) {
    ASSERT_TRUE(m.selection_scores.contains("mc") && m.selection_scores.contains("mc2"));
    ASSERT_TRUE(m.test_scores.contains("mc") && m.test_scores.contains("mc2"));
    sel.push_back(
        {m.selection_scores["mc"].get<double>(), m.selection_scores["mc2"].get<double>()});
    // A searched candidate, labelled with its generation and index.
    bool searched = false;
    for (const auto& c : store.candidates("ps"))
      searched |= c.genome == m.genome && m.label == "ps gen " + std::to_string(c.generation) +
                                                         " idx " + std::to_string(c.index);
    EXPECT_TRUE(searched) << m.label;
  }
  EXPECT_EQ(non_dominated(sel).size(), sel.size());
  // The search's fitness is a scalarisation: a convex combination of the two task scores.
  for (const auto& c : store.candidates("ps")) {
    const double a = c.task_scores["mc"].get<double>(), b = c.task_scores["mc2"].get<double>();
    EXPECT_GE(c.fitness, std::min(a, b) - 1e-12);
    EXPECT_LE(c.fitness, std::max(a, b) + 1e-12);
  }
  std::ifstream md(o.run_dir / "pareto_front.md");
  const std::string results((std::istreambuf_iterator<char>(md)), {});
  EXPECT_NE(results.find("Pareto front of the PS search"), std::string::npos);
  EXPECT_NE(results.find("| mc2 (test) |"), std::string::npos);
  EXPECT_TRUE(store.pareto_front("dfs").empty());  // a phase without a front: no rows
  // The front members were finalists (the winner or a "not selected" row of the final table).
  size_t front_rows = 0;
  for (const auto& r : s.table)
    front_rows += r.label.find("pareto front ps gen") != std::string::npos;
  EXPECT_EQ(front_rows, front.size());
}
