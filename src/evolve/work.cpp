#include "evolve/work.h"

#include <algorithm>
#include <chrono>

#include "common/error.h"

namespace evomerge {

namespace {
double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

LocalRunner::LocalRunner(const SearchContext& context) : ctx_(context) {}
LocalRunner::~LocalRunner() = default;

Engine& LocalRunner::load(const CandidateRef& c, double& merge_seconds) {
  if (loaded_ && *loaded_ == c) return *engine_;
  loaded_.reset();
  const auto t0 = std::chrono::steady_clock::now();
  bool built = true;  // false: a PS candidate still merged in a slot
  switch (c.kind) {
    case CandidateKind::Ps:
      if (!ctx_.ps_genome) fail("evolve", "a PS candidate, but the config has no ps section");
      engine_ = &ps_engine(c.x, built);
      break;
    case CandidateKind::Dfs:
      if (!ctx_.dfs_genome) fail("evolve", "a DFS candidate, but the config has no dfs section");
      if (!dfs_ || dfs_models_for_ != c.ps_winner) {
        dfs_.reset();
        dfs_models_.reset();
        dfs_models_.emplace(open_dfs_models(ctx_, c.ps_winner));
        dfs_models_for_ = c.ps_winner;
        dfs_ =
            std::make_unique<DfsEvaluator>(*ctx_.dfs_genome, dfs_models_->models, *ctx_.opt_scorer,
                                           *ctx_.tokenizer, ctx_.scoring, ctx_.engine);
      }
      engine_ = &dfs_->load(c.x);
      break;
    case CandidateKind::Parent:
      parent_engine_.reset();
      parent_engine_ =
          make_candidate_engine(open_folder_weights(c.model), *ctx_.tokenizer, ctx_.engine);
      engine_ = parent_engine_.get();
      break;
  }
  merge_seconds = built ? seconds_since(t0) : 0;
  loaded_ = c;
  return *engine_;
}

Engine& LocalRunner::ps_engine(const std::vector<double>& x, bool& merged) {
  PsSlot* slot = nullptr;
  for (auto& s : ps_slots_)
    if (s.x && *s.x == x) slot = &s;
  merged = slot == nullptr;
  if (!slot) {
    if (ps_slots_.size() < std::max<size_t>(1, ctx_.cached_candidates)) {
      slot = &ps_slots_.emplace_back();
      slot->evaluator =
          std::make_unique<PsEvaluator>(*ctx_.ps_genome, *ctx_.opt_scorer, *ctx_.tokenizer,
                                        ctx_.scoring, ctx_.merge, ctx_.engine);
    } else {
      slot = &*std::min_element(ps_slots_.begin(), ps_slots_.end(),
                                [](const PsSlot& a, const PsSlot& b) { return a.used < b.used; });
    }
    slot->x.reset();  // stays unset if the merge throws: its buffers may be half-merged
    slot->engine = &slot->evaluator->load(x);
    slot->x = x;
  }
  slot->used = ++ps_clock_;
  return *slot->engine;
}

JobResult LocalRunner::run_one(const ScoreJob& job) {
  JobResult r;
  try {
    Engine& engine = load(job.candidate, r.merge_seconds);
    const auto t0 = std::chrono::steady_clock::now();
    eval::Candidate cand{&engine, ctx_.tokenizer.get(), {}, {}};
    eval::ScoreOptions so;
    so.micro_batch = ctx_.scoring.micro_batch;
    so.keep_text = false;
    so.progress = false;
    so.gold_logprob = ctx_.scoring.fitness.gold_logprob_weight != 0;
    r.score = ctx_.scorer(job.split).score_task(job.task, cand, job.items, so);
    r.eval_seconds = seconds_since(t0);
  } catch (const Error& err) {
    loaded_.reset();  // a failed load may leave the buffers half-merged
    r.ok = false;
    r.error = err.what();
  }
  return r;
}

std::vector<JobResult> LocalRunner::run(const std::vector<ScoreJob>& jobs) {
  std::vector<JobResult> out;
  out.reserve(jobs.size());
  for (const auto& j : jobs) out.push_back(run_one(j));
  return out;
}

}  // namespace evomerge
