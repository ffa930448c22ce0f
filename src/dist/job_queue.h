// Which pending scoring job a rank gets next (rank 0's side of dist/): a batch's jobs grouped by
// candidate (score_candidates emits a candidate's jobs together), and a rank that asks gets
//   1. the next job of a candidate it holds (no merge; a rank holds its last `capacity`
//      candidates, SearchContext::cached_candidates, the most recent first),
//   2. else the first job of a candidate no rank has touched yet (one merge, the rest stays
//      with it),
//   3. else, at the batch's tail, the last job of the candidate with the most jobs left (a
//      second rank helps with the slowest candidate instead of idling).
// Only the assignment depends on it, never a result (jobs are pure, evolve/work.h).
#pragma once

#include <cstddef>
#include <deque>
#include <vector>

#include "evolve/work.h"

namespace evomerge {

class JobQueue {
 public:
  // `held[r]`: the candidates rank r holds from earlier batches, the most recently used first.
  JobQueue(const std::vector<ScoreJob>& jobs, const std::vector<std::vector<CandidateRef>>& held,
           size_t capacity = 1);

  bool empty() const { return left_ == 0; }
  size_t size() const { return left_; }
  // The index into `jobs` of the job rank r scores next; requires !empty().
  size_t take(int rank);

 private:
  std::vector<std::deque<size_t>> groups_;  // per candidate, its pending jobs in order
  std::vector<std::vector<size_t>> held_;   // per rank, the groups it holds, most recent first
  size_t capacity_;
  size_t fresh_ = 0;  // groups before it have been touched
  std::vector<bool> touched_;
  size_t left_ = 0;
};

}  // namespace evomerge
