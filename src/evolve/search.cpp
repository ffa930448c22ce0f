#include "evolve/search.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "common/error.h"
#include "common/interrupt.h"
#include "evolve/rng.h"

namespace evomerge {

namespace {
nlohmann::json num(double v) {
  if (std::isfinite(v)) return v;
  return nullptr;
}
double get_num(const nlohmann::json& j) {
  return j.is_number() ? j.get<double>() : std::nan("");
}
}  // namespace

nlohmann::json PhaseOutcome::to_json() const {
  return {{"finished", finished},
          {"stop", std::string(stop_reason_name(stop))},
          {"generations", generations},
          {"evaluations", evaluations},
          {"best_x", best_x},
          {"best_fitness", num(best_fitness)},
          {"mean_x", mean_x}};
}

PhaseOutcome PhaseOutcome::from_json(const nlohmann::json& j) {
  PhaseOutcome o;
  try {
    o.finished = j.at("finished").get<bool>();
    const auto stop = j.at("stop").get<std::string>();
    for (int r = 0; r <= static_cast<int>(StopReason::Manual); ++r)
      if (stop_reason_name(static_cast<StopReason>(r)) == stop) o.stop = static_cast<StopReason>(r);
    o.generations = j.at("generations").get<int64_t>();
    o.evaluations = j.at("evaluations").get<int64_t>();
    o.best_x = j.at("best_x").get<std::vector<double>>();
    o.best_fitness = get_num(j.at("best_fitness"));
    o.mean_x = j.at("mean_x").get<std::vector<double>>();
  } catch (const nlohmann::json::exception& e) {
    fail("evolve", "stored phase result: {}", e.what());
  }
  return o;
}

uint64_t generation_item_seed(const PhaseSpec& spec, int64_t generation) {
  // Mix the phase name in, so PS and DFS draw different subsets from one run seed.
  uint64_t x = spec.items_seed;
  for (unsigned char c : spec.name) x = x * 131 + c;
  if (spec.fresh_items_each_generation)
    x += 0x9e3779b97f4a7c15ULL * static_cast<uint64_t>(generation);
  return splitmix64(x);
}

PhaseOutcome run_phase(RunStore& store, Evaluator& evaluator, const PhaseSpec& spec,
                       const std::function<void(const GenerationReport&)>& on_generation) {
  if (auto done = store.phase_result(spec.name)) {
    auto o = PhaseOutcome::from_json(*done);
    o.resumed = true;
    return o;
  }
  PhaseOutcome outcome;
  std::optional<Cmaes> es;
  if (auto last = store.last_state(spec.name)) {
    es = Cmaes::from_blob(last->state);
    if (es->dimension() != static_cast<int>(spec.x0.size()))
      fail("evolve", "{}: stored phase '{}' has dimension {}, the config gives {}",
           store.path().string(), spec.name, es->dimension(), spec.x0.size());
    outcome.resumed = true;
  } else {
    CmaesOptions opt = spec.cmaes;
    opt.lower = spec.lower;
    opt.upper = spec.upper;
    es.emplace(Eigen::Map<const Eigen::VectorXd>(spec.x0.data(),
                                                 static_cast<Eigen::Index>(spec.x0.size())),
               spec.sigma0, opt);
  }

  double best_so_far =
      es->best_f() < std::numeric_limits<double>::infinity() ? -es->best_f() : -INFINITY;
  int64_t ran = 0;
  while (!es->stopped()) {
    const int64_t generation = es->generation() + 1;
    const auto& X = es->ask();
    std::vector<std::vector<double>> genomes;
    for (const auto& x : X) genomes.emplace_back(x.data(), x.data() + x.size());
    const auto t0 = std::chrono::steady_clock::now();
    auto evals = evaluator.evaluate(genomes, generation_item_seed(spec, generation));
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (evals.size() != genomes.size())
      fail("evolve", "the evaluator returned {} results for {} candidates", evals.size(),
           genomes.size());

    // CMA-ES minimises: f = -fitness; a failed candidate ranks worst (NaN).
    std::vector<double> f(evals.size());
    std::vector<CandidateRecord> records;
    int failed = 0;
    for (size_t k = 0; k < evals.size(); ++k) {
      auto& e = evals[k];
      const bool ok = e.ok && std::isfinite(e.fitness);
      failed += !ok;
      f[k] = ok ? -e.fitness : std::nan("");
      CandidateRecord r;
      r.phase = spec.name;
      r.generation = generation;
      r.index = static_cast<int>(k);
      r.genome = genomes[k];
      r.params = std::move(e.params);
      r.task_scores = std::move(e.task_scores);
      r.fitness = ok ? e.fitness : std::nan("");
      r.ok = ok;
      r.error = e.ok ? (ok ? "" : "non-finite fitness") : e.error;
      r.eval_seconds = e.eval_seconds;
      r.merge_seconds = e.merge_seconds;
      r.items = std::move(e.items);
      records.push_back(std::move(r));
    }
    es->tell(f);

    OptimiserState state;
    state.phase = spec.name;
    state.generation = generation;
    state.state = es->to_blob();
    state.extra = {{"item_seed", generation_item_seed(spec, generation)}, {"fevals", es->fevals()}};
    state.wall_seconds = seconds;
    state.restart = es->last_generation().restart;
    state.sigma = es->last_generation().sigma;
    state.evaluations = es->fevals();
    store.commit_generation(records, state);

    const auto& g = es->last_generation();
    best_so_far = std::max(best_so_far, -g.best);
    if (on_generation) {
      GenerationReport rep;
      rep.phase = spec.name;
      rep.generation = generation;
      rep.restart = g.restart;
      rep.lambda = g.lambda;
      rep.best = -g.best;
      rep.median = -g.median;
      rep.best_so_far = best_so_far;
      rep.sigma = g.sigma;
      rep.evals_per_second = seconds > 0 ? static_cast<double>(genomes.size()) / seconds : 0;
      rep.failed = failed;
      rep.local_stop = g.local_stop;
      on_generation(rep);
    }
    ++ran;
    if (spec.stop_after_generations > 0 && ran >= spec.stop_after_generations && !es->stopped())
      break;
    // Ctrl-C / SIGTERM (common/interrupt.h): this generation is committed; stop here.
    if (interrupt_requested() && !es->stopped()) break;
  }

  outcome.finished = es->stopped();
  outcome.stop = es->stop_reason();
  outcome.generations = es->generation();
  outcome.evaluations = es->fevals();
  outcome.best_x.assign(es->best_x().data(), es->best_x().data() + es->best_x().size());
  outcome.best_fitness = -es->best_f();
  const Eigen::VectorXd mean = es->mean_x();
  outcome.mean_x.assign(mean.data(), mean.data() + mean.size());
  if (outcome.finished) store.set_phase_done(spec.name, outcome.to_json());
  return outcome;
}

}  // namespace evomerge
