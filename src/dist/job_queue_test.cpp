#include "dist/job_queue.h"

#include <gtest/gtest.h>

#include "common/error.h"

namespace evomerge {
namespace {

// `per_candidate[c]` jobs of PS candidate c (genome {c}), in candidate order as
// score_candidates emits them.
std::vector<ScoreJob> jobs_of(std::initializer_list<size_t> per_candidate) {
  std::vector<ScoreJob> jobs;
  double c = 0;
  for (size_t n : per_candidate) {
    for (size_t i = 0; i < n; ++i) jobs.push_back({CandidateRef::ps({c}), SplitKind::Opt, 0, {i}});
    c += 1;
  }
  return jobs;
}

TEST(JobQueue, ARankKeepsItsCandidateThenTakesAnUntouchedOneThenHelpsTheLongest) {
  // Candidates 0, 1, 2 with 3, 3, 2 jobs (indices 0-2, 3-5, 6-7); two ranks holding nothing.
  const auto jobs = jobs_of({3, 3, 2});
  JobQueue q(jobs, {{}, {}});
  EXPECT_EQ(q.take(1), 0u);  // untouched candidate 0
  EXPECT_EQ(q.take(1), 1u);  // more of candidate 0
  EXPECT_EQ(q.take(0), 3u);  // candidate 0 is rank 1's: the next untouched one, 1
  EXPECT_EQ(q.take(1), 2u);
  EXPECT_EQ(q.take(1), 6u);  // candidate 0 done: untouched candidate 2
  EXPECT_EQ(q.take(1), 7u);
  EXPECT_EQ(q.size(), 2u);
  // Nothing untouched left: rank 1 helps candidate 1 (the most jobs left) from its end, rank 0
  // goes on from its front.
  EXPECT_EQ(q.take(1), 5u);
  EXPECT_EQ(q.take(0), 4u);
  EXPECT_TRUE(q.empty());
  EXPECT_THROW(q.take(0), Error);
}

TEST(JobQueue, ARankStartsWithTheCandidateItHeldInTheLastBatch) {
  const auto jobs = jobs_of({2, 2});
  JobQueue q(jobs, {{CandidateRef::ps({1})}, {}});
  EXPECT_THROW(q.take(2), Error);  // no such rank
  EXPECT_EQ(q.take(0), 2u);        // rank 0 holds candidate 1
  EXPECT_EQ(q.take(1), 0u);        // candidate 0 is untouched
  EXPECT_EQ(q.take(0), 3u);
  EXPECT_EQ(q.take(1), 1u);
}

TEST(JobQueue, ARankHoldingSeveralCandidatesScoresThemAllBeforeMergingAnother) {
  // Racing's next round: one job per candidate 0-3. Rank 0 kept 2 and 3 merged (3 most recently),
  // rank 1 kept 0 and 1; each scores its own, the most recent first, and nothing is untouched.
  const auto jobs = jobs_of({1, 1, 1, 1});
  JobQueue q(jobs,
             {{CandidateRef::ps({3}), CandidateRef::ps({2})},
              {CandidateRef::ps({1}), CandidateRef::ps({0})}},
             2);
  EXPECT_EQ(q.take(0), 3u);
  EXPECT_EQ(q.take(1), 1u);
  EXPECT_EQ(q.take(0), 2u);
  EXPECT_EQ(q.take(1), 0u);
  EXPECT_TRUE(q.empty());
  // With room for one candidate per rank, only the most recent one counts as held.
  JobQueue one(jobs, {{CandidateRef::ps({3})}, {CandidateRef::ps({1})}}, 1);
  EXPECT_EQ(one.take(0), 3u);
  EXPECT_EQ(one.take(0), 0u);  // the first untouched candidate
  EXPECT_EQ(one.take(0), 2u);  // the next untouched one (1 is rank 1's)
  EXPECT_EQ(one.take(1), 1u);
}

}  // namespace
}  // namespace evomerge
