#include "evolve/search_context.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "arch/arch.h"
#include "common/error.h"
#include "evolve/rng.h"
#include "io/files.h"
#include "io/model_folder.h"

namespace evomerge {

namespace {

// The tasks, each checked for both splits.
void load_scorers(const EvolveConfig& cfg, SearchContext& ctx) {
  std::vector<std::shared_ptr<const eval::Task>> tasks;
  std::vector<double> weights;
  for (size_t i = 0; i < cfg.tasks.size(); ++i) {
    const EvolveTask& t = cfg.tasks[i];
    // Named here, with the config and the key, rather than by the reader ("[io] x: cannot read"),
    // which knows neither.
    if (!std::filesystem::is_regular_file(t.file))
      fail("evolve", "{}: tasks[{}]: no such task file '{}'", cfg.where, i, t.file.string());
    auto task = std::make_shared<const eval::Task>(eval::Task::load(t.file));
    for (const auto& split : {cfg.opt_split, cfg.test_split})
      if (!task->has_split(split))
        fail("evolve", "{}: task '{}' has no split '{}' (it has: {})", cfg.where, task->name(),
             split, fmt::join(task->split_names(), ", "));
    tasks.push_back(task);
    weights.push_back(t.weight);
  }
  ctx.opt_scorer = std::make_unique<const eval::Scorer>(tasks, weights, cfg.opt_split);
  ctx.test_scorer = std::make_unique<const eval::Scorer>(tasks, weights, cfg.test_split);
}

// PS's models share one architecture; returns it.
ModelConfig check_ps_models(const EvolveConfig& cfg) {
  std::vector<std::string> refs = cfg.ps->models;
  if (!cfg.ps->base_model.empty()) refs.insert(refs.begin(), cfg.ps->base_model);
  std::optional<ModelConfig> first;
  for (const auto& r : refs) {
    const Model m = Model::open(r);
    if (!first)
      first = m.config;
    else if (m.config.num_hidden_layers != first->num_hidden_layers ||
             m.config.hidden_size != first->hidden_size ||
             m.config.vocab_size != first->vocab_size ||
             m.config.intermediate_size != first->intermediate_size)
      fail("evolve",
           "{}: ps.models: '{}' has a different architecture ({} layers, hidden {}, vocab {}) "
           "from '{}'",
           cfg.where, r, m.config.num_hidden_layers, m.config.hidden_size, m.config.vocab_size,
           refs[0]);
  }
  return *first;
}

PsSpaceOptions ps_space(const PsPhaseConfig& p, const ModelConfig& arch) {
  PsSpaceOptions s;
  s.method = p.method;
  s.models = p.models;
  s.base_model = p.base_model;
  s.num_layers = static_cast<int>(arch.num_hidden_layers);
  s.layer_groups = p.layer_groups;
  s.separate_embed_head = p.separate_embed_head;
  s.filters = p.filters;
  s.weight_min = p.weight_min, s.weight_max = p.weight_max;
  s.density_min = p.density_min, s.density_max = p.density_max;
  s.t_min = p.t_min, s.t_max = p.t_max;
  s.init_weight = s.init_density = s.init_t = p.init;
  s.normalize = p.normalize;
  s.genes = p.genes;
  s.out_dtype = p.dtype;  // scored in the dtype the recipe and model are exported in
  return s;
}

// DFS's models share a vocabulary and hidden size; "ps" stands for the PS architecture.
DfsSpaceOptions dfs_space(const EvolveConfig& cfg, const std::optional<ModelConfig>& ps_arch) {
  std::vector<ModelConfig> configs;
  for (const auto& r : cfg.dfs->models) {
    const ModelConfig c = r == "ps" ? *ps_arch : Model::open(r).config;
    if (!configs.empty() &&
        (c.vocab_size != configs[0].vocab_size || c.hidden_size != configs[0].hidden_size))
      fail("evolve",
           "{}: dfs.models: '{}' has vocab {} / hidden {}, model A has {} / {} (DFS needs one "
           "vocabulary and hidden size)",
           cfg.where, r, c.vocab_size, c.hidden_size, configs[0].vocab_size,
           configs[0].hidden_size);
    configs.push_back(c);
  }
  DfsSpaceOptions ds;
  for (const auto& c : configs)
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
  return ds;
}

}  // namespace

SearchContext build_search_context(const EvolveConfig& cfg) {
  SearchContext ctx;
  ctx.config = cfg;
  load_scorers(cfg, ctx);
  std::optional<ModelConfig> ps_arch;
  if (cfg.ps) ps_arch = check_ps_models(cfg);
  if (cfg.dfs) ctx.dfs_genome.emplace(dfs_space(cfg, ps_arch));
  const std::string tok_ref =
      cfg.ps ? (cfg.ps->base_model.empty() ? cfg.ps->models[0] : cfg.ps->base_model)
             : cfg.dfs->models[0];
  ctx.tokenizer = std::make_unique<const Tokenizer>(Tokenizer::load(resolve_model_path(tok_ref)));
  if (cfg.ps) {
    try {
      ctx.ps_genome.emplace(ps_space(*cfg.ps, *ps_arch));  // validates the PS options
    } catch (const Error& e) {
      // The genome knows the field, not the file: "ps.layer_groups: 65536 is not in [1, 2] ...".
      const std::string what = e.what();
      fail("evolve", "{}: {}", cfg.where, what.rfind("[evolve] ", 0) == 0 ? what.substr(9) : what);
    }
  }

  std::set<std::string> parents;
  if (cfg.ps) {
    if (!cfg.ps->base_model.empty()) parents.insert(cfg.ps->base_model);
    for (const auto& m : cfg.ps->models) parents.insert(m);
  }
  if (cfg.dfs)
    for (const auto& m : cfg.dfs->models)
      if (m != "ps") parents.insert(m);
  ctx.parents.assign(parents.begin(), parents.end());

  ctx.engine.threads = cfg.threads;
  ctx.engine.device = cfg.device;
  ctx.engine.precision = cfg.precision;
  ctx.merge.threads = cfg.threads;
  ctx.merge.random_seed = cfg.seed;
  ctx.merge.progress = false;
  ctx.scoring.items_per_task = cfg.items_per_generation;
  ctx.scoring.racing = cfg.racing;
  ctx.scoring.micro_batch = cfg.micro_batch;
  ctx.cached_candidates = cfg.cached_candidates;
  ctx.scoring.fitness.gold_logprob_weight = cfg.gold_logprob_weight;
  ctx.selection_name = cfg.opt_split;
  if (cfg.validation_items) {
    uint64_t stream = cfg.seed ^ 0x76616c6964ULL;  // "valid": its own stream of the run seed
    const ItemPools pools =
        split_opt_items(*ctx.opt_scorer, cfg.validation_items, splitmix64(stream));
    ctx.scoring.search_pool = pools.search;
    ctx.selection_items = pools.validation;
    ctx.selection_name = cfg.opt_split + " validation";
  }
  return ctx;
}

DfsModels open_dfs_models(const SearchContext& ctx, const std::vector<double>& ps_winner_x) {
  const auto& refs = ctx.config.dfs->models;
  DfsModels out;
  for (size_t m = 0; m < refs.size(); ++m) {
    if (refs[m] == "ps") {
      if (!ctx.ps_genome || ps_winner_x.empty())
        fail("evolve", "dfs.models names 'ps' but there is no PS winner");
      if (!out.ps_winner)
        out.ps_winner = std::make_unique<MergedCandidate>(ctx.merge, ctx.engine, *ctx.tokenizer);
      out.ps_winner->load(ctx.ps_genome->decode(ps_winner_x));
      out.models.push_back(out.ps_winner->weights());
      if (m == 0) {
        out.config_json_a = out.ps_winner->buffers().config_json();
        out.aux_a = out.ps_winner->plan().models[out.ps_winner->plan().donor]->folder().dir;
      }
    } else {
      out.models.push_back(open_folder_weights(refs[m]));
      if (m == 0) {
        const auto dir = resolve_model_path(refs[m]);
        out.config_json_a = nlohmann::json::parse(read_text_file(dir / "config.json"));
        out.aux_a = dir;
      }
    }
  }
  return out;
}

}  // namespace evomerge
