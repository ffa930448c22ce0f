#include "dist/job_queue.h"

#include <algorithm>

#include "common/error.h"

namespace evomerge {

JobQueue::JobQueue(const std::vector<ScoreJob>& jobs,
                   const std::vector<std::vector<CandidateRef>>& held, size_t capacity)
    : held_(held.size()), capacity_(std::max<size_t>(1, capacity)), left_(jobs.size()) {
  std::vector<const CandidateRef*> group_candidate;
  for (size_t j = 0; j < jobs.size(); ++j) {
    if (j == 0 || !(jobs[j].candidate == jobs[j - 1].candidate)) {
      groups_.emplace_back();
      group_candidate.push_back(&jobs[j].candidate);
    }
    groups_.back().push_back(j);
  }
  touched_.assign(groups_.size(), false);
  // A candidate split over two runs of jobs is two groups; a rank holding it starts on the first.
  for (size_t r = 0; r < held.size(); ++r)
    for (const CandidateRef& c : held[r])
      for (size_t g = 0; g < groups_.size(); ++g)
        if (*group_candidate[g] == c) {
          held_[r].push_back(g);
          touched_[g] = true;
          break;
        }
}

size_t JobQueue::take(int rank) {
  if (left_ == 0) fail("dist", "no job left to hand out");
  const auto r = static_cast<size_t>(rank);
  if (r >= held_.size()) fail("dist", "rank {} of {}", rank, held_.size());
  auto& mine = held_[r];
  auto move_to = [&](size_t g) {  // g becomes the most recent of rank r's candidates
    mine.insert(mine.begin(), g);
    if (mine.size() > capacity_) mine.pop_back();
    touched_[g] = true;
  };
  std::optional<size_t> g;
  bool from_back = false;
  for (size_t k = 0; k < mine.size() && !g; ++k)
    if (!groups_[mine[k]].empty()) {
      g = mine[k];
      mine.erase(mine.begin() + static_cast<std::ptrdiff_t>(k));
      move_to(*g);
    }
  if (!g) {
    while (fresh_ < groups_.size() && (touched_[fresh_] || groups_[fresh_].empty())) ++fresh_;
    if (fresh_ < groups_.size()) {
      g = fresh_;
    } else {  // the tail: help the candidate with the most jobs left
      for (size_t k = 0; k < groups_.size(); ++k)
        if (!groups_[k].empty() && (!g || groups_[k].size() > groups_[*g].size())) g = k;
      from_back = true;
    }
    move_to(*g);
  }
  auto& q = groups_[*g];
  const size_t j = from_back ? q.back() : q.front();
  if (from_back)
    q.pop_back();
  else
    q.pop_front();
  --left_;
  return j;
}

}  // namespace evomerge
