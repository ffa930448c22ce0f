#include "evolve/search.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>

#include "common/error.h"
#include "evolve/rng.h"

namespace fs = std::filesystem;
using namespace evomerge;

namespace {

struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name) {
    path = fs::temp_directory_path() /
           ("evomerge-search-test-" + name + "-" + std::to_string(::getpid()));
    fs::remove_all(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

// A quantised, item-based stand-in for "accuracy of a merge": 40 items, item i is answered
// correctly when the candidate is within radius r_i of the target (r_i spread over [0.05, 0.6]);
// the generation's subset of 20 items comes from item_seed. Fails (like a broken merge) when x[0] >
// 0.95.
class ToyEvaluator : public Evaluator {
 public:
  int calls = 0;
  std::vector<uint64_t> seeds;
  std::vector<Evaluation> evaluate(const std::vector<std::vector<double>>& genomes,
                                   uint64_t item_seed) override {
    ++calls;
    seeds.push_back(item_seed);
    Rng rng(item_seed);
    std::vector<int32_t> subset;
    while (subset.size() < 20) {
      const auto i = static_cast<int32_t>(rng.below(40));
      if (std::find(subset.begin(), subset.end(), i) == subset.end()) subset.push_back(i);
    }
    std::vector<Evaluation> out;
    for (const auto& x : genomes) {
      Evaluation e;
      if (x[0] > 0.95) {
        e.ok = false;
        e.error = "toy merge failed";
        out.push_back(e);
        continue;
      }
      double d2 = 0;
      for (size_t j = 0; j < x.size(); ++j) d2 += (x[j] - 0.3) * (x[j] - 0.3);
      ItemResults items{"toy", "opt", subset, {}};
      double correct = 0;
      for (int32_t i : subset) {
        const double r = 0.05 + 0.55 * i / 39.0;
        items.scores.push_back(std::sqrt(d2) < r ? 1.0f : 0.0f);
        correct += items.scores.back();
      }
      e.fitness = correct / 20;
      e.task_scores = {{"toy", e.fitness}};
      e.params = {{"x", x}};
      e.items.push_back(items);
      e.eval_seconds = 0.001;
      out.push_back(e);
    }
    return out;
  }
};

RunInfo info() {
  RunInfo i;
  i.config = {{"toy", 1}};
  i.seed = 5;
  i.evomerge_version = "test";
  return i;
}

PhaseSpec spec() {
  PhaseSpec s;
  s.name = "ps";
  s.x0.assign(4, 0.5);
  s.lower.assign(4, 0.0);
  s.upper.assign(4, 1.0);
  s.sigma0 = 0.2;
  s.cmaes.seed = 17;
  s.cmaes.max_generations = 25;
  s.cmaes.tol_flat_fitness = 5;
  s.items_seed = 3;
  s.fresh_items_each_generation = true;
  return s;
}

}  // namespace

TEST(RunPhase, PersistsEveryGenerationAndImproves) {
  TempDir dir("improves");
  auto store = RunStore::open(dir.path, info());
  ToyEvaluator ev;
  std::vector<GenerationReport> reports;
  const auto out =
      run_phase(store, ev, spec(), [&](const GenerationReport& r) { reports.push_back(r); });
  EXPECT_TRUE(out.finished);
  ASSERT_EQ(static_cast<int64_t>(reports.size()), out.generations);
  EXPECT_EQ(store.last_state("ps")->generation, out.generations);
  const auto cands = store.candidates("ps", -1, true);
  EXPECT_EQ(static_cast<int64_t>(cands.size()), out.evaluations);
  EXPECT_EQ(cands[0].items.size(), 1u);
  EXPECT_EQ(cands[0].items[0].items.size(), 20u);
  // Fresh items each generation: the seeds differ; all candidates of one generation share one.
  EXPECT_NE(ev.seeds[0], ev.seeds[1]);
  EXPECT_EQ(ev.seeds[0], generation_item_seed(spec(), 1));
  // The toy optimum is at 0.3: the search gets all sampled items right and its mean moves there.
  EXPECT_EQ(out.best_fitness, 1.0);
  for (double v : out.mean_x) EXPECT_NEAR(v, 0.3, 0.2);
  EXPECT_GT(reports.back().best_so_far, reports.front().median);
  EXPECT_TRUE(store.phase_result("ps").has_value());

  // A finished phase is not run again.
  const int calls = ev.calls;
  const auto again = run_phase(store, ev, spec());
  EXPECT_EQ(ev.calls, calls);
  EXPECT_TRUE(again.resumed);
  EXPECT_EQ(again.best_x, out.best_x);
  EXPECT_EQ(again.mean_x, out.mean_x);
}

TEST(RunPhase, FailedCandidatesAreStoredAndRankedWorst) {
  TempDir dir("failed");
  auto store = RunStore::open(dir.path, info());
  ToyEvaluator ev;
  auto s = spec();
  s.x0.assign(4, 0.9);  // near the failing region x[0] > 0.95
  s.cmaes.max_generations = 6;
  const auto out = run_phase(store, ev, s);
  int failed = 0;
  for (const auto& c : store.candidates("ps"))
    if (!c.ok) {
      ++failed;
      EXPECT_EQ(c.error, "toy merge failed");
      EXPECT_GT(c.genome[0].get<double>(), 0.95);
    }
  EXPECT_GT(failed, 0);
  EXPECT_LE(out.best_x[0], 0.95);
}

TEST(RunPhase, ResumedRunEndsExactlyWhereAnUninterruptedOneDoes) {
  TempDir a("uninterrupted"), b("interrupted");
  ToyEvaluator ev_a, ev_b1, ev_b2;
  PhaseOutcome full;
  {
    auto store = RunStore::open(a.path, info());
    full = run_phase(store, ev_a, spec());
  }
  {
    auto store = RunStore::open(b.path, info());
    auto s = spec();
    s.stop_after_generations = 7;  // "interrupted" after generation 7
    const auto part = run_phase(store, ev_b1, s);
    EXPECT_FALSE(part.finished);
    EXPECT_EQ(part.generations, 7);
  }
  PhaseOutcome resumed;
  {
    auto store = RunStore::open(b.path, info());  // a new process
    resumed = run_phase(store, ev_b2, spec());
    EXPECT_TRUE(resumed.resumed);
  }
  EXPECT_EQ(ev_b1.calls + ev_b2.calls, ev_a.calls);
  EXPECT_EQ(resumed.best_x, full.best_x);
  EXPECT_EQ(resumed.mean_x, full.mean_x);
  EXPECT_EQ(resumed.generations, full.generations);
  EXPECT_EQ(resumed.stop, full.stop);
  const auto ca = RunStore::open_existing(a.path).candidates("ps");
  const auto cb = RunStore::open_existing(b.path).candidates("ps");
  ASSERT_EQ(ca.size(), cb.size());
  for (size_t i = 0; i < ca.size(); ++i) {
    EXPECT_EQ(ca[i].genome, cb[i].genome) << i;  // bit-identical doubles
    EXPECT_EQ(ca[i].task_scores, cb[i].task_scores) << i;
  }
  EXPECT_EQ(RunStore::open_existing(a.path).last_state("ps")->state,
            RunStore::open_existing(b.path).last_state("ps")->state);
}

TEST(RunPhase, DimensionMismatchOnResumeFails) {
  TempDir dir("mismatch");
  {
    auto store = RunStore::open(dir.path, info());
    ToyEvaluator ev;
    auto s = spec();
    s.stop_after_generations = 1;
    run_phase(store, ev, s);
  }
  auto store = RunStore::open(dir.path, info());
  ToyEvaluator ev;
  auto s = spec();
  s.x0.assign(5, 0.5);
  s.lower.assign(5, 0.0);
  s.upper.assign(5, 1.0);
  EXPECT_THROW(run_phase(store, ev, s), Error);
}
