// End-to-end: `evomerge evolve` through the real binary on a tiny generated fixture
// (evolve/test_support.h), then `evomerge eval` of what it exported: the exported PS winner (folder
// and recipe), PS+DFS winner and DFS winner (folders) score exactly what the search stored for
// them, on the test split and on the optimisation split; in both engine precisions (a bf16 run's
// winners, evaluated with `--precision bf16`).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "evolve/test_support.h"
#include "io/test_support.h"
#include "store/run_store.h"
#include "test_support.h"

namespace evomerge {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using testing::evomerge_cli;
using testing::TempDir;

class EvolveCli : public ::testing::Test {
 protected:
  void SetUp() override {
    testing_util::write_evolve_fixture(dir_.path());
    testing::write_bytes(dir_ / "run.yml", testing_util::evolve_fixture_config());
  }
  // The final-table row whose label starts with `prefix`.
  static FinalResult row(const fs::path& run, const std::string& prefix) {
    for (auto& r : RunStore::open_existing(run).final_results())
      if (r.label.rfind(prefix, 0) == 0) return r;
    ADD_FAILURE() << "no final row " << prefix;
    return {};
  }
  double eval_score(const fs::path& model, const std::string& split,
                    const std::string& extra = "") {
    const auto r =
        evomerge_cli(fmt::format("-q eval '{}' --task '{}' --split {} --json {}", model.string(),
                                 (dir_ / "mc.yaml").string(), split, extra),
                     dir_);
    EXPECT_EQ(r.status, 0) << r.err;
    return json::parse(r.out)["tasks"][0]["score"].get<double>();
  }
  TempDir dir_{"evolvecli"};
};

}  // namespace

TEST_F(EvolveCli, EvalOfTheExportedWinnerGivesTheStoredScore) {
  const fs::path run = dir_ / "run";
  const auto r = evomerge_cli(
      fmt::format("-q evolve '{}' --run '{}'", (dir_ / "run.yml").string(), run.string()), dir_);
  ASSERT_EQ(r.status, 0) << r.err;
  const FinalResult ps = row(run, "evolved PS (");
  EXPECT_EQ(eval_score(run / "ps_best_model", "test"), ps.score);
  // The recipe merged in memory, with the run's seed for DARE (seed: 3 in the fixture config).
  EXPECT_EQ(eval_score(run / "ps_best.yml", "test", "--random-seed 3"), ps.score);
  EXPECT_EQ(eval_score(run / "ps_best_model", "opt"), ps.details["opt_score"].get<double>());
  const FinalResult parent = row(run, "parent: ft1");
  EXPECT_EQ(eval_score(dir_ / "ft1", "test"), parent.score);
  // The PS+DFS winner (DFS over the PS winner merged in memory and ft2), exported as a folder.
  const FinalResult psdfs = row(run, "evolved PS+DFS (");
  EXPECT_EQ(eval_score(run / "dfs_best_model", "test"), psdfs.score);
  EXPECT_EQ(eval_score(run / "dfs_best_model", "opt"), psdfs.details["opt_score"].get<double>());
}

// `precision: bf16` scores every candidate with bf16-rounded activations: the run stores it (its
// identity), the recipe says it, and `eval --precision bf16` of the exports gives the stored
// scores.
TEST_F(EvolveCli, Bf16RunIsStoredAndItsExportsEvalToTheStoredScore) {
  testing::write_bytes(dir_ / "run.yml",
                       testing_util::evolve_fixture_config() + "precision: bf16\n");
  const fs::path run = dir_ / "run";
  const auto r = evomerge_cli(
      fmt::format("-q evolve '{}' --run '{}'", (dir_ / "run.yml").string(), run.string()), dir_);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(RunStore::open_existing(run).info().config.value("precision", ""), "bf16");
  EXPECT_NE(testing::read_bytes(run / "ps_best.yml").find("--precision bf16"), std::string::npos);
  const std::string bf16 = "--precision bf16";
  const FinalResult ps = row(run, "evolved PS (");
  EXPECT_EQ(eval_score(run / "ps_best_model", "test", bf16), ps.score);
  EXPECT_EQ(eval_score(run / "ps_best.yml", "test", "--random-seed 3 " + bf16), ps.score);
  EXPECT_EQ(eval_score(run / "ps_best_model", "opt", bf16), ps.details["opt_score"].get<double>());
  const FinalResult parent = row(run, "parent: ft1");
  EXPECT_EQ(eval_score(dir_ / "ft1", "test", bf16), parent.score);
  const FinalResult psdfs = row(run, "evolved PS+DFS (");
  EXPECT_EQ(eval_score(run / "dfs_best_model", "test", bf16), psdfs.score);
}

TEST_F(EvolveCli, EvalOfTheExportedDfsWinnerGivesTheStoredScore) {
  // DFS alone, over two model folders.
  testing::write_bytes(dir_ / "run.yml", R"(seed: 5
tasks: [{file: mc.yaml, weight: 1}]
items_per_generation: 6
threads: 1
dfs:
  models: [ft1, ft2]
  repeats: 2
  population: 4
  generations: 2
final: {top: 1}
)");
  const fs::path run = dir_ / "run";
  const auto r = evomerge_cli(
      fmt::format("-q evolve '{}' --run '{}'", (dir_ / "run.yml").string(), run.string()), dir_);
  ASSERT_EQ(r.status, 0) << r.err;
  const FinalResult dfs = row(run, "evolved DFS (");
  EXPECT_EQ(eval_score(run / "dfs_best_model", "test"), dfs.score);
  EXPECT_EQ(eval_score(run / "dfs_best_model", "opt"), dfs.details["opt_score"].get<double>());
}

}  // namespace evomerge
