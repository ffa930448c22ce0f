#include "dist/wire.h"

#include <gtest/gtest.h>

#include "common/error.h"

using namespace evomerge;

TEST(Wire, JobRoundTrips) {
  ScoreJob job;
  job.candidate.kind = CandidateKind::Dfs;
  job.candidate.x = {0.25, -1.5, 3.0};
  job.candidate.ps_winner = {0.5, 0.75};
  job.split = SplitKind::Test;
  job.task = 2;
  job.items = {0, 7, 1u << 20};
  const auto [id, back] = wire::decode_job(wire::encode_job(42, job));
  EXPECT_EQ(id, 42u);
  EXPECT_TRUE(back.candidate == job.candidate);
  EXPECT_EQ(back.split, SplitKind::Test);
  EXPECT_EQ(back.task, 2u);
  EXPECT_EQ(back.items, job.items);
}

TEST(Wire, ResultRoundTripsEveryFieldTheAggregationReads) {
  JobResult r;
  r.merge_seconds = 0.5;
  r.eval_seconds = 1.25;
  r.score.task = "mc";
  r.score.split = "opt";
  r.score.metric = "acc";
  r.score.requested = 2;
  r.score.metrics["acc"] = 0.5;
  r.score.note = "chat template: x";
  for (int i = 0; i < 2; ++i) {
    eval::ItemResult it;
    it.index = static_cast<size_t>(10 + i);
    it.score = i;
    it.correct = i == 1;
    it.extracted = "42";
    it.logprob = -1.5 * (i + 1);
    it.greedy = i == 0;
    it.tokens = 3, it.bytes = 9, it.words = 2;
    it.choice_logprobs = {-0.5, -2.0};
    it.pred = i, it.pred_norm = 1 - i;
    it.gold_logprob = -0.25;
    it.gold_tokens = 4;
    r.score.items.push_back(it);
  }
  const auto [id, back] = wire::decode_result(wire::encode_result(7, r));
  EXPECT_EQ(id, 7u);
  EXPECT_TRUE(back.ok);
  EXPECT_EQ(back.eval_seconds, 1.25);
  EXPECT_EQ(back.score.task, "mc");
  EXPECT_EQ(back.score.metrics.at("acc"), 0.5);
  EXPECT_EQ(back.score.note, r.score.note);
  ASSERT_EQ(back.score.items.size(), 2u);
  for (int i = 0; i < 2; ++i) {
    const auto &a = r.score.items[i], &b = back.score.items[i];
    EXPECT_EQ(b.index, a.index);
    EXPECT_EQ(b.score, a.score);
    EXPECT_EQ(b.correct, a.correct);
    EXPECT_EQ(b.extracted, a.extracted);
    EXPECT_EQ(b.logprob, a.logprob);
    EXPECT_EQ(b.greedy, a.greedy);
    EXPECT_EQ(b.tokens, a.tokens);
    EXPECT_EQ(b.bytes, a.bytes);
    EXPECT_EQ(b.words, a.words);
    EXPECT_EQ(b.choice_logprobs, a.choice_logprobs);
    EXPECT_EQ(b.pred, a.pred);
    EXPECT_EQ(b.pred_norm, a.pred_norm);
    EXPECT_EQ(b.gold_logprob, a.gold_logprob);
    EXPECT_EQ(b.gold_tokens, a.gold_tokens);
  }
  JobResult failed;
  failed.ok = false;
  failed.error = "[merge] ft9: no such folder";
  const auto [id2, f] = wire::decode_result(wire::encode_result(8, failed));
  EXPECT_FALSE(f.ok);
  EXPECT_EQ(f.error, failed.error);
}

TEST(Wire, TruncatedOrOversizedMessagesAreErrors) {
  ScoreJob job;
  job.items = {1, 2, 3};
  const std::string b = wire::encode_job(1, job);
  for (size_t cut : {size_t{0}, size_t{5}, b.size() - 1})
    EXPECT_THROW(wire::decode_job(std::string_view(b).substr(0, cut)), Error) << cut;
  EXPECT_THROW(wire::decode_job(b + "x"), Error);
  // A count far beyond the message: refused before allocating.
  std::string huge = b;
  const uint64_t n = uint64_t{1} << 60;
  huge.replace(huge.size() - 3 * 8 - 8, 8, reinterpret_cast<const char*>(&n), 8);
  EXPECT_THROW(wire::decode_job(huge), Error);
}
