#include "evolve/scoring.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fmt/format.h>
#include <filesystem>
#include <fstream>

#include <map>

#include "common/progress.h"

namespace fs = std::filesystem;
using namespace evomerge;

namespace {

// Answers jobs from a table of per-item verdicts (candidate model name -> verdict per item), as a
// worker would, and records which jobs it was given.
class TableRunner : public WorkRunner {
 public:
  TableRunner(const eval::Scorer& scorer, std::map<std::string, std::vector<int>> verdicts)
      : scorer_(scorer), verdicts_(std::move(verdicts)) {}
  std::vector<JobResult> run(const std::vector<ScoreJob>& jobs) override {
    std::vector<JobResult> out;
    for (const auto& j : jobs) {
      ++jobs_of[j.candidate.model];
      items_of[j.candidate.model] += j.items.size();
      JobResult r;
      r.score.task = scorer_.task(0).name();
      r.score.split = scorer_.split(0);
      r.score.requested = j.items.size();
      for (size_t i : j.items) {
        eval::ItemResult it;
        it.index = i;
        const int gold = scorer_.task(0).item(scorer_.split(0), i).gold;
        const bool right = verdicts_.at(j.candidate.model).at(i) != 0;
        it.pred = it.pred_norm = right ? gold : (gold + 1) % 4;
        it.score = right ? 1 : 0;
        it.correct = right;
        it.gold_logprob = right ? -0.5 : -2.0;  // one token; used only with a tie-breaker
        it.gold_tokens = 1;
        r.score.items.push_back(it);
      }
      out.push_back(std::move(r));
    }
    return out;
  }
  size_t slots() const override { return slots_; }
  size_t slots_ = 1;
  std::map<std::string, int> jobs_of;
  std::map<std::string, size_t> items_of;

 private:
  const eval::Scorer& scorer_;
  std::map<std::string, std::vector<int>> verdicts_;
};

class ScoringTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Progress::set_global_enabled(false);
    dir_ = fs::temp_directory_path() / ("evomerge_scoring_test_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    std::string data;
    for (int i = 0; i < 8; ++i)
      data += fmt::format(
          "{{\"q\": \"q{}\", \"choices\": [\"a\", \"b\", \"c\", \"d\"], \"label\": {}}}\n", i,
          i % 4);
    std::ofstream(dir_ / "mc.jsonl") << data;
    std::ofstream(dir_ / "mc.yaml")
        << "task: mc\ndataset_path: json\ndataset_kwargs: {data_files: {opt: mc.jsonl}}\n"
           "output_type: multiple_choice\ndoc_to_text: \"{{q}}\"\ndoc_to_target: \"{{label}}\"\n"
           "doc_to_choice: \"{{choices}}\"\nmetric_list: [{metric: acc}]\n";
    ctx_.opt_scorer = std::make_unique<const eval::Scorer>(
        std::initializer_list<eval::TaskEntry>{{dir_ / "mc.yaml", 1.0}}, "opt");
    ctx_.scoring.micro_batch = 2;
  }
  void TearDown() override { fs::remove_all(dir_); }
  static std::vector<CandidateRef> cands(std::initializer_list<const char*> names) {
    std::vector<CandidateRef> out;
    for (const char* n : names) out.push_back(CandidateRef::parent(n));
    return out;
  }
  fs::path dir_;
  SearchContext ctx_;
};

}  // namespace

TEST_F(ScoringTest, RacingStopsCandidatesFromWholeRoundsOfScores) {
  // 8 items, rounds of 2, mu = 2. After round 3 (6 items) the 2nd best pessimistic bound is 6/8
  // (a and d); b (2 right: optimistic (2 + 2) / 8) and c (none right: 2 / 8) stop there.
  TableRunner runner(*ctx_.opt_scorer, {{"a", {1, 1, 1, 1, 1, 1, 1, 1}},
                                        {"b", {1, 1, 0, 0, 0, 0, 1, 1}},
                                        {"c", {0, 0, 0, 0, 0, 0, 1, 1}},
                                        {"d", {1, 1, 1, 1, 1, 1, 0, 1}}});
  const auto evals = score_racing(runner, ctx_, cands({"a", "b", "c", "d"}), {});
  ASSERT_EQ(evals.size(), 4u);
  EXPECT_EQ(evals[0].fitness, 1.0);
  EXPECT_FALSE(evals[0].raced_out);
  EXPECT_EQ(evals[1].fitness, 4.0 / 8);
  EXPECT_TRUE(evals[1].raced_out);
  EXPECT_EQ(evals[2].fitness, 2.0 / 8);
  EXPECT_TRUE(evals[2].raced_out);
  EXPECT_EQ(evals[3].fitness, 7.0 / 8);
  EXPECT_FALSE(evals[3].raced_out);
  EXPECT_EQ(runner.items_of["a"], 8u);
  EXPECT_EQ(runner.items_of["b"], 6u);
  EXPECT_EQ(runner.items_of["c"], 6u);
  ASSERT_EQ(evals[1].items.size(), 1u);
  EXPECT_EQ(evals[1].items[0].items, (std::vector<int32_t>{0, 1, 2, 3, 4, 5}));
  // The stored task score of a stopped candidate is its accuracy on the items it answered.
  EXPECT_DOUBLE_EQ(evals[1].task_scores["mc"].get<double>(), 2.0 / 6);
  // The same candidates in another order get the same verdicts: nothing depends on order.
  const auto again = score_racing(runner, ctx_, cands({"d", "c", "b", "a"}), {});
  EXPECT_EQ(again[0].fitness, evals[3].fitness);
  EXPECT_EQ(again[1].fitness, evals[2].fitness);
  EXPECT_EQ(again[2].fitness, evals[1].fitness);
  EXPECT_EQ(again[3].fitness, evals[0].fitness);
}

