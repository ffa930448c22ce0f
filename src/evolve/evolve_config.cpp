#include "evolve/evolve_config.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <set>

#include "common/error.h"
#include "common/text.h"
#include "common/yaml.h"
#include "common/yaml_fields.h"
#include "evolve/genome.h"
#include "infer/engine.h"
#include "io/files.h"

namespace evomerge {

namespace {

using Ctx = YamlFields;  // errors: "[evolve-config] run.yml:7: ps.layer_groups: ..."

std::string model_path(const std::string& ref, const std::filesystem::path& base_dir) {
  // Relative folder paths resolve against the config's folder when they exist there; anything else
  // (an "org/name" cache reference, an absolute path) is kept as written.
  if (ref == "ps" || base_dir.empty()) return ref;
  const std::filesystem::path p(ref);
  if (p.is_relative() && std::filesystem::exists(base_dir / p))
    return (base_dir / p).lexically_normal().string();
  return ref;
}

// tasks: a list of files (or {file, weight}), relative paths resolved against the config's folder.
std::vector<EvolveTask> parse_tasks(const Ctx& c, const YAML::Node& root,
                                    const std::filesystem::path& base_dir) {
  std::vector<EvolveTask> tasks;
  if (!root["tasks"] || !root["tasks"].IsSequence() || root["tasks"].size() == 0)
    c.bad(root["tasks"], "tasks", "a non-empty list of {file, weight} is required");
  for (size_t i = 0; i < root["tasks"].size(); ++i) {
    const auto n = root["tasks"][i];
    const std::string key = fmt::format("tasks[{}]", i);
    EvolveTask t;
    if (n.IsScalar()) {
      t.file = c.str(n, key);
    } else {
      c.only(n, key, {"file", "weight"});
      if (!n["file"]) c.bad(n, key + ".file", "is required");
      t.file = c.str(n["file"], key + ".file");
      if (n["weight"]) t.weight = c.number(n["weight"], key + ".weight");
      if (!(t.weight > 0)) c.bad(n["weight"], key + ".weight", "must be positive");
    }
    if (t.file.is_relative() && !base_dir.empty() && std::filesystem::exists(base_dir / t.file))
      t.file = base_dir / t.file;
    tasks.push_back(t);
  }
  return tasks;
}

// The run-wide settings: splits, items, racing, fitness, threads, batching, device, precision.
void parse_run_settings(const Ctx& c, const YAML::Node& root, EvolveConfig& cfg) {
  if (root["opt_split"]) cfg.opt_split = c.str(root["opt_split"], "opt_split");
  if (root["test_split"]) cfg.test_split = c.str(root["test_split"], "test_split");
  if (root["items_per_generation"])
    cfg.items_per_generation = static_cast<size_t>(
        c.integer(root["items_per_generation"], "items_per_generation", 0, 1 << 24));
  if (root["fresh_items"]) cfg.fresh_items = c.boolean(root["fresh_items"], "fresh_items");
  if (root["racing"]) cfg.racing = c.boolean(root["racing"], "racing");
  if (root["validation_items"])
    cfg.validation_items =
        static_cast<size_t>(c.integer(root["validation_items"], "validation_items", 0, 1 << 24));
  if (const auto n = root["fitness"]) {
    c.only(n, "fitness", {"gold_logprob_weight"});
    if (n["gold_logprob_weight"])
      cfg.gold_logprob_weight = c.number(n["gold_logprob_weight"], "fitness.gold_logprob_weight");
    if (cfg.gold_logprob_weight < 0)
      c.bad(n["gold_logprob_weight"], "fitness.gold_logprob_weight", "must be >= 0");
  }
  if (root["threads"])
    cfg.threads = static_cast<int>(c.integer(root["threads"], "threads", 0, 1024));
  if (root["cached_candidates"])
    cfg.cached_candidates =
        static_cast<size_t>(c.integer(root["cached_candidates"], "cached_candidates", 1, 1024));
  if (root["micro_batch"])
    cfg.micro_batch =
        static_cast<size_t>(c.integer(root["micro_batch"], "micro_batch", 1, 1 << 16));
  if (root["device"]) {
    const std::string device = c.str(root["device"], "device");
    try {
      cfg.device = canonical_device(device);
    } catch (const Error&) {
      c.bad(root["device"], "device", "must be cpu, cuda or cuda:N");
    }
  }
  if (root["precision"]) {
    const auto p = parse_precision(c.str(root["precision"], "precision"));
    if (!p) c.bad(root["precision"], "precision", "must be exact or bf16");
    cfg.precision = *p;
  }
}

// ps.genes: per-gene initial values and ranges, by gene name.
std::map<std::string, GeneOverride> parse_genes(const Ctx& c, const YAML::Node& g) {
  std::map<std::string, GeneOverride> genes;
  if (!g.IsMap()) c.bad(g, "ps.genes", "expected a mapping of gene name to {init, range}");
  for (const auto& kv : g) {
    const std::string name = c.key_of(kv.first, "ps.genes"), key = "ps.genes." + name;
    c.only(kv.second, key, {"init", "range"});
    GeneOverride o;
    if (kv.second["init"]) o.init = c.number(kv.second["init"], key + ".init");
    if (kv.second["range"]) {
      const auto [lo, hi] = c.range(kv.second["range"], key + ".range");
      o.lower = lo, o.upper = hi;
    }
    genes[name] = o;
  }
  return genes;
}

// The CMA-ES settings both phases share (sigma0, population, budget in generations and/or
// evaluations, restarts, separable), under `phase.` in messages.
template <class PhaseConfig>
void parse_search_settings(const Ctx& c, const YAML::Node& n, std::string_view phase,
                           PhaseConfig& p) {
  const auto key = [&](std::string_view k) { return fmt::format("{}.{}", phase, k); };
  if (n["sigma0"]) p.sigma0 = c.number(n["sigma0"], key("sigma0"));
  if (!(p.sigma0 > 0)) c.bad(n["sigma0"], key("sigma0"), "must be positive");
  if (n["population"])
    p.population = static_cast<int>(c.integer(n["population"], key("population"), 0, 100000));
  if (p.population == 1) c.bad(n["population"], key("population"), "must be 0 (default) or >= 2");
  if (n["generations"])
    p.generations = static_cast<int>(c.integer(n["generations"], key("generations"), 1, 1000000));
  if (n["evaluations"]) {
    p.evaluations = c.integer(n["evaluations"], key("evaluations"), 0, 1LL << 40);
    if (!n["generations"]) p.generations = 0;  // the budget alone ends the phase
  }
  if (n["restarts"])
    p.restarts = static_cast<int>(c.integer(n["restarts"], key("restarts"), 0, 100));
  if (n["separable"]) p.separable = c.boolean(n["separable"], key("separable"));
}

// The ps: section (parameter-space search).
PsPhaseConfig parse_ps(const Ctx& c, const YAML::Node& n, const std::filesystem::path& base_dir,
                       size_t n_tasks) {
  c.only(n, "ps", {"method",      "base_model",
                   "models",      "layer_groups",
                   "filters",     "separate_embed_head",
                   "normalize",   "weight",
                   "density",     "t",
                   "init",        "genes",
                   "dtype",       "sigma0",
                   "population",  "generations",
                   "evaluations", "restarts",
                   "separable",   "objective"});
  PsPhaseConfig p;
  if (n["method"]) {
    p.method = c.str(n["method"], "ps.method");
    // Checked here, not only by the genome, so the message names the file and line.
    if (!is_searchable_ps_method(p.method))
      c.bad(n["method"], "ps.method",
            fmt::format("'{}' is not searchable (use dare_ties, ties, task_arithmetic, linear or "
                        "slerp)",
                        p.method));
  }
  if (n["base_model"]) p.base_model = model_path(c.str(n["base_model"], "ps.base_model"), base_dir);
  if (!n["models"]) c.bad(n, "ps.models", "is required");
  for (const auto& m : c.strings(n["models"], "ps.models"))
    p.models.push_back(model_path(m, base_dir));
  if (p.models.empty()) c.bad(n["models"], "ps.models", "needs at least one model");
  if (n["layer_groups"])
    p.layer_groups = static_cast<int>(c.integer(n["layer_groups"], "ps.layer_groups", 1, 1 << 16));
  if (n["filters"]) p.filters = c.strings(n["filters"], "ps.filters");
  if (n["separate_embed_head"])
    p.separate_embed_head = c.boolean(n["separate_embed_head"], "ps.separate_embed_head");
  if (n["normalize"]) p.normalize = c.boolean(n["normalize"], "ps.normalize");
  if (n["weight"]) std::tie(p.weight_min, p.weight_max) = c.range(n["weight"], "ps.weight");
  if (n["density"]) std::tie(p.density_min, p.density_max) = c.range(n["density"], "ps.density");
  if (n["t"]) std::tie(p.t_min, p.t_max) = c.range(n["t"], "ps.t");
  if (n["init"]) p.init = c.number(n["init"], "ps.init");
  if (const auto g = n["genes"]) p.genes = parse_genes(c, g);
  if (n["dtype"]) {
    const auto name = c.str(n["dtype"], "ps.dtype");
    const auto dt = dtype_from_torch_name(name);
    if (!dt || !dtype_is_compute(*dt))
      c.bad(n["dtype"], "ps.dtype", "expected float32, bfloat16 or float16");
    p.dtype = *dt;
  }
  parse_search_settings(c, n, "ps", p);
  if (n["objective"]) {
    p.objective = c.str(n["objective"], "ps.objective");
    if (p.objective != "weighted" && p.objective != "pareto")
      c.bad(n["objective"], "ps.objective", "expected weighted or pareto");
    if (p.objective == "pareto" && n_tasks < 2)
      c.bad(n["objective"], "ps.objective", "pareto needs at least two tasks (one objective each)");
  }
  return p;
}

// The dfs: section (data-flow search); has_ps: a ps: section exists (model A may be "ps").
DfsPhaseConfig parse_dfs(const Ctx& c, const YAML::Node& n, const std::filesystem::path& base_dir,
                         bool has_ps) {
  c.only(n, "dfs",
         {"models", "repeats", "scaling", "scale", "init_on", "init_off", "sigma0", "population",
          "generations", "evaluations", "separable", "restarts"});
  DfsPhaseConfig d;
  if (!n["models"]) c.bad(n, "dfs.models", "is required");
  for (const auto& m : c.strings(n["models"], "dfs.models"))
    d.models.push_back(model_path(m, base_dir));
  if (d.models.size() < 1) c.bad(n["models"], "dfs.models", "needs at least one model");
  for (size_t i = 1; i < d.models.size(); ++i)
    if (d.models[i] == "ps")
      c.bad(n["models"], "dfs.models", "'ps' (the PS winner) can only be model A, the first");
  if (d.models[0] == "ps" && !has_ps) c.bad(n["models"], "dfs.models", "'ps' needs a ps: section");
  if (n["repeats"]) d.repeats = static_cast<int>(c.integer(n["repeats"], "dfs.repeats", 1, 16));
  if (n["scaling"]) d.scaling = c.str(n["scaling"], "dfs.scaling");
  if (d.scaling != "full" && d.scaling != "model_pair" && d.scaling != "per_hop")
    c.bad(n["scaling"], "dfs.scaling", "expected full, model_pair or per_hop");
  if (n["scale"]) std::tie(d.scale_min, d.scale_max) = c.range(n["scale"], "dfs.scale");
  if (!(d.scale_min > 0)) c.bad(n["scale"], "dfs.scale", "scales must stay positive (min > 0)");
  if (n["init_on"]) d.init_on = c.number(n["init_on"], "dfs.init_on");
  if (n["init_off"]) d.init_off = c.number(n["init_off"], "dfs.init_off");
  if (!(d.init_on > 0))
    c.bad(n["init_on"], "dfs.init_on", "must be > 0 (model A's layers start on the path)");
  if (!(d.init_off <= 0))
    c.bad(n["init_off"], "dfs.init_off", "must be <= 0 (the start is model A's plain path)");
  parse_search_settings(c, n, "dfs", d);
  return d;
}

// The final: section; n_models: the PS models a per-model uniform grid point weighs.
FinalConfig parse_final(const Ctx& c, const YAML::Node& n, size_t n_models) {
  FinalConfig fc;
  c.only(n, "final", {"top", "uniform_grid", "export_models"});
  if (n["top"]) fc.top = static_cast<int>(c.integer(n["top"], "final.top", 0, 100));
  if (n["uniform_grid"]) {
    if (!n["uniform_grid"].IsSequence())
      c.bad(n["uniform_grid"], "final.uniform_grid", "expected a list of numbers");
    fc.uniform_grid.clear();
    for (size_t i = 0; i < n["uniform_grid"].size(); ++i) {
      const auto point = n["uniform_grid"][i];
      const std::string key = fmt::format("final.uniform_grid[{}]", i);
      std::vector<double> w;
      if (point.IsSequence()) {
        if (point.size() != n_models)
          c.bad(point, key,
                fmt::format("{} weights for {} PS models (one per model, in ps.models order)",
                            point.size(), n_models));
        for (size_t m = 0; m < point.size(); ++m)
          w.push_back(c.number(point[m], fmt::format("{}[{}]", key, m)));
      } else {
        w.push_back(c.number(point, key));
      }
      fc.uniform_grid.push_back(w);
    }
  }
  if (n["export_models"]) fc.export_models = c.boolean(n["export_models"], "final.export_models");
  return fc;
}

}  // namespace

EvolveConfig parse_evolve_config(std::string_view yaml_text, std::string_view where,
                                 const std::filesystem::path& base_dir) {
  Ctx c{"evolve-config", std::string(where)};
  // One document, no key twice, nesting bounded (common/yaml.h), as merge configs are read.
  const YAML::Node root = load_yaml_document(yaml_text, where, "evolve-config");
  EvolveConfig cfg;
  cfg.where = std::string(where);
  c.only(root, "",
         {"seed", "tasks", "opt_split", "test_split", "items_per_generation", "fresh_items",
          "racing", "validation_items", "fitness", "threads", "micro_batch", "cached_candidates",
          "device", "precision", "ps", "dfs", "final"});
  if (root["seed"])
    cfg.seed = static_cast<uint64_t>(c.integer(root["seed"], "seed", 0, (1LL << 53)));
  cfg.tasks = parse_tasks(c, root, base_dir);
  parse_run_settings(c, root, cfg);
  if (const auto n = root["ps"]) cfg.ps = parse_ps(c, n, base_dir, cfg.tasks.size());
  if (const auto n = root["dfs"]) cfg.dfs = parse_dfs(c, n, base_dir, cfg.ps.has_value());
  if (!cfg.ps && !cfg.dfs)
    c.bad(root, "ps/dfs", "at least one of the sections ps: and dfs: is required");
  if (const auto n = root["final"])
    cfg.final = parse_final(c, n, cfg.ps ? cfg.ps->models.size() : 0);
  return cfg;
}

EvolveConfig load_evolve_config(const std::filesystem::path& path) {
  const std::string text = read_text_file(path, 1u << 20);
  return parse_evolve_config(text, path.string(), path.parent_path());
}

nlohmann::json EvolveConfig::to_json() const {
  nlohmann::json j;
  j["seed"] = seed;
  for (const auto& t : tasks)
    j["tasks"].push_back({{"file", t.file.string()}, {"weight", t.weight}});
  j["opt_split"] = opt_split;
  j["test_split"] = test_split;
  j["items_per_generation"] = items_per_generation;
  j["fresh_items"] = fresh_items;
  j["racing"] = racing;
  // Keys added later appear only when set, so that older runs keep their identity (hash).
  if (validation_items) j["validation_items"] = validation_items;
  if (gold_logprob_weight != 0) j["fitness"] = {{"gold_logprob_weight", gold_logprob_weight}};
  // The micro-batch sets the engine's batches and the racing rounds, so it can change results.
  if (micro_batch != 16) j["micro_batch"] = micro_batch;
  // threads and cached_candidates do not change results, so they are left out of the identity (a
  // resume may use others).
  // The device does (bf16 GPU arithmetic): a non-default one is part of it, and cpu stays absent
  // so runs made before the key existed keep their identity.
  if (device != "cpu") j["device"] = device;
  // The precision changes every score; exact (the default) stays absent for the same reason.
  if (precision != Precision::Exact) j["precision"] = precision_name(precision);
  if (ps) {
    const auto& p = *ps;
    j["ps"] = {{"method", p.method},
               {"base_model", p.base_model},
               {"models", p.models},
               {"layer_groups", p.layer_groups},
               {"filters", p.filters},
               {"separate_embed_head", p.separate_embed_head},
               {"normalize", p.normalize ? nlohmann::json(*p.normalize) : nlohmann::json(nullptr)},
               {"weight", {p.weight_min, p.weight_max}},
               {"density", {p.density_min, p.density_max}},
               {"t", {p.t_min, p.t_max}},
               {"init", p.init},
               {"sigma0", p.sigma0},
               {"population", p.population},
               {"generations", p.generations},
               {"restarts", p.restarts},
               {"separable", p.separable}};
    if (p.evaluations) j["ps"]["evaluations"] = p.evaluations;
    if (p.objective != "weighted") j["ps"]["objective"] = p.objective;
    if (p.dtype != DType::F32) j["ps"]["dtype"] = std::string(dtype_torch_name(p.dtype));
    for (const auto& [name, o] : p.genes) {
      auto& g = j["ps"]["genes"][name];
      g = nlohmann::json::object();
      if (o.init) g["init"] = *o.init;
      if (o.lower) g["range"] = {*o.lower, *o.upper};
    }
  }
  if (dfs) {
    const auto& d = *dfs;
    j["dfs"] = {{"models", d.models},           {"repeats", d.repeats},
                {"scaling", d.scaling},         {"scale", {d.scale_min, d.scale_max}},
                {"init_on", d.init_on},         {"init_off", d.init_off},
                {"sigma0", d.sigma0},           {"population", d.population},
                {"generations", d.generations}, {"separable", d.separable},
                {"restarts", d.restarts}};
    if (d.evaluations) j["dfs"]["evaluations"] = d.evaluations;
  }
  nlohmann::json grid = nlohmann::json::array();
  for (const auto& point : final.uniform_grid)  // one weight as a number, as it always was
    grid.push_back(point.size() == 1 ? nlohmann::json(point[0]) : nlohmann::json(point));
  j["final"] = {{"top", final.top}, {"uniform_grid", grid}, {"export_models", final.export_models}};
  return j;
}

}  // namespace evomerge
