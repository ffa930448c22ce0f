// The unit of scoring work of an `evomerge evolve` run, and who runs it. A job is one candidate (a
// PS genome, a DFS genome, or a parent model folder) on one task and a list of that task's items;
// its result is the per-item results (eval::TaskScore, text dropped). Jobs are pure: the result is
// a function of the job and the run config, whichever process runs it and in whatever order, so a
// candidate's scoring can be cut into item batches and spread over processes (dist/) and the
// coordinator assembles the same Evaluation as a single process (evolve/scoring.h).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "eval/scorer.h"
#include "evolve/search_context.h"

namespace evomerge {

enum class CandidateKind : uint8_t { Ps, Dfs, Parent };

struct CandidateRef {
  CandidateKind kind = CandidateKind::Ps;
  std::vector<double> x;          // Ps, Dfs: the genome
  std::string model;              // Parent: the model reference
  std::vector<double> ps_winner;  // Dfs when dfs.models names "ps": the PS winner's genome
  bool operator==(const CandidateRef&) const = default;

  static CandidateRef ps(std::vector<double> x) {
    CandidateRef c;
    c.x = std::move(x);
    return c;
  }
  static CandidateRef parent(std::string model) {
    CandidateRef c;
    c.kind = CandidateKind::Parent;
    c.model = std::move(model);
    return c;
  }
};

struct ScoreJob {
  CandidateRef candidate;
  SplitKind split = SplitKind::Opt;
  uint32_t task = 0;          // index into the context's scorer
  std::vector<size_t> items;  // indices into the task's split, in order (external tasks: none)
};

struct JobResult {
  bool ok = true;  // false: the candidate could not be built or scored (see error)
  std::string error;
  eval::TaskScore score;  // items in the job's order; metrics are recomputed on assembly
  double merge_seconds = 0, eval_seconds = 0;
};

class WorkRunner {
 public:
  virtual ~WorkRunner() = default;
  // Results in the order of `jobs`.
  virtual std::vector<JobResult> run(const std::vector<ScoreJob>& jobs) = 0;
  // How many jobs run at once (MPI: the ranks). Callers cut work finer when a batch would have
  // too few jobs to keep every slot busy (scoring.h); results do not depend on it.
  virtual size_t slots() const { return 1; }
};

// Runs jobs in this process, in order. The last candidate built stays loaded, so consecutive jobs
// of one candidate (its item batches, its tasks) build it once; up to
// SearchContext::cached_candidates PS candidates stay merged (the least recently used is replaced),
// so racing's rounds over the same candidates merge each once.
class LocalRunner : public WorkRunner {
 public:
  explicit LocalRunner(const SearchContext& context);
  ~LocalRunner() override;
  std::vector<JobResult> run(const std::vector<ScoreJob>& jobs) override;
  JobResult run_one(const ScoreJob& job);

 private:
  Engine& load(const CandidateRef& candidate, double& merge_seconds);
  Engine& ps_engine(const std::vector<double>& x, bool& merged);

  const SearchContext& ctx_;
  struct PsSlot {
    std::unique_ptr<PsEvaluator> evaluator;
    Engine* engine = nullptr;
    std::optional<std::vector<double>>
        x;              // the genome merged there; nullopt: none (or half-merged)
    uint64_t used = 0;  // when it was last used (ps_clock_)
  };
  std::vector<PsSlot> ps_slots_;
  uint64_t ps_clock_ = 0;
  std::optional<DfsModels> dfs_models_;
  std::vector<double> dfs_models_for_;  // the PS winner dfs_models_ was opened with
  std::unique_ptr<DfsEvaluator> dfs_;
  std::unique_ptr<Engine> parent_engine_;
  std::optional<CandidateRef> loaded_;  // the candidate the current engine holds
  Engine* engine_ = nullptr;
};

}  // namespace evomerge
