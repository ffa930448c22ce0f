#include "evolve/evolve_run.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <set>

#include "arch/arch.h"
#include "common/error.h"
#include "common/progress.h"
#include "eval/scorer.h"
#include "evolve/dfs_export.h"
#include "evolve/genome.h"
#include "evolve/model_evaluator.h"
#include "evolve/rng.h"
#include "io/files.h"
#include "io/model_folder.h"

namespace evomerge {

namespace {

constexpr const char* kVersion = "0.1.0";  // the project version (CMakeLists.txt)

uint64_t derive_seed(uint64_t seed, uint64_t stream) {
  uint64_t x = seed ^ (0x9e3779b97f4a7c15ULL * (stream + 1));
  return splitmix64(x);
}

std::string short_name(const std::string& ref) {
  const auto p = std::filesystem::path(ref);
  return p.filename().empty() ? ref : p.filename().string();
}

// A report on the test or opt split: weighted total and its interval.
struct Scored {
  double score = NAN;
  eval::Interval ci;
  nlohmann::json tasks = nlohmann::json::object();
  std::vector<ItemResults> items;  // per task, for paired comparisons of the final rows
};

Scored score_all(const eval::Scorer& scorer, Engine& engine, const Tokenizer& tok) {
  eval::Candidate cand{&engine, &tok, {}, {}};
  eval::ScoreOptions so;
  so.keep_text = false;
  so.micro_batch = 16;
  const auto rep = scorer.score(cand, {}, so);
  Scored s;
  s.score = rep.failed ? NAN : rep.total;
  s.ci = rep.total_ci;
  for (const auto& t : rep.tasks) {
    s.tasks[t.task] = std::isfinite(t.score) ? nlohmann::json(t.score) : nlohmann::json(nullptr);
    ItemResults ir{t.task, t.split, {}, {}};
    for (const auto& it : t.items) {
      ir.items.push_back(static_cast<int32_t>(it.index));
      ir.scores.push_back(static_cast<float>(it.score));
    }
    s.items.push_back(std::move(ir));
  }
  return s;
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

}  // namespace

std::string format_final_table(const std::vector<FinalResult>& rows) {
  std::string s = "| model | split | score | 95% CI | tasks |\n|---|---|---|---|---|\n";
  for (const auto& r : rows) {
    std::string tasks;
    for (auto it = r.task_scores.begin(); it != r.task_scores.end(); ++it)
      tasks += fmt::format("{}{}: {}", tasks.empty() ? "" : ", ", it.key(),
                           it.value().is_number() ? fmt::format("{:.3f}", it.value().get<double>())
                                                  : std::string("-"));
    s += fmt::format("| {} | {} | {:.3f} | [{:.3f}, {:.3f}] | {} |\n", r.label, r.split, r.score,
                     r.ci_low, r.ci_high, tasks);
  }
  return s;
}

EvolveSummary run_evolve(const EvolveConfig& cfg, const EvolveRunOptions& opts) {
  auto log =
      opts.log ? opts.log : [](const std::string& line) { fmt::print(stderr, "{}\n", line); };

  // ---- Everything that can be wrong with the inputs, before any work.
  std::vector<std::shared_ptr<const eval::Task>> tasks;
  std::vector<double> weights;
  for (const auto& t : cfg.tasks) {
    auto task = std::make_shared<const eval::Task>(eval::Task::load(t.file));
    for (const auto& split : {cfg.opt_split, cfg.test_split})
      if (!task->has_split(split))
        fail("evolve", "{}: task '{}' has no split '{}' (it has: {})", cfg.where, task->name(),
             split, fmt::join(task->split_names(), ", "));
    tasks.push_back(task);
    weights.push_back(t.weight);
  }
  const eval::Scorer opt_scorer(tasks, weights, cfg.opt_split);
  const eval::Scorer test_scorer(tasks, weights, cfg.test_split);

  std::optional<ModelConfig> ps_config;
  if (cfg.ps) {
    std::vector<std::string> refs = cfg.ps->models;
    if (!cfg.ps->base_model.empty()) refs.insert(refs.begin(), cfg.ps->base_model);
    for (const auto& r : refs) {
      const Model m = Model::open(r);
      if (!ps_config)
        ps_config = m.config;
      else if (m.config.num_hidden_layers != ps_config->num_hidden_layers ||
               m.config.hidden_size != ps_config->hidden_size ||
               m.config.vocab_size != ps_config->vocab_size ||
               m.config.intermediate_size != ps_config->intermediate_size)
        fail("evolve",
             "{}: ps.models: '{}' has a different architecture ({} layers, hidden {}, vocab {}) "
             "from '{}'",
             cfg.where, r, m.config.num_hidden_layers, m.config.hidden_size, m.config.vocab_size,
             refs[0]);
    }
  }
  std::vector<ModelConfig> dfs_configs;
  if (cfg.dfs) {
    for (const auto& r : cfg.dfs->models) {
      const ModelConfig c = r == "ps" ? *ps_config : Model::open(r).config;
      if (!dfs_configs.empty() && (c.vocab_size != dfs_configs[0].vocab_size ||
                                   c.hidden_size != dfs_configs[0].hidden_size))
        fail("evolve",
             "{}: dfs.models: '{}' has vocab {} / hidden {}, model A has {} / {} (DFS needs one "
             "vocabulary and hidden size)",
             cfg.where, r, c.vocab_size, c.hidden_size, dfs_configs[0].vocab_size,
             dfs_configs[0].hidden_size);
      dfs_configs.push_back(c);
    }
  }
  const std::string tok_ref =
      cfg.ps ? (cfg.ps->base_model.empty() ? cfg.ps->models[0] : cfg.ps->base_model)
             : cfg.dfs->models[0];
  const Tokenizer tokenizer = Tokenizer::load(resolve_model_path(tok_ref));

  PsSpaceOptions ps_space;
  if (cfg.ps) {
    const auto& p = *cfg.ps;
    ps_space.method = p.method;
    ps_space.models = p.models;
    ps_space.base_model = p.base_model;
    ps_space.num_layers = static_cast<int>(ps_config->num_hidden_layers);
    ps_space.layer_groups = p.layer_groups;
    ps_space.separate_embed_head = p.separate_embed_head;
    ps_space.filters = p.filters;
    ps_space.weight_min = p.weight_min, ps_space.weight_max = p.weight_max;
    ps_space.density_min = p.density_min, ps_space.density_max = p.density_max;
    ps_space.t_min = p.t_min, ps_space.t_max = p.t_max;
    ps_space.init_weight = ps_space.init_density = ps_space.init_t = p.init;
    ps_space.normalize = p.normalize;
    ps_space.genes = p.genes;
    ps_space.out_dtype = p.dtype;  // scored in the dtype the recipe and model are exported in
  }
  std::optional<PsGenome> ps_genome;
  if (cfg.ps) ps_genome.emplace(ps_space);  // validates the PS options

  RunInfo info;
  info.config = cfg.to_json();
  info.config_text = opts.config_text;
  info.seed = cfg.seed;
  info.evomerge_version = kVersion;
  RunStore store = RunStore::open(opts.run_dir, info);
  if (store.resumed())
    log(fmt::format("resuming run {} (created {})", opts.run_dir.string(), store.info().created));

  EngineOptions eo;
  eo.threads = cfg.threads;
  eo.device = cfg.device;
  MergeOptions mo;
  mo.threads = cfg.threads;
  mo.random_seed = cfg.seed;
  mo.progress = false;
  ScoringOptions so;
  so.items_per_task = cfg.items_per_generation;
  so.racing = cfg.racing;
  so.fitness.gold_logprob_weight = cfg.gold_logprob_weight;

  EvolveSummary summary;
  auto report_line = [&](const GenerationReport& r) {
    log(fmt::format(
        "[{}] gen {:>3}  best {:.4f}  median {:.4f}  best-so-far {:.4f}  sigma {:.4f}  lambda {}  "
        "{:.2f} cand/s{}{}",
        r.phase, r.generation, r.best, r.median, r.best_so_far, r.sigma, r.lambda,
        r.evals_per_second, r.failed ? fmt::format("  failed {}", r.failed) : std::string(),
        r.local_stop != StopReason::None
            ? fmt::format("  (restart after {})", stop_reason_name(r.local_stop))
            : std::string()));
  };
  auto run_with_progress = [&](Evaluator& ev, const PhaseSpec& spec, int generations) {
    Progress progress(spec.name, static_cast<uint64_t>(generations), "gen", opts.progress);
    if (auto last = store.last_state(spec.name))
      progress.add(static_cast<uint64_t>(last->generation));
    auto out = run_phase(store, ev, spec, [&](const GenerationReport& r) {
      report_line(r);
      progress.set_note(fmt::format("best {:.3f} sigma {:.3f}", r.best_so_far, r.sigma));
      progress.add(1);
    });
    progress.finish();
    return out;
  };

  // Picks a phase's winner among its finalists by the whole optimisation split.
  struct Finalist {
    std::string label;
    std::vector<double> x;
    double opt_score = NAN;
  };
  struct Winner : Finalist {
    std::vector<Finalist> others;  // the finalists not selected, also reported on the test split
  };
  auto pick_winner = [&](const std::string& phase, const PhaseOutcome& outcome, auto&& load) {
    Winner w;
    std::vector<Finalist> all;
    for (const auto& [label, x] : finalists(store, phase, outcome, std::max(1, cfg.final.top))) {
      const auto s = score_all(opt_scorer, load(x), tokenizer);
      log(fmt::format("[{}] finalist {}: {} {:.4f}", phase, label, cfg.opt_split, s.score));
      all.push_back({label, x, s.score});
    }
    for (const auto& f : all)
      if (std::isnan(w.opt_score) || f.opt_score > w.opt_score) static_cast<Finalist&>(w) = f;
    for (const auto& f : all)
      if (f.label != w.label) w.others.push_back(f);
    return w;
  };

  // One phase's optimiser settings from its config section (PS and DFS share the fields). Seeds are
  // derived per phase: `seed_index` for CMA-ES, `seed_index + 1` for the item subsets.
  auto phase_spec = [&](const char* name, const auto& genome, const auto& phase, uint64_t seed_index) {
    PhaseSpec spec;
    spec.name = name;
    spec.x0 = genome.initial();
    spec.lower = genome.lower();
    spec.upper = genome.upper();
    spec.sigma0 = phase.sigma0;
    spec.cmaes.lambda = phase.population;
    spec.cmaes.seed = derive_seed(cfg.seed, seed_index);
    spec.cmaes.max_generations = phase.generations;
    spec.cmaes.max_fevals = phase.evaluations;
    spec.cmaes.restarts = phase.restarts;
    spec.cmaes.separable = phase.separable;
    // Accuracies are quantised: equal scores are common and not a reason to stop (cmaes.md 4.4).
    spec.cmaes.tol_flat_fitness = -1;
    spec.items_seed = derive_seed(cfg.seed, seed_index + 1);
    spec.fresh_items_each_generation = cfg.fresh_items;
    spec.stop_after_generations = opts.stop_after_generations;
    return spec;
  };
  auto log_phase_end = [&](const char* name, const PhaseOutcome& outcome) {
    log(fmt::format("[{}] {} after {} generations ({}), {} evaluations", name,
                    outcome.finished ? "finished" : "paused", outcome.generations,
                    stop_reason_name(outcome.stop), outcome.evaluations));
  };

  // ---- PS
  std::unique_ptr<PsEvaluator> ps_eval;
  std::optional<Winner> ps_winner;
  if (cfg.ps) {
    ps_eval = std::make_unique<PsEvaluator>(*ps_genome, opt_scorer, tokenizer, so, mo, eo);
    const PhaseSpec spec = phase_spec("ps", *ps_genome, *cfg.ps, 1);
    log(fmt::format("[ps] {} over {} models, {} genes, {} generations", cfg.ps->method,
                    cfg.ps->models.size(), ps_genome->dimension(), cfg.ps->generations));
    summary.ps = run_with_progress(*ps_eval, spec, cfg.ps->generations);
    log_phase_end("ps", *summary.ps);
    if (!summary.ps->finished) return summary;
    ps_winner = pick_winner("ps", *summary.ps, [&](const std::vector<double>& x) -> Engine& {
      return ps_eval->load(x);
    });
  }

  // ---- DFS
  std::unique_ptr<DfsEvaluator> dfs_eval;
  std::optional<Winner> dfs_winner;
  std::vector<std::shared_ptr<const WeightSource>> dfs_models;
  nlohmann::json config_json_a;
  std::filesystem::path aux_a;
  std::unique_ptr<PsEvaluator> ps_holder;  // keeps the PS winner's merged buffers alive for DFS
  if (cfg.dfs) {
    for (size_t m = 0; m < cfg.dfs->models.size(); ++m) {
      const auto& r = cfg.dfs->models[m];
      if (r == "ps") {
        ps_holder = std::make_unique<PsEvaluator>(*ps_genome, opt_scorer, tokenizer, so, mo, eo);
        ps_holder->load(ps_winner->x);
        dfs_models.push_back(ps_holder->weights());
        if (m == 0) {
          config_json_a = ps_holder->buffers().config_json();
          aux_a = ps_holder->plan().models[ps_holder->plan().donor]->folder().dir;
        }
      } else {
        dfs_models.push_back(open_folder_weights(r));
        if (m == 0) {
          const auto dir = resolve_model_path(r);
          config_json_a = nlohmann::json::parse(read_text_file(dir / "config.json"));
          aux_a = dir;
        }
      }
    }
    DfsSpaceOptions ds;
    for (const auto& c : dfs_configs)
      ds.layers_per_model.push_back(static_cast<int>(c.num_hidden_layers));
    ds.repeats = cfg.dfs->repeats;
    ds.scaling = cfg.dfs->scaling == "full"      ? DfsScaling::Full
                 : cfg.dfs->scaling == "per_hop" ? DfsScaling::PerHop
                                                 : DfsScaling::ModelPair;
    ds.scale_min = cfg.dfs->scale_min;
    ds.scale_max = cfg.dfs->scale_max;
    ds.init_scale = std::clamp(1.0, ds.scale_min, ds.scale_max);
    ds.init_on = cfg.dfs->init_on;
    ds.init_off = cfg.dfs->init_off;
    DfsGenome genome(ds);
    dfs_eval = std::make_unique<DfsEvaluator>(genome, dfs_models, opt_scorer, tokenizer, so, eo);
    const PhaseSpec spec = phase_spec("dfs", genome, *cfg.dfs, 3);
    log(fmt::format("[dfs] {} models, T = {}, {} genes, {} generations", dfs_models.size(),
                    genome.indicator_size(), genome.dimension(), cfg.dfs->generations));
    summary.dfs = run_with_progress(*dfs_eval, spec, cfg.dfs->generations);
    log_phase_end("dfs", *summary.dfs);
    if (!summary.dfs->finished) return summary;
    dfs_winner = pick_winner("dfs", *summary.dfs, [&](const std::vector<double>& x) -> Engine& {
      return dfs_eval->load(x);
    });
  }

  // ---- Final table on the test split.
  store.clear_final_results();
  auto add_row = [&](FinalKind kind, const std::string& phase, const std::string& label,
                     Engine& engine, nlohmann::json details) {
    const auto s = score_all(test_scorer, engine, tokenizer);
    FinalResult r;
    r.kind = kind;
    r.phase = phase;
    r.label = label;
    r.split = cfg.test_split;
    r.task_scores = s.tasks;
    r.score = s.score;
    r.ci_low = s.ci.lo;
    r.ci_high = s.ci.hi;
    r.details = std::move(details);
    r.items = s.items;
    store.add_final_result(r);
    log(fmt::format("[final] {}: {} {:.4f} [{:.4f}, {:.4f}]", label, cfg.test_split, r.score,
                    r.ci_low, r.ci_high));
  };
  std::set<std::string> parents;
  if (cfg.ps) {
    if (!cfg.ps->base_model.empty()) parents.insert(cfg.ps->base_model);
    for (const auto& m : cfg.ps->models) parents.insert(m);
  }
  if (cfg.dfs)
    for (const auto& m : cfg.dfs->models)
      if (m != "ps") parents.insert(m);
  for (const auto& p : parents) {
    Engine engine(open_folder_weights(p), eo);
    add_row(FinalKind::Parent, "", "parent: " + short_name(p), engine, {{"model", p}});
  }
  if (cfg.ps && ps_genome->options().method != "slerp" && !cfg.final.uniform_grid.empty()) {
    // The best uniform merge of the grid, chosen on the optimisation split like the evolved ones.
    double best_opt = -INFINITY;
    std::vector<double> best_w;
    auto grid_point = [&](const std::vector<double>& w) {
      const std::vector<double> per_model =
          w.size() == 1 ? std::vector<double>(cfg.ps->models.size(), w[0]) : w;
      return ps_genome->uniform_point(per_model, 0.5);  // clamped into each gene's range
    };
    auto weights_label = [](const std::vector<double>& w) {
      return w.size() == 1 ? fmt::format("{}", w[0]) : fmt::format("[{}]", fmt::join(w, ", "));
    };
    for (const auto& w : cfg.final.uniform_grid) {
      const double s = score_all(opt_scorer, ps_eval->load(grid_point(w)), tokenizer).score;
      log(fmt::format("[final] uniform weight {}: {} {:.4f}", weights_label(w), cfg.opt_split, s));
      if (s > best_opt) best_opt = s, best_w = w;
    }
    add_row(FinalKind::Uniform, "",
            fmt::format("uniform {} w={}", ps_genome->options().method, weights_label(best_w)),
            ps_eval->load(grid_point(best_w)), {{"weight", best_w}, {"opt_score", best_opt}});
  }
  if (ps_winner)
    add_row(FinalKind::EvolvedPs, "ps", "evolved PS (" + ps_winner->label + ")",
            ps_eval->load(ps_winner->x),
            {{"genome", ps_winner->x},
             {"opt_score", ps_winner->opt_score},
             {"params", ps_genome->describe(ps_winner->x)}});
  const bool dfs_on_ps = cfg.ps && cfg.dfs && cfg.dfs->models[0] == "ps";
  if (dfs_winner)
    add_row(
        dfs_on_ps ? FinalKind::EvolvedPsDfs : FinalKind::EvolvedDfs, "dfs",
        std::string(dfs_on_ps ? "evolved PS+DFS" : "evolved DFS") + " (" + dfs_winner->label + ")",
        dfs_eval->load(dfs_winner->x),
        {{"genome", dfs_winner->x},
         {"opt_score", dfs_winner->opt_score},
         {"params", dfs_eval->genome().describe(dfs_winner->x)}});

  // The other finalists on the test split too, for the record: the winners above were selected on
  // the optimisation split alone, so these rows cannot change which model is exported.
  auto add_unselected = [&](const std::optional<Winner>& w, const char* phase, auto&& load) {
    if (!w) return;
    for (const auto& f : w->others)
      add_row(FinalKind::Finalist, phase == std::string("PS") ? "ps" : "dfs",
              fmt::format("{} finalist {} (not selected)", phase, f.label), load(f.x),
              {{"genome", f.x}, {"opt_score", f.opt_score}});
  };
  add_unselected(ps_winner, "PS", [&](const std::vector<double>& x) -> Engine& { return ps_eval->load(x); });
  add_unselected(dfs_winner, "DFS", [&](const std::vector<double>& x) -> Engine& { return dfs_eval->load(x); });

  // ---- Outputs.
  if (ps_winner) {
    const auto recipe = opts.run_dir / "ps_best.yml";
    // DARE-style methods sample with the run's seed: the header says how to rebuild the model.
    write_file_atomic(recipe, fmt::format("# evolved by evomerge (run seed {0}); the scored model is "
                                          "`evomerge merge ps_best.yml OUT --random-seed {0}`\n{1}",
                                          cfg.seed, ps_genome->to_yaml(ps_winner->x)));
    store.add_artifact("recipe", recipe);
    if (cfg.final.export_models) {
      FolderOptions fo;
      fo.replace_existing = true;
      merge_to_folder(ps_genome->decode(ps_winner->x), opts.run_dir / "ps_best_model", mo, fo);
      store.add_artifact("model", opts.run_dir / "ps_best_model");
    }
  }
  if (dfs_winner && cfg.final.export_models) {
    DfsExportOptions eopt;
    eopt.aux_from = aux_a;
    eopt.replace_existing = true;
    export_dfs_model(dfs_models, dfs_eval->genome().decode(dfs_winner->x), config_json_a,
                     opts.run_dir / "dfs_best_model", eopt);
    store.add_artifact("dfs-model", opts.run_dir / "dfs_best_model");
  }
  summary.table = store.final_results();
  const std::string table = format_final_table(summary.table);
  write_file_atomic(opts.run_dir / "results.md", "# evomerge evolve: final table\n\n" + table);
  store.add_artifact("report", opts.run_dir / "results.md");
  summary.artifacts = store.artifacts();
  summary.complete = true;
  return summary;
}

}  // namespace evomerge
