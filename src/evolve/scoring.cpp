#include "evolve/scoring.h"

#include <algorithm>
#include <cmath>

#include "common/error.h"
#include "evolve/pareto.h"
#include "evolve/race.h"

namespace evomerge {

namespace {

nlohmann::json describe(const SearchContext& ctx, const CandidateRef& c) {
  if (c.kind == CandidateKind::Ps) return ctx.ps_genome->describe(c.x);
  if (c.kind == CandidateKind::Dfs) return ctx.dfs_genome->describe(c.x);
  return nlohmann::json::object();
}

// The items of task t to score: the given list, or the whole split when none is given.
std::vector<size_t> task_items(const eval::Scorer& scorer, size_t t,
                               const std::vector<std::vector<size_t>>& items) {
  if (scorer.task(t).spec().external) return {};
  if (items.empty() || items[t].empty()) return scorer.all_items(t);
  return items[t];
}

// Jobs per slot below which a batch's candidates are cut finer when there are several slots: with
// one job per candidate and 4 candidates per slot, the slowest candidate is the batch's tail while
// the other slots idle (measured: 2 ranks idled ~20%); at 16 jobs per slot the tail is a small
// fraction of a candidate. Pieces of one candidate mostly stay on one rank (dist/ hands a rank
// more of the candidate it holds), so the finer cut adds few merges.
constexpr size_t kJobsPerSlot = 16;

// Items per job: job_items rounded down to a whole number of micro-batches (at least one), then,
// with several slots and while the batch (`sizes`: the item counts of its candidate x task pieces,
// 0 for an external task) would have fewer than kJobsPerSlot jobs per slot, one micro-batch less.
// Whole micro-batches keep every per-item result independent of the cut.
size_t job_size(const ScoringOptions& o, size_t slots, const std::vector<size_t>& sizes) {
  const size_t mb = std::max<size_t>(1, o.micro_batch);
  size_t per_job = std::max<size_t>(1, o.job_items / mb) * mb;
  if (slots <= 1) return per_job;
  auto jobs_at = [&](size_t s) {
    size_t n = 0;
    for (size_t items : sizes) n += std::max<size_t>(1, (items + s - 1) / s);
    return n;
  };
  while (per_job > mb && jobs_at(per_job) < kJobsPerSlot * slots) per_job -= mb;
  return per_job;
}

// Appends a job's results to a task's running score (the first job's TaskScore is the template).
void append(eval::TaskScore& into, bool& first, JobResult&& part) {
  if (first) {
    into = std::move(part.score);
    first = false;
    return;
  }
  into.requested += part.score.requested;
  into.items.insert(into.items.end(), std::make_move_iterator(part.score.items.begin()),
                    std::make_move_iterator(part.score.items.end()));
  if (part.score.failed && !into.failed) {
    into.failed = true;
    into.error = part.score.error;
  }
}

// One candidate's Evaluation from its tasks' assembled scores.
Evaluation to_evaluation(const eval::Scorer& scorer, std::vector<eval::TaskScore> tasks,
                         const ScoringOptions& options) {
  eval::ScoreReport rep;
  for (size_t t = 0; t < tasks.size(); ++t) {
    // An external task's score is the command's, not an aggregate of items (it has none).
    if (!scorer.task(t).spec().external) eval::aggregate_task_score(scorer.task(t), tasks[t]);
    rep.tasks.push_back(std::move(tasks[t]));
  }
  const std::vector<double> w = scorer_weights(scorer);
  eval::aggregate_report(rep, w);
  Evaluation e;
  fill_evaluation(rep, w, options, e);
  return e;
}

// Per candidate and task, the results of its jobs in item order.
struct Assembly {
  std::vector<std::vector<eval::TaskScore>> tasks;  // [candidate][task]
  std::vector<std::vector<bool>> empty;             // no job appended yet
  std::vector<std::string> error;                   // first job error of a candidate
  std::vector<double> merge_s, eval_s;
  Assembly(size_t n, size_t n_tasks)
      : tasks(n, std::vector<eval::TaskScore>(n_tasks)),
        empty(n, std::vector<bool>(n_tasks, true)),
        error(n),
        merge_s(n, 0),
        eval_s(n, 0) {}
  void add(size_t c, size_t t, JobResult&& r) {
    merge_s[c] += r.merge_seconds;
    eval_s[c] += r.eval_seconds;
    if (!r.ok) {
      if (error[c].empty()) error[c] = std::move(r.error);
      return;
    }
    bool first = empty[c][t];
    append(tasks[c][t], first, std::move(r));
    empty[c][t] = first;
  }
  Evaluation evaluation(size_t c, const eval::Scorer& scorer, const ScoringOptions& o) {
    Evaluation e;
    if (!error[c].empty()) {
      e.ok = false;
      e.error = error[c];
    } else {
      e = to_evaluation(scorer, std::move(tasks[c]), o);
    }
    e.merge_seconds = merge_s[c];
    e.eval_seconds = eval_s[c];
    return e;
  }
};

}  // namespace

std::vector<Evaluation> score_candidates(WorkRunner& runner, const SearchContext& ctx,
                                         const std::vector<CandidateRef>& candidates,
                                         SplitKind split,
                                         const std::vector<std::vector<size_t>>& items) {
  const eval::Scorer& scorer = ctx.scorer(split);
  std::vector<std::vector<size_t>> per_task(scorer.num_tasks());
  std::vector<size_t> sizes;
  for (size_t t = 0; t < scorer.num_tasks(); ++t) per_task[t] = task_items(scorer, t, items);
  for (size_t c = 0; c < candidates.size(); ++c)
    for (const auto& all : per_task) sizes.push_back(all.size());
  const size_t per_job = job_size(ctx.scoring, runner.slots(), sizes);
  std::vector<ScoreJob> jobs;
  std::vector<std::pair<size_t, size_t>> owner;  // job -> (candidate, task)
  for (size_t c = 0; c < candidates.size(); ++c)
    for (size_t t = 0; t < scorer.num_tasks(); ++t) {
      const auto& all = per_task[t];
      size_t start = 0;
      do {  // an external task (no items) is one job
        const size_t end = std::min(all.size(), start + per_job);
        jobs.push_back({candidates[c], split, static_cast<uint32_t>(t),
                        std::vector<size_t>(all.begin() + static_cast<std::ptrdiff_t>(start),
                                            all.begin() + static_cast<std::ptrdiff_t>(end))});
        owner.push_back({c, t});
        start = end;
      } while (start < all.size());
    }
  auto results = runner.run(jobs);
  if (results.size() != jobs.size())
    fail("evolve", "the work runner returned {} results for {} jobs", results.size(), jobs.size());
  Assembly a(candidates.size(), scorer.num_tasks());
  for (size_t j = 0; j < jobs.size(); ++j)
    a.add(owner[j].first, owner[j].second, std::move(results[j]));
  std::vector<Evaluation> out;
  for (size_t c = 0; c < candidates.size(); ++c) {
    out.push_back(a.evaluation(c, scorer, ctx.scoring));
    out.back().params = describe(ctx, candidates[c]);
  }
  return out;
}

std::vector<Evaluation> score_racing(WorkRunner& runner, const SearchContext& ctx,
                                     const std::vector<CandidateRef>& candidates,
                                     const std::vector<std::vector<size_t>>& items) {
  const eval::Scorer& scorer = *ctx.opt_scorer;
  if (scorer.num_tasks() != 1) fail("evolve", "racing needs a single task");
  const auto all = task_items(scorer, 0, items);
  const size_t n = candidates.size(), total = all.size();
  const size_t round = std::max<size_t>(1, ctx.scoring.micro_batch);
  const size_t mu = n / 2;
  Assembly a(n, 1);
  std::vector<RaceTally> tally(n);
  std::vector<bool> live(n, true), stopped(n, false);
  size_t done = 0;
  while (done < total) {
    const size_t end = std::min(total, done + round);
    std::vector<ScoreJob> jobs;
    std::vector<size_t> who;
    for (size_t c = 0; c < n; ++c)
      if (live[c]) {
        jobs.push_back({candidates[c], SplitKind::Opt, 0,
                        std::vector<size_t>(all.begin() + static_cast<std::ptrdiff_t>(done),
                                            all.begin() + static_cast<std::ptrdiff_t>(end))});
        who.push_back(c);
      }
    if (jobs.empty()) break;
    auto results = runner.run(jobs);
    for (size_t j = 0; j < jobs.size(); ++j) {
      const size_t c = who[j];
      if (!results[j].ok) live[c] = false, tally[c].failed = true;  // reported as failed
      for (const auto& it : results[j].score.items) tally[c].add(it);
      a.add(c, 0, std::move(results[j]));
    }
    done = end;
    if (done >= total) continue;
    const auto stop = race_stops(tally, live, total, mu, ctx.scoring.fitness);
    for (size_t c = 0; c < n; ++c)
      if (stop[c]) live[c] = false, stopped[c] = true;
  }
  std::vector<Evaluation> out;
  for (size_t c = 0; c < n; ++c) {
    Evaluation e = a.evaluation(c, scorer, ctx.scoring);
    if (stopped[c] && e.ok) {
      e.raced_out = true;
      e.fitness = race_bounds(tally[c], total, ctx.scoring.fitness).upper;
    }
    e.params = describe(ctx, candidates[c]);
    out.push_back(std::move(e));
  }
  return out;
}

PhaseEvaluator::PhaseEvaluator(const SearchContext& context, WorkRunner& runner, CandidateKind kind,
                               std::vector<double> ps_winner)
    : ctx_(context), runner_(runner), kind_(kind), ps_winner_(std::move(ps_winner)) {}

CandidateRef PhaseEvaluator::candidate(const std::vector<double>& x) const {
  CandidateRef c;
  c.kind = kind_;
  c.x = x;
  if (kind_ == CandidateKind::Dfs) c.ps_winner = ps_winner_;
  return c;
}

std::vector<Evaluation> PhaseEvaluator::evaluate(const std::vector<std::vector<double>>& genomes,
                                                 uint64_t item_seed) {
  const auto items = select_items(*ctx_.opt_scorer, ctx_.scoring.items_per_task, item_seed,
                                  ctx_.scoring.search_pool);
  std::vector<CandidateRef> cands;
  for (const auto& x : genomes) cands.push_back(candidate(x));
  if (can_race(*ctx_.opt_scorer, ctx_.scoring)) return score_racing(runner_, ctx_, cands, items);
  auto evals = score_candidates(runner_, ctx_, cands, SplitKind::Opt, items);
  if (kind_ == CandidateKind::Ps && ctx_.config.ps && ctx_.config.ps->objective == "pareto") {
    // This generation's random trade-off between the tasks (evolve/pareto.h).
    const auto w =
        simplex_weights(ctx_.opt_scorer->num_tasks(), scalarisation_seed(item_seed, genomes));
    for (auto& e : evals)
      if (e.ok && e.objectives.size() == w.size()) e.fitness = scalarise(e.objectives, w);
  }
  return evals;
}

}  // namespace evomerge
