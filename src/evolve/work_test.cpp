// LocalRunner on the tiny evolve fixture (evolve/test_support.h): racing's rounds over the same PS
// candidates merge each candidate once when the runner keeps enough of them merged
// (cached_candidates), and every result is the same as with one kept.
#include "evolve/work.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include "evolve/scoring.h"
#include "evolve/test_support.h"

namespace evomerge {
namespace {

namespace fs = std::filesystem;

// Forwards to a LocalRunner and counts the jobs that had to build their candidate.
class CountingRunner : public WorkRunner {
 public:
  explicit CountingRunner(LocalRunner& local) : local_(local) {}
  std::vector<JobResult> run(const std::vector<ScoreJob>& jobs) override {
    auto out = local_.run(jobs);
    for (const auto& r : out) builds += r.merge_seconds > 0 ? 1 : 0;
    return out;
  }
  int builds = 0;

 private:
  LocalRunner& local_;
};

TEST(LocalRunner, RacingRoundsMergeEachCandidateOnceWhenEnoughAreKept) {
  const fs::path dir =
      fs::temp_directory_path() / ("evomerge_work_test_" + std::to_string(getpid()));
  testing_util::write_evolve_fixture(dir);
  // 8 opt items in rounds of 2 (micro_batch): up to 4 rounds per candidate.
  const std::string yaml = "micro_batch: 2\nracing: true\n" + testing_util::evolve_fixture_config();
  std::vector<std::vector<Evaluation>> evals;
  std::vector<int> builds;
  for (size_t kept : {1, 4}) {
    EvolveConfig cfg = parse_evolve_config(yaml, (dir / "run.yml").string(), dir);
    cfg.cached_candidates = kept;
    const SearchContext ctx = build_search_context(cfg);
    std::vector<CandidateRef> cands;
    for (double w : {0.2, 0.4, 0.6, 0.9})
      cands.push_back(CandidateRef::ps(std::vector<double>(ctx.ps_genome->dimension(), w)));
    LocalRunner local(ctx);
    CountingRunner runner(local);
    evals.push_back(score_racing(runner, ctx, cands, {}));
    builds.push_back(runner.builds);
  }
  EXPECT_EQ(builds[1], 4);          // each candidate merged once
  EXPECT_GT(builds[0], builds[1]);  // one kept: merged again every round
  ASSERT_EQ(evals[0].size(), evals[1].size());
  for (size_t c = 0; c < evals[0].size(); ++c) {
    EXPECT_EQ(evals[0][c].fitness, evals[1][c].fitness) << c;
    EXPECT_EQ(evals[0][c].raced_out, evals[1][c].raced_out) << c;
    ASSERT_EQ(evals[0][c].items.size(), evals[1][c].items.size());
    EXPECT_EQ(evals[0][c].items[0].scores, evals[1][c].items[0].scores) << c;
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace evomerge