TEST_F(ScoringTest, RacingDecidesOnTheFitnessWithItsTieBreaker) {
  // The verdicts above with eps 0.01 (gold log-prob -0.5 when right, -2 when wrong). After round 3
  // the 2nd best lower bound is 6/8 + 0.01 x (-3 - 2 x 20) / 8 (a and d); b's upper bound is
  // 4/8 + 0.01 x (-9) / 8 and c's 2/8 + 0.01 x (-12) / 8: both stop, and their fitness is that
  // bound, tie-breaker included. Finished candidates get fitness_of: accuracy + 0.01 x mean lp.
  ctx_.scoring.fitness.gold_logprob_weight = 0.01;
  TableRunner runner(*ctx_.opt_scorer, {{"a", {1, 1, 1, 1, 1, 1, 1, 1}},
                                        {"b", {1, 1, 0, 0, 0, 0, 1, 1}},
                                        {"c", {0, 0, 0, 0, 0, 0, 1, 1}},
                                        {"d", {1, 1, 1, 1, 1, 1, 0, 1}}});
  const auto evals = score_racing(runner, ctx_, cands({"a", "b", "c", "d"}), {});
  ASSERT_EQ(evals.size(), 4u);
  EXPECT_DOUBLE_EQ(evals[0].fitness, 1.0 + 0.01 * -0.5);
  EXPECT_TRUE(evals[1].raced_out);
  EXPECT_DOUBLE_EQ(evals[1].fitness, 4.0 / 8 + 0.01 * -9.0 / 8);
  EXPECT_TRUE(evals[2].raced_out);
  EXPECT_DOUBLE_EQ(evals[2].fitness, 2.0 / 8 + 0.01 * -12.0 / 8);
  EXPECT_FALSE(evals[3].raced_out);
  EXPECT_DOUBLE_EQ(evals[3].fitness, 7.0 / 8 + 0.01 * (7 * -0.5 - 2.0) / 8);
  EXPECT_EQ(runner.items_of["b"], 6u);
  EXPECT_EQ(runner.items_of["c"], 6u);
}

TEST_F(ScoringTest, ItemBatchesAreReassembledIntoOneScore) {
  // job_items 2 cuts each candidate into 4 jobs; the assembled score is that of all 8 items.
  ctx_.scoring.job_items = 3;  // rounded down to one micro-batch of 2
  TableRunner runner(*ctx_.opt_scorer, {{"a", {1, 0, 1, 1, 0, 1, 1, 1}}});
  const auto evals = score_candidates(runner, ctx_, cands({"a"}), SplitKind::Opt);
  EXPECT_EQ(runner.jobs_of["a"], 4);
  ASSERT_TRUE(evals[0].ok) << evals[0].error;
  EXPECT_EQ(evals[0].fitness, 6.0 / 8);
  EXPECT_EQ(evals[0].items[0].items, (std::vector<int32_t>{0, 1, 2, 3, 4, 5, 6, 7}));
  EXPECT_EQ(evals[0].items[0].scores, (std::vector<float>{1, 0, 1, 1, 0, 1, 1, 1}));
  // The Wilson interval of 6 of 8.
  EXPECT_NEAR(evals[0].ci_low, 0.4093, 1e-4);
  EXPECT_NEAR(evals[0].ci_high, 0.9285, 1e-4);
}

TEST_F(ScoringTest, ARunnerOfSeveralSlotsGetsFinerJobsAndTheSameScores) {
  // 2 candidates x 8 items, job_items 64, micro-batch 2. One slot: one job per candidate. Three
  // slots want 48 jobs: the cut goes down to one micro-batch (4 jobs per candidate), not below.
  TableRunner one(*ctx_.opt_scorer,
                  {{"a", {1, 0, 1, 1, 0, 1, 1, 1}}, {"b", {0, 0, 1, 0, 0, 1, 1, 1}}});
  const auto whole = score_candidates(one, ctx_, cands({"a", "b"}), SplitKind::Opt);
  EXPECT_EQ(one.jobs_of["a"], 1);
  TableRunner three = one;
  three.jobs_of.clear();
  three.slots_ = 3;
  const auto cut = score_candidates(three, ctx_, cands({"a", "b"}), SplitKind::Opt);
  EXPECT_EQ(three.jobs_of["a"], 4);
  EXPECT_EQ(three.jobs_of["b"], 4);
  // With micro-batches of 4, two slots (32 jobs wanted) get jobs of one micro-batch: 2 each.
  ctx_.scoring.micro_batch = 4;
  TableRunner two = three;
  two.jobs_of.clear();
  two.slots_ = 2;
  score_candidates(two, ctx_, cands({"a", "b"}), SplitKind::Opt);
  EXPECT_EQ(two.jobs_of["a"], 2);
  for (size_t c = 0; c < 2; ++c) {
    EXPECT_EQ(cut[c].fitness, whole[c].fitness);
    EXPECT_EQ(cut[c].task_scores, whole[c].task_scores);
    EXPECT_EQ(cut[c].items[0].items, whole[c].items[0].items);
    EXPECT_EQ(cut[c].items[0].scores, whole[c].items[0].scores);
  }
  EXPECT_EQ(whole[0].fitness, 6.0 / 8);
  EXPECT_EQ(whole[1].fitness, 4.0 / 8);
}
