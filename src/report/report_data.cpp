#include "report/report_data.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "eval/paired.h"
#include "report/colours.h"

namespace evomerge::report {

namespace {

using json = nlohmann::json;

constexpr const char* kUniformColour = "#999999";
constexpr const char* kDfsColour = "#882255";  // evolved DFS rows: outside the model palette

std::string short_name(const std::string& ref) {
  if (ref == "ps") return "PS winner";
  const auto p = std::filesystem::path(ref);
  return p.filename().empty()
             ? (p.parent_path().filename().empty() ? ref : p.parent_path().filename().string())
             : p.filename().string();
}

std::vector<ModelKey> models_of(const json& config) {
  std::vector<std::string> refs;
  auto add = [&](const std::string& r) {
    if (!r.empty() && std::find(refs.begin(), refs.end(), r) == refs.end()) refs.push_back(r);
  };
  if (config.contains("ps") && config["ps"].is_object()) {
    add(config["ps"].value("base_model", std::string()));
    for (const auto& m : config["ps"].value("models", json::array())) add(m.get<std::string>());
    add("ps");
  }
  if (config.contains("dfs") && config["dfs"].is_object())
    for (const auto& m : config["dfs"].value("models", json::array())) add(m.get<std::string>());
  std::vector<ModelKey> out;
  for (size_t i = 0; i < refs.size(); ++i)
    out.push_back({refs[i], short_name(refs[i]), model_colour(i)});
  return out;
}

const ModelKey* find_model(const std::vector<ModelKey>& models, const std::string& ref) {
  for (const auto& m : models)
    if (m.ref == ref) return &m;
  return nullptr;
}

double num(const json& j, double fallback = NAN) {
  return j.is_number() ? j.get<double>() : fallback;
}

int64_t planned_generations(const json& config, const std::string& phase) {
  if (!config.contains(phase) || !config[phase].is_object()) return 0;
  const auto& p = config[phase];
  const int64_t evaluations = p.value("evaluations", int64_t{0}),
                population = p.value("population", int64_t{0});
  if (evaluations > 0 && population > 0) return (evaluations + population - 1) / population;
  return p.value("generations", int64_t{0});
}

FitnessPanel fitness_panel(const std::string& phase, const std::vector<GenerationStats>& gens) {
  FitnessPanel p;
  p.phase = phase;
  p.title = phase == "ps"    ? "PS (parameter space): fitness by generation"
            : phase == "dfs" ? "DFS (data-flow space): fitness by generation"
                             : phase + ": fitness by generation";
  Series best{"best", "#0072B2", {}, false, false}, median{"median", "#E69F00", {}, false, false};
  Series so_far{"best so far", "#009E73", {}, false, true},
      sigma{"sigma", "#666666", {}, true, true};
  double ylo = INFINITY, yhi = -INFINITY, slo = INFINITY, shi = -INFINITY;
  int prev_restart = 0;
  for (const auto& g : gens) {
    const double x = static_cast<double>(g.generation);
    auto take = [&](Series& s, double v) {
      if (!std::isfinite(v)) return;
      s.points.push_back({x, v});
      ylo = std::min(ylo, v), yhi = std::max(yhi, v);
    };
    take(best, g.best);
    take(median, g.median);
    take(so_far, g.best_so_far);
    if (std::isfinite(g.q1) && std::isfinite(g.q3)) {
      p.band.push_back({x, {g.q1, g.q3}});
      ylo = std::min(ylo, g.q1), yhi = std::max(yhi, g.q3);
    }
    if (std::isfinite(g.sigma)) {
      sigma.points.push_back({x, g.sigma});
      slo = std::min(slo, g.sigma), shi = std::max(shi, g.sigma);
    }
    if (g.restart > prev_restart) p.restarts.push_back(g.generation);
    prev_restart = std::max(prev_restart, g.restart);
  }
  const double last = gens.empty() ? 1.0 : static_cast<double>(gens.back().generation);
  p.x = nice_axis(gens.empty() ? 0.0 : 1.0, std::max(last, 2.0), 6, "generation", true);
  p.y = nice_axis(std::isfinite(ylo) ? ylo : 0.0, std::isfinite(yhi) ? yhi : 1.0, 5,
                  "fitness (opt split)");
  p.y2 = nice_axis(std::isfinite(slo) ? std::min(0.0, slo) : 0.0, std::isfinite(shi) ? shi : 1.0, 5,
                   "sigma");
  p.series = {best, median, so_far, sigma};
  return p;
}

// The columns of a PS recipe in gene order: each slot, each filter set ("*" only for embed/head).
std::vector<std::pair<std::string, std::string>> recipe_columns(const json& params) {
  std::vector<std::pair<std::string, std::string>> cols;
  const auto filters = params.value("filters", json::array({"*"}));
  for (const auto& slot_j : params.value("slots", json::array())) {
    const std::string slot = slot_j.get<std::string>();
    const bool single = slot == "embed" || slot == "head";
    for (const auto& f : filters) {
      const std::string filter = f.get<std::string>();
      if (single && filter != "*") continue;
      cols.push_back({slot, filter});
    }
  }
  return cols;
}

std::optional<Heatmap> heatmap_of(const json& params, const json& config,
                                  const std::vector<ModelKey>& models, std::string source) {
  if (!params.is_object() || !params.contains("slots")) return std::nullopt;
  Heatmap h;
  h.source = std::move(source);
  const auto cols = recipe_columns(params);
  const bool one_filter = params.value("filters", json::array({"*"})).size() <= 1;
  for (const auto& [slot, filter] : cols)
    h.columns.push_back(one_filter || filter == "*" ? slot : slot + "/" + filter);
  const json ps = config.value("ps", json::object());
  auto range = [&](const std::string& param) {
    const auto r = ps.value(param, json::array({0.0, 1.0}));
    return std::pair<double, double>{num(r[0], 0.0), num(r[1], 1.0)};
  };
  auto fill_row = [&](HeatmapRow& row) {
    const auto [lo, hi] = range(row.param);
    for (double v : row.values)
      row.fills.push_back(sequential_colour(hi > lo ? (v - lo) / (hi - lo) : 0.5));
  };
  if (params.contains("t")) {  // slerp: one t per slot and filter
    HeatmapRow row{"slerp t", "#666666", "t", {}, {}};
    const auto& t = params["t"];
    std::map<std::string, size_t> seen;  // per filter: the next slot index
    for (const auto& [slot, filter] : cols) {
      const size_t k = seen[filter]++;
      row.values.push_back(t.contains(filter) && k < t[filter].size() ? num(t[filter][k]) : NAN);
    }
    fill_row(row);
    h.rows.push_back(std::move(row));
    h.ranges.push_back({"t", range("t")});
    return h;
  }
  std::vector<std::string> params_seen;
  for (const auto& m : params.value("models", json::array())) {
    const std::string ref = m.value("model", std::string());
    const ModelKey* key = find_model(models, ref);
    for (const char* param : {"weight", "density"}) {
      if (!m.contains(param)) continue;
      HeatmapRow row{
          key ? key->name : short_name(ref), key ? key->colour : "#666666", param, {}, {}};
      for (const auto& v : m[param]) row.values.push_back(num(v));
      fill_row(row);
      h.rows.push_back(std::move(row));
      if (std::find(params_seen.begin(), params_seen.end(), param) == params_seen.end()) {
        params_seen.push_back(param);
        h.ranges.push_back({param, range(param)});
      }
    }
  }
  return h;
}

std::optional<PathDiagram> path_of(const json& params, const json& config,
                                   const std::vector<ModelKey>& models, std::string source) {
  if (!params.is_object() || !params.contains("path") || !params["path"].is_array())
    return std::nullopt;
  PathDiagram d;
  d.source = std::move(source);
  for (const auto& m : config.value("dfs", json::object()).value("models", json::array())) {
    const ModelKey* key = find_model(models, m.get<std::string>());
    d.models.push_back(
        key ? *key : ModelKey{m.get<std::string>(), short_name(m.get<std::string>()), "#666666"});
  }
  double lo = 1, hi = 1;
  for (const auto& h : params["path"]) {
    if (!h.is_array() || h.size() < 3) continue;
    PathHop hop{h[0].get<int>(), h[1].get<int>(), num(h[2], 1.0), "#666666"};
    if (hop.model >= 0 && hop.model < static_cast<int>(d.models.size()))
      hop.colour = d.models[hop.model].colour;
    lo = std::min(lo, hop.scale), hi = std::max(hi, hop.scale);
    if (hop.model == 0) d.plain_layers = std::max(d.plain_layers, hop.layer + 1);
    d.hops.push_back(hop);
  }
  // The path ends with model A's last layer (DfsGenome::decode), so its layer count is known.
  d.scale_axis = nice_axis(std::min(0.0, lo), std::max(hi, 1.0), 4, "input scale");
  return d;
}

bool is_evolved(FinalKind k) {
  return k == FinalKind::EvolvedPs || k == FinalKind::EvolvedPsDfs || k == FinalKind::EvolvedDfs;
}

// Task weights by task name: details.task_weights when the run recorded them, else the config's
// weights when they are all equal (then the names do not matter); nullopt when unknown.
std::optional<std::map<std::string, double>> task_weights(const FinalResult& row,
                                                          const json& config) {
  std::map<std::string, double> w;
  if (row.details.contains("task_weights") && row.details["task_weights"].is_object()) {
    for (auto it = row.details["task_weights"].begin(); it != row.details["task_weights"].end();
         ++it)
      w[it.key()] = num(it.value(), 1.0);
    return w;
  }
  std::vector<double> cw;
  for (const auto& t : config.value("tasks", json::array()))
    cw.push_back(num(t.value("weight", json(1.0)), 1.0));
  if (!cw.empty() && std::adjacent_find(cw.begin(), cw.end(), std::not_equal_to<>()) != cw.end())
    return std::nullopt;
  for (const auto& it : row.items) w[it.task] = 1.0;
  return w;
}

// Winner minus parent on the items both were scored on (matched by task, split and item index),
// through eval's paired difference on the stored per-item scores.
std::optional<PairedComparison> paired_of(const FinalResult& winner, const FinalResult& parent,
                                          const json& config) {
  const auto weights = task_weights(winner, config);
  if (!weights || winner.items.empty()) return std::nullopt;
  eval::ScoreReport a, b;
  std::vector<double> w;
  for (const auto& wi : winner.items)
    for (const auto& pi : parent.items) {
      if (wi.task != pi.task || wi.split != pi.split) continue;
      std::map<int32_t, float> by_index;
      for (size_t k = 0; k < pi.items.size(); ++k) by_index[pi.items[k]] = pi.scores[k];
      eval::TaskScore ta, tb;
      ta.task = tb.task = wi.task;
      ta.higher_is_better = tb.higher_is_better = true;
      for (size_t k = 0; k < wi.items.size(); ++k)
        if (auto it = by_index.find(wi.items[k]); it != by_index.end()) {
          eval::ItemResult ra, rb;
          ra.index = rb.index = static_cast<size_t>(wi.items[k]);
          ra.score = wi.scores[k];
          rb.score = it->second;
          ta.items.push_back(ra);
          tb.items.push_back(rb);
        }
      if (ta.items.empty()) continue;
      a.tasks.push_back(std::move(ta));
      b.tasks.push_back(std::move(tb));
      const auto wt = weights->find(wi.task);
      w.push_back(wt == weights->end() ? 1.0 : wt->second);
    }
  if (a.tasks.empty()) return std::nullopt;
  const auto d = eval::paired_difference(a, b, w);
  if (d.items == 0 || !std::isfinite(d.difference)) return std::nullopt;
  return PairedComparison{winner.label, parent.label, d.difference, d.ci.lo, d.ci.hi, d.items};
}

std::optional<FinalChart> final_chart_of(const std::vector<FinalResult>& rows, const json& config,
                                         const std::vector<ModelKey>& models) {
  if (rows.empty()) return std::nullopt;
  FinalChart c;
  c.split = rows[0].split;
  const FinalResult* winner = nullptr;
  const FinalResult* best_parent = nullptr;
  for (const auto& r : rows) {
    if (r.kind == FinalKind::Parent && (!best_parent || r.score > best_parent->score))
      best_parent = &r;
    // The winner is chosen on the optimisation split (details.opt_score), never on this one.
    if (is_evolved(r.kind) &&
        (!winner || num(r.details.value("opt_score", json()), -INFINITY) >
                        num(winner->details.value("opt_score", json()), -INFINITY)))
      winner = &r;
  }
  double hi = 0;
  for (const auto& r : rows) {
    if (r.kind == FinalKind::Finalist) continue;  // listed in the table, not drawn
    Bar b{r.label, r.kind, kUniformColour, r.score, r.ci_low, r.ci_high, &r == winner};
    if (r.kind == FinalKind::Parent) {
      const ModelKey* key = find_model(models, r.details.value("model", std::string()));
      if (key) b.colour = key->colour;
    } else if (r.kind == FinalKind::EvolvedPs) {
      const ModelKey* key = find_model(models, "ps");
      b.colour = key ? key->colour : "#332288";
    } else if (r.kind != FinalKind::Uniform) {
      b.colour = kDfsColour;
    }
    hi = std::max(hi, std::isfinite(r.ci_high) ? r.ci_high : r.score);
    c.bars.push_back(std::move(b));
  }
  c.x = nice_axis(0.0, std::max(hi, 0.1), 5, "score on the " + c.split + " split (95% interval)");
  if (winner && best_parent) c.paired = paired_of(*winner, *best_parent, config);
  if (c.paired)
    c.diff_axis =
        nice_axis(std::min({0.0, c.paired->lo}), std::max({0.0, c.paired->hi}), 4, "difference");
  return c;
}

std::string compact_recipe(const json& params, const std::vector<ModelKey>& models) {
  std::string s;
  if (params.contains("path") && params["path"].is_array()) {
    for (const auto& h : params["path"]) {
      if (!h.is_array() || h.size() < 3) continue;
      s += fmt::format(
          "{}{}{}{}", s.empty() ? "" : " ",
          static_cast<char>('A' + std::clamp(h[0].get<int>(), 0, 25)), h[1].get<int>(),
          std::fabs(num(h[2], 1.0) - 1.0) > 1e-6 ? fmt::format("x{:.2f}", num(h[2], 1.0)) : "");
    }
    return "path " + s;
  }
  for (const auto& m : params.value("models", json::array())) {
    const ModelKey* key = find_model(models, m.value("model", std::string()));
    s += fmt::format("{}{}:", s.empty() ? "" : "; ",
                     key ? key->name : short_name(m.value("model", std::string())));
    for (const char* p : {"weight", "density"})
      if (m.contains(p)) {
        s += fmt::format(" {}", p[0]);
        for (const auto& v : m[p]) s += fmt::format(" {:.2f}", num(v, NAN));
      }
  }
  if (params.contains("t")) s += "t " + params["t"].dump();
  return s;
}

std::vector<TopCandidate> top_candidates(const RunStore& store,
                                         const std::vector<std::string>& phases,
                                         const std::vector<ModelKey>& models, size_t n) {
  std::vector<TopCandidate> all;
  for (const auto& phase : phases)
    for (const auto& c : store.candidates(phase))
      if (c.ok && std::isfinite(c.fitness))
        all.push_back({phase, c.generation, c.index, c.fitness, compact_recipe(c.params, models)});
  std::stable_sort(all.begin(), all.end(), [](const TopCandidate& a, const TopCandidate& b) {
    return a.fitness > b.fitness;
  });
  if (all.size() > n) all.resize(n);
  return all;
}

PhaseTiming timing_of(const RunStore& store, const std::string& phase,
                      const std::vector<GenerationStats>& gens, const json& config) {
  PhaseTiming t;
  t.phase = phase;
  t.generations = static_cast<int64_t>(gens.size());
  t.planned = planned_generations(config, phase);
  if (!gens.empty()) t.evaluations = std::max<int64_t>(gens.back().evaluations, 0);
  for (const auto& g : gens)
    if (std::isfinite(g.wall_seconds)) t.wall_seconds += g.wall_seconds;
  for (const auto& c : store.candidates(phase))
    t.eval_seconds += c.eval_seconds, t.merge_seconds += c.merge_seconds;
  t.done = store.phase_result(phase).has_value();
  return t;
}

std::vector<std::pair<std::string, std::string>> commands_of(const ReportData& d,
                                                             const json& config) {
  const std::string run = d.run_dir.string();
  std::string tasks;
  for (const auto& t : config.value("tasks", json::array()))
    tasks += " --task " + t.value("file", std::string());
  const std::string split = config.value("test_split", std::string("test"));
  std::vector<std::pair<std::string, std::string>> c;
  c.push_back(
      {"Resume or finish this run (same config file; a finished run prints its table again)",
       fmt::format("evomerge evolve CONFIG.yml --run {}", run)});
  c.push_back(
      {"Run the search again from scratch (the config is shown below; same seed, same result)",
       "evomerge evolve CONFIG.yml --run runs/again"});
  for (const auto& [kind, path] : d.artifacts) {
    if (kind == "recipe") {
      c.push_back({"Rebuild the PS winner from its recipe (a mergekit config)",
                   fmt::format("evomerge merge {} OUT_DIR", path)});
      c.push_back({"Score the rebuilt model again on the held-out split",
                   fmt::format("evomerge eval OUT_DIR{} --split {}", tasks, split)});
    } else if (kind == "dfs-model") {
      c.push_back({"Score the exported PS+DFS / DFS model (a standard model folder)",
                   fmt::format("evomerge eval {}{} --split {}", path, tasks, split)});
    }
  }
  c.push_back({"Rewrite this report (add --watch while the search runs)",
               fmt::format("evomerge report --run {}", run)});
  return c;
}

}  // namespace

ReportData build_report_data(const RunStore& store, const std::filesystem::path& run_dir,
                             const ReportOptions& options) {
  ReportData d;
  d.run_dir = run_dir;
  d.info = store.info();
  const json& config = d.info.config;
  d.models = models_of(config);
  std::vector<std::string> phases;
  for (const char* p : {"ps", "dfs"})
    if (config.contains(p) && config[p].is_object()) phases.push_back(p);
  for (const auto& p : store.phases())
    if (std::find(phases.begin(), phases.end(), p) == phases.end()) phases.push_back(p);
  const auto rows = store.final_results(/*with_items=*/true);
  d.artifacts = store.artifacts();
  std::string running;
  bool all_done = true;
  for (const auto& phase : phases) {
    const auto gens = store.generations(phase);
    d.panels.push_back(fitness_panel(phase, gens));
    d.timings.push_back(timing_of(store, phase, gens, config));
    const auto& t = d.timings.back();
    d.generations_done += t.done ? std::max(t.generations, t.planned) : t.generations;
    d.generations_planned += std::max(t.generations, t.planned);
    if (!t.done && all_done)
      running = fmt::format("running: {} generation {} of {}", phase, t.generations, t.planned);
    all_done = all_done && t.done;
  }
  // The recipes: the evolved rows' when the final table has them, else the best so far.
  auto recipe_source = [&](const std::string& phase,
                           bool final_kind(FinalKind)) -> std::pair<json, std::string> {
    for (const auto& r : rows)
      if (final_kind(r.kind) && r.details.contains("params")) return {r.details["params"], r.label};
    if (auto best = store.best_candidate(phase))
      return {best->params,
              fmt::format("best {} candidate so far (generation {}, #{}; fitness {:.4f})", phase,
                          best->generation, best->index, best->fitness)};
    return {json(), ""};
  };
  if (config.contains("ps")) {
    auto [params, source] =
        recipe_source("ps", [](FinalKind k) { return k == FinalKind::EvolvedPs; });
    d.heatmap = heatmap_of(params, config, d.models, source);
  }
  if (config.contains("dfs")) {
    auto [params, source] = recipe_source("dfs", [](FinalKind k) {
      return k == FinalKind::EvolvedPsDfs || k == FinalKind::EvolvedDfs;
    });
    d.path = path_of(params, config, d.models, source);
  }
  d.final_chart = final_chart_of(rows, config, d.models);
  for (const auto& r : rows) {
    d.final_rows.push_back(r);
    d.final_rows.back().items.clear();  // the table shows scores; the items served the pairing
  }
  bool evolved_rows = false;
  for (const auto& r : rows) evolved_rows = evolved_rows || is_evolved(r.kind);
  d.complete = all_done && evolved_rows;
  d.status = d.complete         ? "complete"
             : !running.empty() ? running
                                : "final evaluation on the " +
                                      config.value("test_split", std::string("test")) + " split";
  d.top = top_candidates(store, phases, d.models, options.top_candidates);
  d.commands = commands_of(d, config);
  return d;
}

}  // namespace evomerge::report
