#include "evolve/evolve_run.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <set>

#include "common/error.h"
#include "common/progress.h"
#include "eval/paired.h"
#include "evolve/dfs_export.h"
#include "evolve/input_check.h"
#include "evolve/pareto_front.h"
#include "evolve/rng.h"
#include "evolve/scoring.h"
#include "io/files.h"

namespace evomerge {

namespace {

constexpr const char* kVersion = "0.1.0";  // the project version (CMakeLists.txt)

uint64_t derive_seed(uint64_t seed, uint64_t stream) {
  uint64_t x = seed ^ (0x9e3779b97f4a7c15ULL * (stream + 1));
  return splitmix64(x);
}

std::vector<double> weights_of(const eval::Scorer& scorer) {
  std::vector<double> w;
  for (size_t t = 0; t < scorer.num_tasks(); ++t) w.push_back(scorer.weight(t));
  return w;
}

std::string short_name(const std::string& ref) {
  const auto p = std::filesystem::path(ref);
  return p.filename().empty() ? ref : p.filename().string();
}

// Distinct finalists of a phase: the top `k` ok candidates by fitness, then the distribution mean.
std::vector<std::pair<std::string, std::vector<double>>> finalists(const RunStore& store,
                                                                   const std::string& phase,
                                                                   const PhaseOutcome& outcome,
                                                                   int k) {
  auto cands = store.candidates(phase);
  std::stable_sort(
      cands.begin(), cands.end(), [](const CandidateRecord& a, const CandidateRecord& b) {
        const double fa = a.ok ? a.fitness : -INFINITY, fb = b.ok ? b.fitness : -INFINITY;
        return fa > fb;
      });
  std::vector<std::pair<std::string, std::vector<double>>> out;
  std::set<std::vector<double>> seen;
  for (const auto& c : cands) {
    if (static_cast<int>(out.size()) >= k || !c.ok) break;
    auto g = c.genome.get<std::vector<double>>();
    if (!seen.insert(g).second) continue;
    out.push_back(
        {fmt::format("{} #{} (gen {}, idx {})", phase, out.size() + 1, c.generation, c.index), g});
  }
  out.push_back({phase + " mean", outcome.mean_x});
  return out;
}

// The best of `scores` (the first on a tie; NaN never wins); nullopt when every score is <= 0 or
// NaN, where "best" would name an arbitrary point (a grid where nothing answers right).
std::optional<size_t> best_positive(const std::vector<double>& scores) {
  std::optional<size_t> best;
  for (size_t i = 0; i < scores.size(); ++i)
    if (scores[i] > 0 && (!best || scores[i] > scores[*best])) best = i;
  return best;
}

// A final row's per-item results as a report paired_difference() reads (the tasks' metric
// directions from the test scorer).
eval::ScoreReport items_report(const eval::Scorer& scorer, const std::vector<ItemResults>& items) {
  eval::ScoreReport rep;
  for (size_t t = 0; t < items.size() && t < scorer.num_tasks(); ++t) {
    eval::TaskScore ts;
    ts.task = items[t].task;
    const auto& metrics = scorer.task(t).spec().metrics;
    ts.higher_is_better = metrics.empty() || higher_is_better(metrics[0].kind);
    for (size_t i = 0; i < items[t].items.size(); ++i) {
      eval::ItemResult r;
      r.index = static_cast<size_t>(items[t].items[i]);
      r.score = items[t].scores[i];
      ts.items.push_back(r);
    }
    rep.tasks.push_back(std::move(ts));
  }
  return rep;
}

// One run's coordinator state: the context, where work runs, the store and the log.
struct Run {
  const SearchContext& ctx;
  WorkRunner& runner;
  RunStore& store;
  const EvolveRunOptions& opts;
  std::function<void(const std::string&)> log;
  const EvolveConfig& cfg() const { return ctx.config; }
};

// A uniform-grid point: one weight for every PS model, or one per model; density 0.5; clamped into
// each gene's range.
std::vector<double> uniform_x(const Run& run, const std::vector<double>& w) {
  const std::vector<double> per_model =
      w.size() == 1 ? std::vector<double>(run.cfg().ps->models.size(), w[0]) : w;
  return run.ctx.ps_genome->uniform_point(per_model, 0.5);
}

std::string weights_label(const std::vector<double>& w) {
  return w.size() == 1 ? fmt::format("{}", w[0]) : fmt::format("[{}]", fmt::join(w, ", "));
}

struct Finalist {
  std::string label;
  CandidateRef candidate;
  double opt_score = NAN;
};
struct Winner : Finalist {
  std::vector<Finalist> others;  // the finalists not selected, also reported on the test split
};

// What a candidate is, for the final stage's checkpoints: a stored score is reused only for the
// candidate it was computed for.
nlohmann::json candidate_identity(const CandidateRef& c) {
  return {{"kind", static_cast<int>(c.kind)},
          {"x", c.x},
          {"model", c.model},
          {"ps_winner", c.ps_winner}};
}

// Scores the final stage's candidates `todo` (indices into `cands`, in order) in groups of as many
// as the runner has slots, and hands each Evaluation to `scored(i, e)` in `todo`'s order once its
// group is done. One process scores one candidate at a time; with N ranks each rank gets a whole
// candidate of a group (merged once, on one rank) instead of every rank merging every candidate
// for its share of the items (scoring.h cuts a group finer only when it has fewer jobs than the
// ranks can use). A kill loses at most the group in progress.
void score_in_groups(Run& run, const std::vector<CandidateRef>& cands, SplitKind split,
                     const std::vector<std::vector<size_t>>& items, const std::vector<size_t>& todo,
                     const std::function<void(size_t, Evaluation)>& scored) {
  const size_t group = std::max<size_t>(1, run.runner.slots());
  for (size_t g = 0; g < todo.size(); g += group) {
    const size_t end = std::min(todo.size(), g + group);
    std::vector<CandidateRef> some;
    for (size_t k = g; k < end; ++k) some.push_back(cands[todo[k]]);
    auto evals = score_candidates(run.runner, run.ctx, some, split, items);
    for (size_t k = g; k < end; ++k) scored(todo[k], std::move(evals[k - g]));
  }
}

// Selection scores (on the selection items of the opt split) of the final stage's candidates, each
// scored once: `keys[i]` names candidate i in the store's final_stage; a score stored there by an
// earlier, interrupted call is read back, the others are scored (score_in_groups: one at a time in
// one process) and each stored as it is known, so a kill loses at most the group in progress.
// NaN: it failed.
std::vector<double> checkpointed_selection_scores(Run& run, const std::string& tag,
                                                  const std::vector<std::string>& keys,
                                                  const std::vector<CandidateRef>& cands) {
  std::vector<double> scores(cands.size(), NAN);
  std::vector<size_t> todo;
  for (size_t i = 0; i < cands.size(); ++i) {
    const auto stored = run.store.final_stage(keys[i]);
    if (stored && stored->value("candidate", nlohmann::json()).dump() ==
                      candidate_identity(cands[i]).dump()) {
      const auto& s = (*stored)["score"];
      scores[i] = s.is_number() ? s.get<double>() : NAN;
      run.log(fmt::format("{} {}: {} {:.4f} (from the store)", tag, keys[i], run.ctx.selection_name,
                          scores[i]));
    } else {
      todo.push_back(i);
    }
  }
  score_in_groups(
      run, cands, SplitKind::Opt, run.ctx.selection_items, todo, [&](size_t i, Evaluation e) {
        scores[i] = e.ok ? e.total : NAN;
        run.store.put_final_stage(keys[i],
                                  {{"candidate", candidate_identity(cands[i])},
                                   {"score", std::isfinite(scores[i]) ? nlohmann::json(scores[i])
                                                                      : nlohmann::json(nullptr)}});
        run.log(fmt::format("{} {}: {} {:.4f}", tag, keys[i], run.ctx.selection_name, scores[i]));
      });
  return scores;
}

RunStore open_run_store(const EvolveConfig& cfg, const EvolveRunOptions& opts,
                        const std::function<void(const std::string&)>& log) {
  RunInfo info;
  info.config = cfg.to_json();
  info.config_text = opts.config_text;
  info.seed = cfg.seed;
  info.evomerge_version = kVersion;
  RunStore store = RunStore::open(opts.run_dir, info);
  if (store.resumed())
    log(fmt::format("resuming run {} (created {})", opts.run_dir.string(), store.info().created));
  return store;
}

std::string report_line(const GenerationReport& r) {
  return fmt::format(
      "[{}] gen {:>3}  best {:.4f}  median {:.4f}  best-so-far {:.4f}  sigma {:.4f}  lambda {}  "
      "{:.2f} cand/s{}{}",
      r.phase, r.generation, r.best, r.median, r.best_so_far, r.sigma, r.lambda, r.evals_per_second,
      r.failed ? fmt::format("  failed {}", r.failed) : std::string(),
      r.local_stop != StopReason::None
          ? fmt::format("  (restart after {})", stop_reason_name(r.local_stop))
          : std::string());
}

PhaseOutcome run_with_progress(Run& run, Evaluator& ev, const PhaseSpec& spec, int generations) {
  Progress progress(spec.name, static_cast<uint64_t>(generations), "gen", run.opts.progress);
  if (auto last = run.store.last_state(spec.name))
    progress.add(static_cast<uint64_t>(last->generation));
  auto out = run_phase(run.store, ev, spec, [&](const GenerationReport& r) {
    run.log(report_line(r));
    progress.set_note(fmt::format("best {:.3f} sigma {:.3f}", r.best_so_far, r.sigma));
    progress.add(1);
  });
  progress.finish();
  run.log(fmt::format("[{}] {} after {} generations ({}), {} evaluations", spec.name,
                      out.finished ? "finished" : "paused", out.generations,
                      stop_reason_name(out.stop), out.evaluations));
  return out;
}

// One phase's optimiser settings from its config section (PS and DFS share the fields). Seeds are
// derived per phase: `seed_index` for CMA-ES, `seed_index + 1` for the item subsets.
template <typename Genome, typename PhaseConfig>
PhaseSpec phase_spec(const Run& run, const char* name, const Genome& genome,
                     const PhaseConfig& phase, uint64_t seed_index) {
  PhaseSpec spec;
  spec.name = name;
  spec.x0 = genome.initial();
  spec.lower = genome.lower();
  spec.upper = genome.upper();
  spec.sigma0 = phase.sigma0;
  spec.cmaes.lambda = phase.population;
  spec.cmaes.seed = derive_seed(run.cfg().seed, seed_index);
  spec.cmaes.max_generations = phase.generations;
  spec.cmaes.max_fevals = phase.evaluations;
  spec.cmaes.restarts = phase.restarts;
  spec.cmaes.separable = phase.separable;
  // Accuracies are quantised: equal scores are common and not a reason to stop (cmaes.md 4.4).
  spec.cmaes.tol_flat_fitness = -1;
  spec.items_seed = derive_seed(run.cfg().seed, seed_index + 1);
  spec.fresh_items_each_generation = run.cfg().fresh_items;
  spec.stop_after_generations = run.opts.stop_after_generations;
  return spec;
}

// A phase's winner among its finalists (plus `extra` ones), on the selection items (the
// validation part of the opt split, or the whole opt split).
Winner pick_winner(Run& run, const std::string& phase, const PhaseOutcome& outcome,
                   const PhaseEvaluator& ev,
                   std::vector<std::pair<std::string, std::vector<double>>> extra = {}) {
  std::vector<Finalist> all;
  std::vector<CandidateRef> cands;
  std::vector<std::string> keys;
  auto candidates = finalists(run.store, phase, outcome, std::max(1, run.cfg().final.top));
  candidates.insert(candidates.end(), extra.begin(), extra.end());
  for (const auto& [label, x] : candidates) {
    all.push_back({label, ev.candidate(x), NAN});
    cands.push_back(all.back().candidate);
    keys.push_back("finalist " + label);
  }
  const auto scores = checkpointed_selection_scores(run, fmt::format("[{}]", phase), keys, cands);
  Winner w;
  for (size_t i = 0; i < all.size(); ++i) all[i].opt_score = scores[i];
  for (const auto& f : all)
    if (std::isnan(w.opt_score) || f.opt_score > w.opt_score) static_cast<Finalist&>(w) = f;
  for (const auto& f : all)
    if (f.label != w.label) w.others.push_back(f);
  return w;
}

// PS: the search, then its winner. nullopt when the phase paused (stop_after_generations).
std::optional<Winner> run_ps(Run& run, EvolveSummary& summary) {
  const auto& genome = *run.ctx.ps_genome;
  PhaseEvaluator ev(run.ctx, run.runner, CandidateKind::Ps);
  const PhaseSpec spec = phase_spec(run, "ps", genome, *run.cfg().ps, 1);
  run.log(fmt::format("[ps] {} over {} models, {} genes, {} generations", run.cfg().ps->method,
                      run.cfg().ps->models.size(), genome.dimension(), run.cfg().ps->generations));
  summary.ps = run_with_progress(run, ev, spec, run.cfg().ps->generations);
  if (!summary.ps->finished) return std::nullopt;
  // A multi-objective search's result is its front (at most 16 members re-scored). The winner,
  // for DFS and the final table, is still the best weighted total of the finalists; the front
  // members are finalists too, since search fitnesses under per-generation random weights are not
  // comparable across generations.
  std::vector<std::pair<std::string, std::vector<double>>> front;
  if (run.cfg().ps->objective == "pareto")
    for (const auto& m : build_pareto_front(run.store, run.ctx, run.runner, 16, run.log))
      front.push_back({"pareto front " + m.label, m.genome.get<std::vector<double>>()});
  return pick_winner(run, "ps", *summary.ps, ev, front);
}

bool dfs_uses_ps(const EvolveConfig& cfg) {
  return cfg.dfs && std::count(cfg.dfs->models.begin(), cfg.dfs->models.end(), "ps") > 0;
}

std::optional<Winner> run_dfs(Run& run, EvolveSummary& summary, const std::optional<Winner>& ps) {
  const auto& genome = *run.ctx.dfs_genome;
  PhaseEvaluator ev(run.ctx, run.runner, CandidateKind::Dfs,
                    dfs_uses_ps(run.cfg()) ? ps->candidate.x : std::vector<double>{});
  const PhaseSpec spec = phase_spec(run, "dfs", genome, *run.cfg().dfs, 3);
  run.log(fmt::format("[dfs] {} models, T = {}, {} genes, {} generations",
                      run.cfg().dfs->models.size(), genome.indicator_size(), genome.dimension(),
                      run.cfg().dfs->generations));
  summary.dfs = run_with_progress(run, ev, spec, run.cfg().dfs->generations);
  if (!summary.dfs->finished) return std::nullopt;
  // The start, model A's plain path (with PS+DFS the PS winner itself), is a finalist too: DFS is
  // never reported worse than where it started on the selection items.
  return pick_winner(run, "dfs", *summary.dfs, ev, {{"dfs start (model A's plain path)", spec.x0}});
}

// The uniform merge of the grid that scores best on the selection items (nullopt: none, or every
// point scores 0).
struct UniformBest {
  std::vector<double> weights;
  double opt_score = -INFINITY;
};
std::optional<UniformBest> best_uniform_merge(Run& run) {
  const auto& cfg = run.cfg();
  if (!cfg.ps || cfg.ps->method == "slerp" || cfg.final.uniform_grid.empty()) return std::nullopt;
  std::vector<CandidateRef> cands;
  std::vector<std::string> keys;
  for (const auto& w : cfg.final.uniform_grid) {
    cands.push_back(CandidateRef::ps(uniform_x(run, w)));
    keys.push_back("uniform weight " + weights_label(w));
  }
  const auto scores = checkpointed_selection_scores(run, "[final]", keys, cands);
  const auto best = best_positive(scores);
  if (!best) {
    run.log(fmt::format("[final] every uniform grid point scores 0 on {}: no best uniform merge",
                        run.ctx.selection_name));
    return std::nullopt;
  }
  return UniformBest{cfg.final.uniform_grid[*best], scores[*best]};
}

// A final-table row before it is scored.
struct FinalRow {
  FinalKind kind;
  std::string phase, label;
  CandidateRef candidate;
  nlohmann::json details;  // what the row is (genome, model or weights), how it was selected
};

FinalResult final_row(const FinalRow& row, const std::string& split, Evaluation e) {
  FinalResult r;
  r.kind = row.kind;
  r.phase = row.phase;
  r.label = row.label;
  r.split = split;
  r.task_scores = e.task_scores;
  r.score = e.ok ? e.total : NAN;
  r.ci_low = e.ci_low;
  r.ci_high = e.ci_high;
  r.details = row.details;
  // Why a row has no score; also how a stored row is known to have failed.
  if (!e.ok) r.details["error"] = e.error;
  r.items = std::move(e.items);  // per task, for paired comparisons of the final rows
  return r;
}

// Whether a stored final row was scored for the candidate `row` describes (its genome, model or
// uniform weights; the label names the rest).
bool scored_for(const FinalResult& stored, const FinalRow& row) {
  for (const char* key : {"genome", "model", "weight"})
    if (stored.details.value(key, nlohmann::json()).dump() !=
        row.details.value(key, nlohmann::json()).dump())
      return false;
  return stored.kind == row.kind;
}

// A stored final row as the Evaluation it was made from.
Evaluation stored_evaluation(FinalResult stored) {
  Evaluation e;
  e.ok = !stored.details.contains("error");
  if (!e.ok) e.error = stored.details["error"].get<std::string>();
  e.total = stored.score;
  e.ci_low = stored.ci_low;
  e.ci_high = stored.ci_high;
  e.task_scores = std::move(stored.task_scores);
  e.items = std::move(stored.items);
  return e;
}

// The rows' evaluations on the test split, each row scored once: a row stored (with its per-item
// results) by an earlier, interrupted call is read back; the others are scored (score_in_groups:
// one at a time in one process) and stored as each is known, so a kill during the final table
// loses at most the group of rows in progress.
std::vector<Evaluation> score_final_rows(Run& run, const std::vector<FinalRow>& rows) {
  const std::string& split = run.cfg().test_split;
  std::vector<Evaluation> evals(rows.size());
  std::vector<CandidateRef> cands;
  std::vector<size_t> todo;
  for (size_t i = 0; i < rows.size(); ++i) {
    const FinalRow& row = rows[i];
    cands.push_back(row.candidate);
    if (auto stored = run.store.final_result(row.label, split);
        stored && scored_for(*stored, row)) {
      evals[i] = stored_evaluation(std::move(*stored));
      run.log(fmt::format("[final] {}: {} {:.4f} (from the store)", row.label, split,
                          evals[i].ok ? evals[i].total : NAN));
    } else {
      todo.push_back(i);
    }
  }
  score_in_groups(run, cands, SplitKind::Test, {}, todo, [&](size_t i, Evaluation e) {
    evals[i] = std::move(e);
    const FinalResult r = final_row(rows[i], split, evals[i]);
    run.store.add_final_result(r);
    run.log(fmt::format("[final] {}: {} {:.4f} [{:.4f}, {:.4f}]", r.label, split, r.score, r.ci_low,
                        r.ci_high));
  });
  return evals;
}

// The final table on the test split: the parents, the best uniform merge, the winners (the run's
// winner marked), then the finalists not selected (for the record: the winners were selected on the
// selection items alone, so these rows cannot change which model is exported). Each row is scored
// once (score_final_rows). The paired differences of the winner against the best parent and the
// best uniform merge go into the winner row's details ("paired", keyed by the other row's label).
void score_final_table(Run& run, const std::optional<Winner>& ps,
                       const std::optional<Winner>& dfs) {
  const auto& cfg = run.cfg();
  // The run's winner: the phase winner that scores higher on the selection items (PS on a tie).
  const bool dfs_won = dfs && (!ps || dfs->opt_score > ps->opt_score);
  if (ps || dfs)
    run.log(fmt::format("[final] run winner: {} ({} {:.4f})", dfs_won ? "DFS" : "PS",
                        run.ctx.selection_name, dfs_won ? dfs->opt_score : ps->opt_score));
  const auto winner_mark = [&](bool won) {
    return won ? fmt::format(" [winner on {}]", run.ctx.selection_name) : std::string();
  };
  std::vector<FinalRow> rows;
  for (const auto& p : run.ctx.parents)
    rows.push_back({FinalKind::Parent,
                    "",
                    "parent: " + short_name(p),
                    CandidateRef::parent(p),
                    {{"model", p}}});
  const auto u = best_uniform_merge(run);
  if (u)
    rows.push_back({FinalKind::Uniform,
                    "",
                    fmt::format("uniform {} w={}", cfg.ps->method, weights_label(u->weights)),
                    CandidateRef::ps(uniform_x(run, u->weights)),
                    {{"weight", u->weights}, {"opt_score", u->opt_score}}});
  if (ps)
    rows.push_back({FinalKind::EvolvedPs,
                    "ps",
                    "evolved PS (" + ps->label + ")" + winner_mark(!dfs_won),
                    ps->candidate,
                    {{"genome", ps->candidate.x},
                     {"opt_score", ps->opt_score},
                     {"selected_on", run.ctx.selection_name},
                     {"winner", !dfs_won},
                     {"params", run.ctx.ps_genome->describe(ps->candidate.x)}}});
  const bool dfs_on_ps = cfg.ps && cfg.dfs && cfg.dfs->models[0] == "ps";
  if (dfs)
    rows.push_back({dfs_on_ps ? FinalKind::EvolvedPsDfs : FinalKind::EvolvedDfs,
                    "dfs",
                    std::string(dfs_on_ps ? "evolved PS+DFS" : "evolved DFS") + " (" + dfs->label +
                        ")" + winner_mark(dfs_won),
                    dfs->candidate,
                    {{"genome", dfs->candidate.x},
                     {"opt_score", dfs->opt_score},
                     {"selected_on", run.ctx.selection_name},
                     {"winner", dfs_won},
                     {"params", run.ctx.dfs_genome->describe(dfs->candidate.x)}}});
  for (const auto& [w, phase] : {std::pair{&ps, "ps"}, {&dfs, "dfs"}})
    if (*w)
      for (const auto& f : (*w)->others)
        rows.push_back({FinalKind::Finalist,
                        phase,
                        fmt::format("{} finalist {} (not selected)",
                                    phase == std::string("ps") ? "PS" : "DFS", f.label),
                        f.candidate,
                        {{"genome", f.candidate.x}, {"opt_score", f.opt_score}}});

  auto evals = score_final_rows(run, rows);
  // Rows the winner is compared with on the same test items: the best parent on test (the
  // comparison least flattering to the merge) and the best uniform merge.
  std::optional<size_t> best_parent, uniform_row, winner_row;
  for (size_t i = 0; i < rows.size(); ++i) {
    const double score = evals[i].ok ? evals[i].total : NAN;
    if (rows[i].kind == FinalKind::Parent && (!best_parent || score > evals[*best_parent].total))
      best_parent = i;
    if (rows[i].kind == FinalKind::Uniform) uniform_row = i;
    if (rows[i].details.value("winner", false)) winner_row = i;
  }
  if (winner_row && evals[*winner_row].ok)
    for (const auto other : {best_parent, uniform_row}) {
      if (!other || !evals[*other].ok) continue;
      const auto d =
          eval::paired_difference(items_report(*run.ctx.test_scorer, evals[*winner_row].items),
                                  items_report(*run.ctx.test_scorer, evals[*other].items),
                                  weights_of(*run.ctx.test_scorer));
      rows[*winner_row].details["paired"][rows[*other].label] = {
          {"difference", d.difference}, {"ci", {d.ci.lo, d.ci.hi}}, {"items", d.items}};
      run.log(fmt::format("[final] paired: winner - {}: {:+.4f} [{:+.4f}, {:+.4f}] over {} items",
                          rows[*other].label, d.difference, d.ci.lo, d.ci.hi, d.items));
    }
  // The winner's row, stored when it was scored, gets its paired differences (in place: same id).
  if (winner_row && rows[*winner_row].details.contains("paired"))
    run.store.add_final_result(
        final_row(rows[*winner_row], run.cfg().test_split, Evaluation(evals[*winner_row])));
}

// The recipe and the exported models, each recorded in the store. (results.md and report.html are
// the report stage's, written from the store: report/report.h.)
void write_outputs(Run& run, const std::optional<Winner>& ps, const std::optional<Winner>& dfs,
                   EvolveSummary& summary) {
  const auto& cfg = run.cfg();
  const auto& dir = run.opts.run_dir;
  if (ps) {
    // DARE-style methods sample with the run's seed: the header says how to rebuild the model.
    // A non-default precision scored it: the header says so (`eval --precision` reproduces it).
    const std::string scored_with =
        cfg.precision == Precision::Exact
            ? std::string()
            : fmt::format("; scored with `evomerge eval ps_best.yml --precision {}`",
                          precision_name(cfg.precision));
    write_file_atomic(
        dir / "ps_best.yml",
        fmt::format("# evolved by evomerge (run seed {0}); the scored model is "
                    "`evomerge merge ps_best.yml OUT --random-seed {0}`{2}\n{1}",
                    cfg.seed, run.ctx.ps_genome->to_yaml(ps->candidate.x), scored_with));
    run.store.add_artifact("recipe", dir / "ps_best.yml");
    if (cfg.final.export_models) {
      FolderOptions fo;
      fo.replace_existing = true;
      merge_to_folder(run.ctx.ps_genome->decode(ps->candidate.x), dir / "ps_best_model",
                      run.ctx.merge, fo);
      run.store.add_artifact("model", dir / "ps_best_model");
    }
  }
  if (dfs && cfg.final.export_models) {
    const DfsModels models = open_dfs_models(run.ctx, dfs->candidate.ps_winner);
    DfsExportOptions eopt;
    eopt.aux_from = models.aux_a;
    eopt.replace_existing = true;
    export_dfs_model(models.models, run.ctx.dfs_genome->decode(dfs->candidate.x),
                     models.config_json_a, dir / "dfs_best_model", eopt);
    run.store.add_artifact("dfs-model", dir / "dfs_best_model");
  }
  summary.table = run.store.final_results();
  // A multi-objective run's front as Markdown next to the store's pareto_front table (the report
  // stage may render it too).
  if (const auto front = run.store.pareto_front("ps"); !front.empty()) {
    std::vector<std::string> tasks;
    for (size_t t = 0; t < run.ctx.opt_scorer->num_tasks(); ++t)
      tasks.push_back(run.ctx.opt_scorer->task(t).name());
    write_file_atomic(
        dir / "pareto_front.md",
        fmt::format("# evomerge evolve: Pareto front of the PS search\n\n{} members, each task an "
                    "objective, non-dominated on {}:\n\n{}",
                    front.size(), run.ctx.selection_name,
                    format_pareto_table(front, tasks, run.ctx.selection_name, cfg.test_split)));
    run.store.add_artifact("pareto-front", dir / "pareto_front.md");
  }
  summary.artifacts = run.store.artifacts();
  summary.complete = true;
  run.store.put_final_stage("complete", {{"rows", summary.table.size()}});
}

// A finished run run again: its table and artifacts from the store, nothing scored again.
EvolveSummary finished_summary(const RunStore& store) {
  EvolveSummary s;
  for (const char* phase : {"ps", "dfs"})
    if (auto r = store.phase_result(phase)) {
      auto o = PhaseOutcome::from_json(*r);
      o.resumed = true;
      (std::string(phase) == "ps" ? s.ps : s.dfs) = o;
    }
  s.table = store.final_results();
  s.artifacts = store.artifacts();
  s.complete = true;
  return s;
}

}  // namespace

EvolveSummary run_evolve(const EvolveConfig& cfg, const EvolveRunOptions& opts) {
  const SearchContext ctx = build_search_context(cfg);  // every input checked before any work
  LocalRunner runner(ctx);
  return run_evolve_with(ctx, runner, opts);
}

EvolveSummary run_evolve_with(const SearchContext& ctx, WorkRunner& runner,
                              const EvolveRunOptions& opts) {
  auto log =
      opts.log ? opts.log : [](const std::string& line) { fmt::print(stderr, "{}\n", line); };
  RunStore store = open_run_store(ctx.config, opts, log);
  check_inputs(store, fingerprint_inputs(ctx.config), opts.allow_changed_inputs, log);
  if (store.final_stage("complete")) {
    log(fmt::format("run {} is finished; its table from the store", opts.run_dir.string()));
    return finished_summary(store);
  }
  Run run{ctx, runner, store, opts, log};
  EvolveSummary summary;
  std::optional<Winner> ps, dfs;
  if (ctx.config.ps && !(ps = run_ps(run, summary))) return summary;
  if (ctx.config.dfs && !(dfs = run_dfs(run, summary, ps))) return summary;
  score_final_table(run, ps, dfs);
  write_outputs(run, ps, dfs, summary);
  return summary;
}

}  // namespace evomerge
