#include "dist/job_queue.h"

#include "common/error.h"

namespace evomerge {

JobQueue::JobQueue(const std::vector<ScoreJob>& jobs,
                   const std::vector<std::optional<CandidateRef>>& held)
    : held_(held.size()), left_(jobs.size()) {
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
  for (size_t r = 0; r < held.size(); ++r) {
    if (!held[r]) continue;
    for (size_t g = 0; g < groups_.size(); ++g)
      if (*group_candidate[g] == *held[r]) {
        held_[r] = g;
        touched_[g] = true;
        break;
      }
  }
}

size_t JobQueue::take(int rank) {
  if (left_ == 0) fail("dist", "no job left to hand out");
  const auto r = static_cast<size_t>(rank);
  if (r >= held_.size()) fail("dist", "rank {} of {}", rank, held_.size());
  auto move_to = [&](size_t g) {
    held_[r] = g;
    touched_[g] = true;
  };
  std::optional<size_t> g;
  bool from_back = false;
  if (held_[r] && !groups_[*held_[r]].empty()) {
    g = held_[r];
  } else {
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
