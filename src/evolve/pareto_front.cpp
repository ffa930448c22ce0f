#include "evolve/pareto_front.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "evolve/pareto.h"
#include "evolve/scoring.h"

namespace evomerge {

namespace {

// A stored candidate's task scores as objectives to maximise (a perplexity is negated: dominance
// only needs the direction). NaN where a score is missing.
std::vector<double> search_objectives(const eval::Scorer& scorer, const CandidateRecord& c) {
  std::vector<double> v;
  for (size_t t = 0; t < scorer.num_tasks(); ++t) {
    const auto& spec = scorer.task(t).spec();
    const auto it = c.task_scores.find(spec.name);
    if (it == c.task_scores.end() || !it->is_number()) {
      v.push_back(NAN);
      continue;
    }
    const bool up = spec.metrics.empty() || higher_is_better(spec.metrics[0].kind);
    v.push_back(up ? it->get<double>() : -it->get<double>());
  }
  return v;
}

double mean_of(const std::vector<double>& v) {
  return std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
}

// Step 1: the pre-filtered searched candidates (label, genome).
std::vector<std::pair<std::string, std::vector<double>>> searched_front(const RunStore& store,
                                                                        const eval::Scorer& scorer,
                                                                        size_t max_members) {
  std::vector<std::pair<std::string, std::vector<double>>> cands;
  std::vector<std::vector<double>> objs;
  for (const auto& c : store.candidates("ps")) {
    if (!c.ok) continue;
    auto x = c.genome.get<std::vector<double>>();
    if (std::any_of(cands.begin(), cands.end(), [&](const auto& o) { return o.second == x; }))
      continue;
    cands.push_back({fmt::format("ps gen {} idx {}", c.generation, c.index), std::move(x)});
    objs.push_back(search_objectives(scorer, c));
  }
  std::vector<size_t> keep = non_dominated(objs);
  std::stable_sort(keep.begin(), keep.end(),
                   [&](size_t a, size_t b) { return mean_of(objs[a]) > mean_of(objs[b]); });
  if (keep.size() > max_members) keep.resize(max_members);
  std::sort(keep.begin(), keep.end());  // back to search order
  std::vector<std::pair<std::string, std::vector<double>>> out;
  for (size_t i : keep) out.push_back(cands[i]);
  return out;
}

}  // namespace

std::vector<ParetoMember> build_pareto_front(RunStore& store, const SearchContext& ctx,
                                             WorkRunner& runner, size_t max_members,
                                             const std::function<void(const std::string&)>& log) {
  if (auto stored = store.pareto_front("ps"); !stored.empty()) return stored;
  const auto pre = searched_front(store, *ctx.opt_scorer, std::max<size_t>(1, max_members));
  std::vector<CandidateRef> refs;
  for (const auto& p : pre) refs.push_back(CandidateRef::ps(p.second));
  const auto sel = score_candidates(runner, ctx, refs, SplitKind::Opt, ctx.selection_items);
  std::vector<std::vector<double>> objs;
  for (const auto& e : sel)
    objs.push_back(e.ok ? e.objectives : std::vector<double>(ctx.opt_scorer->num_tasks(), NAN));
  const std::vector<size_t> front = non_dominated(objs);
  std::vector<CandidateRef> front_refs;
  for (size_t i : front) front_refs.push_back(refs[i]);
  const auto test = score_candidates(runner, ctx, front_refs, SplitKind::Test);
  std::vector<ParetoMember> out;
  for (size_t k = 0; k < front.size(); ++k) {
    const size_t i = front[k];
    ParetoMember m;
    m.label = pre[i].first;
    m.genome = pre[i].second;
    m.params = sel[i].params;
    m.selection_scores = sel[i].task_scores;
    if (test[k].ok) m.test_scores = test[k].task_scores;
    out.push_back(std::move(m));
  }
  log(fmt::format("[ps] pareto front: {} of {} pre-filtered candidates non-dominated on {}",
                  out.size(), pre.size(), ctx.selection_name));
  store.set_pareto_front("ps", out);
  return out;
}

std::string format_pareto_table(const std::vector<ParetoMember>& front,
                                const std::vector<std::string>& tasks,
                                const std::string& selection_name, const std::string& test_name) {
  auto cell = [](const nlohmann::json& scores, const std::string& task) {
    const auto it = scores.find(task);
    return it != scores.end() && it->is_number() ? fmt::format("{:.4f}", it->get<double>())
                                                 : std::string("-");
  };
  std::string head = "| member |", rule = "|---|";
  for (const auto& t : tasks) {
    head += fmt::format(" {} ({}) |", t, selection_name);
    rule += "---|";
  }
  for (const auto& t : tasks) {
    head += fmt::format(" {} ({}) |", t, test_name);
    rule += "---|";
  }
  std::string out = head + "\n" + rule + "\n";
  for (const auto& m : front) {
    out += "| " + m.label + " |";
    for (const auto& t : tasks) out += " " + cell(m.selection_scores, t) + " |";
    for (const auto& t : tasks) out += " " + cell(m.test_scores, t) + " |";
    out += "\n";
  }
  return out;
}

}  // namespace evomerge
