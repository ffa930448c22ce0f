// Scoring candidates through a WorkRunner: the search's generations, the finalists on the whole
// optimisation split and the final table on the test split all go through score_candidates(), so
// the same work can run in this process (LocalRunner) or be spread over MPI ranks (dist/).
//
// A candidate's items are cut into jobs of ScoringOptions::job_items items (a multiple of the
// engine micro-batch, so the engine sees the same batches as one call over all items: the per-item
// results, and so every score, do not depend on the cut), and finer, down to one micro-batch, when
// a batch would otherwise give a runner of several slots fewer than 16 jobs per slot
// (WorkRunner::slots: with 8 candidates on 2 ranks the slowest candidate would be the batch's
// tail). Per-item results are concatenated in item order and the task scores and weighted total
// recomputed from them (eval::aggregate_task_score).
//
// Racing (one task only) runs in rounds of one micro-batch per live candidate: after each round a
// candidate stops when the optimistic bound of its fitness is below the mu-th best pessimistic
// bound of the generation (mu = lambda / 2; the bounds, tie-breaker included: evolve/race.h). A
// stopped candidate's fitness is its optimistic bound, which ranks it below the top mu. Every
// decision reads the scores of whole rounds only, never the order in which jobs finish.
#pragma once

#include <cstdint>
#include <vector>

#include "evolve/search.h"
#include "evolve/work.h"

namespace evomerge {

// One Evaluation per candidate, on `items[t]` of each task t of the split (empty, or items[t]
// empty: every item of the split). Ps/Dfs candidates get their decoded parameters in `params`.
std::vector<Evaluation> score_candidates(WorkRunner& runner, const SearchContext& context,
                                         const std::vector<CandidateRef>& candidates,
                                         SplitKind split,
                                         const std::vector<std::vector<size_t>>& items = {});

// The racing rounds above (a one-task scorer; items[0] the generation's items).
std::vector<Evaluation> score_racing(WorkRunner& runner, const SearchContext& context,
                                     const std::vector<CandidateRef>& candidates,
                                     const std::vector<std::vector<size_t>>& items);

// A phase's evaluator: genomes of one kind, the generation's items (select_items), racing when
// configured and the scorer has one task; with ps.objective pareto a PS candidate's fitness is the
// generation's random scalarisation of its task objectives (evolve/pareto.h).
class PhaseEvaluator : public Evaluator {
 public:
  PhaseEvaluator(const SearchContext& context, WorkRunner& runner, CandidateKind kind,
                 std::vector<double> ps_winner = {});
  std::vector<Evaluation> evaluate(const std::vector<std::vector<double>>& genomes,
                                   uint64_t item_seed) override;
  CandidateRef candidate(const std::vector<double>& x) const;

 private:
  const SearchContext& ctx_;
  WorkRunner& runner_;
  CandidateKind kind_;
  std::vector<double> ps_winner_;
};

}  // namespace evomerge
