#include "evolve/genome.h"

#include <fmt/format.h>
#include <algorithm>
#include <cmath>
#include <limits>

#include "common/error.h"

namespace evomerge {

std::string GeneInfo::name() const {
  std::string s = slot;
  if (filter != "*") s += "/" + filter;
  if (model >= 0) s += fmt::format("/model{}", model);
  return s + "/" + param;
}

// ---------------------------------------------------------------------------------------------
// PS

bool PsGenome::uses_density() const {
  return options_.method == "dare_ties" || options_.method == "ties";
}
bool PsGenome::is_slerp() const {
  return options_.method == "slerp";
}

bool is_searchable_ps_method(std::string_view method) {
  static const std::string_view kMethods[] = {"dare_ties", "ties", "task_arithmetic", "linear",
                                              "slerp"};
  return std::find(std::begin(kMethods), std::end(kMethods), method) != std::end(kMethods);
}

PsGenome::PsGenome(PsSpaceOptions options) : options_(std::move(options)) {
  const auto& o = options_;
  if (!is_searchable_ps_method(o.method))
    fail(
        "evolve",
        "ps.method: '{}' is not searchable (use dare_ties, ties, task_arithmetic, linear or slerp)",
        o.method);
  if (o.models.empty()) fail("evolve", "ps.models: at least one model is needed");
  if (is_slerp() && o.models.size() != 2)
    fail("evolve", "ps.models: slerp merges exactly 2 models, got {}", o.models.size());
  const bool needs_base =
      o.method == "dare_ties" || o.method == "ties" || o.method == "task_arithmetic";
  if (needs_base && o.base_model.empty())
    fail("evolve", "ps.base_model: method '{}' needs a base model", o.method);
  if (o.num_layers < 1) fail("evolve", "ps: the models have no layers ({})", o.num_layers);
  if (o.layer_groups < 1 || o.layer_groups > o.num_layers)
    fail("evolve", "ps.layer_groups: {} is not in [1, {}] (the number of layers)", o.layer_groups,
         o.num_layers);
  auto check_range = [](const char* what, double lo, double hi, double init) {
    if (!(lo < hi) || !std::isfinite(lo) || !std::isfinite(hi))
      fail("evolve", "ps.{}: range [{}, {}] is empty", what, lo, hi);
    if (!(init >= lo && init <= hi))
      fail("evolve", "ps.{}: initial value {} is outside [{}, {}]", what, init, lo, hi);
  };
  check_range("weight", o.weight_min, o.weight_max, o.init_weight);
  check_range("density", o.density_min, o.density_max, o.init_density);
  check_range("t", o.t_min, o.t_max, o.init_t);
  if (o.density_min < 0 || o.density_max > 1)
    fail("evolve", "ps.density: range must lie in [0, 1]");
  for (const auto& f : o.filters)
    if (f.empty() || f == "*")
      fail("evolve", "ps.filters: an empty or '*' filter is implied; list only substrings");

  for (int g = 0; g < o.layer_groups; ++g) {
    const int a = static_cast<int>(static_cast<int64_t>(g) * o.num_layers / o.layer_groups);
    const int b = static_cast<int>(static_cast<int64_t>(g + 1) * o.num_layers / o.layer_groups);
    groups_.emplace_back(a, b);
    slots_.push_back(fmt::format("layers[{},{})", a, b));
  }
  if (o.separate_embed_head) {
    slots_.push_back("embed");
    slots_.push_back("head");
  }
  filter_sets_ = o.filters;
  filter_sets_.push_back("*");

  build_genes();
  for (const auto& entry : o.genes) {
    // Not a structured binding: clang 14 (the fuzz build) cannot capture one in a lambda.
    const auto& name = entry.first;
    const auto it = std::find_if(genes_.begin(), genes_.end(),
                                 [&](const GeneInfo& g) { return g.name() == name; });
    if (it == genes_.end())
      fail("evolve", "ps.genes: '{}' is not a gene of this space (genes: {}, ...)", name,
           genes_.front().name());
    const size_t i = static_cast<size_t>(it - genes_.begin());
    const double lo = lower()[i], hi = upper()[i], init = initial()[i];
    if (!(lo < hi) || !std::isfinite(lo) || !std::isfinite(hi))
      fail("evolve", "ps.genes.{}: range [{}, {}] is empty", name, lo, hi);
    if (it->param == "density" && (lo < 0 || hi > 1))
      fail("evolve", "ps.genes.{}: a density range must lie in [0, 1]", name);
    if (!(init >= lo && init <= hi))
      fail("evolve", "ps.genes.{}: initial value {} is outside [{}, {}]", name, init, lo, hi);
  }
}

void PsGenome::build_genes() {
  const auto& o = options_;
  for (const auto& slot : slots_) {
    const bool single = slot == "embed" || slot == "head";  // one tensor family: no filter split
    for (const auto& f : filter_sets_) {
      if (single && f != "*") continue;
      if (is_slerp()) {
        genes_.push_back({slot, f, -1, "t"});
        continue;
      }
      for (int m = 0; m < static_cast<int>(o.models.size()); ++m) {
        genes_.push_back({slot, f, m, "weight"});
        if (uses_density()) genes_.push_back({slot, f, m, "density"});
      }
    }
  }
}

// A gene's value from its override when it has one, else from the space-wide setting.
double PsGenome::gene_setting(const GeneInfo& g, std::optional<double> GeneOverride::*field,
                              double weight, double density, double t) const {
  if (const auto it = options_.genes.find(g.name()); it != options_.genes.end())
    if (const auto v = it->second.*field) return *v;
  return g.param == "weight" ? weight : g.param == "density" ? density : t;
}

std::vector<double> PsGenome::lower() const {
  const auto& o = options_;
  std::vector<double> v;
  for (const auto& g : genes_)
    v.push_back(gene_setting(g, &GeneOverride::lower, o.weight_min, o.density_min, o.t_min));
  return v;
}
std::vector<double> PsGenome::upper() const {
  const auto& o = options_;
  std::vector<double> v;
  for (const auto& g : genes_)
    v.push_back(gene_setting(g, &GeneOverride::upper, o.weight_max, o.density_max, o.t_max));
  return v;
}
std::vector<double> PsGenome::initial() const {
  const auto& o = options_;
  std::vector<double> v;
  for (const auto& g : genes_)
    v.push_back(gene_setting(g, &GeneOverride::init, o.init_weight, o.init_density, o.init_t));
  return v;
}

std::vector<double> PsGenome::uniform_point(double weight, double density_or_t) const {
  const std::vector<double> w(options_.models.size(), weight);
  return uniform_point(w, density_or_t);
}

std::vector<double> PsGenome::uniform_point(std::span<const double> model_weights,
                                            double density_or_t) const {
  if (!is_slerp() && model_weights.size() != options_.models.size())
    fail("evolve", "final.uniform_grid: {} weights for {} models", model_weights.size(),
         options_.models.size());
  const auto lo = lower(), hi = upper();
  std::vector<double> v;
  for (size_t i = 0; i < genes_.size(); ++i) {
    const auto& g = genes_[i];
    const double want =
        g.param == "weight" ? model_weights[static_cast<size_t>(g.model)] : density_or_t;
    v.push_back(std::clamp(want, lo[i], hi[i]));
  }
  return v;
}

namespace {
// Index of gene (slot, filter, model, param) in the layout; -1 when absent.
int find_gene(const std::vector<GeneInfo>& genes, const std::string& slot,
              const std::string& filter, int model, const std::string& param) {
  for (size_t i = 0; i < genes.size(); ++i)
    if (genes[i].slot == slot && genes[i].filter == filter && genes[i].model == model &&
        genes[i].param == param)
      return static_cast<int>(i);
  return -1;
}
}  // namespace

MergeConfig PsGenome::decode(std::span<const double> x) const {
  if (x.size() != genes_.size())
    fail("evolve", "PS genome has {} values, the space has {} genes", x.size(), genes_.size());
  const auto& o = options_;
  MergeConfig cfg;
  cfg.merge_method = o.method;
  cfg.where = "<evolved candidate>";
  if (o.out_dtype) cfg.out_dtype = o.out_dtype;
  std::optional<ModelRef> base;
  if (!o.base_model.empty())
    base = ModelRef::parse(o.base_model, "ps.base_model");
  else if (is_slerp())
    base = ModelRef::parse(o.models[0], "ps.models[0]");
  cfg.base_model = base;
  if (o.normalize && o.method != "slerp")
    cfg.parameters["normalize"] = ParamValue::constant(*o.normalize ? 1.0 : 0.0);

  // The value of parameter `param` of `model` for the tensors of `slot`, as a filter list when
  // there are several filter sets or embed/head cases.
  const int n_groups = static_cast<int>(groups_.size());
  auto value_for = [&](int group, int model, const std::string& param) -> ParamValue {
    std::vector<std::pair<std::string, ParamValue>> cases;
    const std::string slot = slots_[group];
    if (o.separate_embed_head) {
      // Pre-weights take their parameters from the first slice, post-weights from the last
      // (mergekit-compat.md section 5), so those slices carry the embed / head cases.
      if (group == 0)
        cases.push_back({"embed_tokens",
                         ParamValue::constant(x[find_gene(genes_, "embed", "*", model, param)])});
      if (group == n_groups - 1) {
        const double h = x[find_gene(genes_, "head", "*", model, param)];
        cases.push_back({"lm_head", ParamValue::constant(h)});
        cases.push_back({"model.norm", ParamValue::constant(h)});
      }
    }
    for (const auto& f : filter_sets_) {
      const int idx = find_gene(genes_, slot, f, model, param);
      EM_ASSERT(idx >= 0);
      cases.push_back({f == "*" ? std::string() : f, ParamValue::constant(x[idx])});
    }
    if (cases.size() == 1) return cases[0].second;
    return ParamValue::filtered(std::move(cases));
  };

  std::vector<ModelRef> refs;
  for (size_t m = 0; m < o.models.size(); ++m)
    refs.push_back(ModelRef::parse(o.models[m], fmt::format("ps.models[{}]", m)));
  for (int g = 0; g < n_groups; ++g) {
    OutputSlice slice;
    const auto [a, b] = groups_[g];
    if (is_slerp()) {
      for (const auto& r : refs) slice.sources.push_back({r, a, b, {}, 0});
      slice.base_model = base;
      slice.parameters["t"] = value_for(g, -1, "t");
    } else {
      for (size_t m = 0; m < refs.size(); ++m) {
        SliceSource src{refs[m], a, b, {}, 0};
        src.parameters["weight"] = value_for(g, static_cast<int>(m), "weight");
        if (uses_density())
          src.parameters["density"] = value_for(g, static_cast<int>(m), "density");
        slice.sources.push_back(std::move(src));
      }
      // With slices the base model is not added automatically (mergekit-compat.md section 1.4).
      if (base && std::find(refs.begin(), refs.end(), *base) == refs.end())
        slice.sources.push_back({*base, a, b, {}, 0});
    }
    cfg.slices.push_back(std::move(slice));
  }
  return cfg;
}

std::string PsGenome::to_yaml(std::span<const double> x) const {
  return merge_config_to_yaml(decode(x));
}

nlohmann::json PsGenome::describe(std::span<const double> x) const {
  if (x.size() != genes_.size())
    fail("evolve", "PS genome has {} values, the space has {} genes", x.size(), genes_.size());
  nlohmann::json j;
  j["method"] = options_.method;
  j["slots"] = slots_;
  j["filters"] = filter_sets_;
  if (is_slerp()) {
    nlohmann::json t = nlohmann::json::object();
    for (size_t i = 0; i < genes_.size(); ++i) t[genes_[i].filter].push_back(x[i]);
    j["t"] = t;
    return j;
  }
  nlohmann::json models = nlohmann::json::array();
  for (size_t m = 0; m < options_.models.size(); ++m) {
    nlohmann::json mj;
    mj["model"] = options_.models[m];
    for (size_t i = 0; i < genes_.size(); ++i)
      if (genes_[i].model == static_cast<int>(m)) mj[genes_[i].param].push_back(x[i]);
    models.push_back(mj);
  }
  j["models"] = models;
  return j;
}

// ---------------------------------------------------------------------------------------------
// DFS

DfsGenome::DfsGenome(DfsSpaceOptions options) : options_(std::move(options)) {
  const auto& o = options_;
  if (o.layers_per_model.empty()) fail("evolve", "dfs.models: at least one model is needed");
  for (size_t m = 0; m < o.layers_per_model.size(); ++m) {
    if (o.layers_per_model[m] < 1) fail("evolve", "dfs.models[{}]: has no layers", m);
    offsets_.push_back(total_layers_);
    total_layers_ += o.layers_per_model[m];
  }
  if (o.repeats < 1 || o.repeats > 16)
    fail("evolve", "dfs.repeats: {} is not in [1, 16]", o.repeats);
  if (!(o.scale_min > 0 && o.scale_min < o.scale_max && std::isfinite(o.scale_max)))
    fail("evolve", "dfs.scale: range [{}, {}] must be positive and non-empty", o.scale_min,
         o.scale_max);
  if (!(o.init_scale >= o.scale_min && o.init_scale <= o.scale_max))
    fail("evolve", "dfs.init_scale: {} is outside [{}, {}]", o.init_scale, o.scale_min,
         o.scale_max);
  if (!(o.init_on > 0) || !(o.init_off <= 0) || !std::isfinite(o.init_on) ||
      !std::isfinite(o.init_off))
    fail("evolve",
         "dfs.init_on / dfs.init_off: {} / {} must satisfy init_on > 0 >= init_off, so that the "
         "search starts at model A's plain path",
         o.init_on, o.init_off);
  if (o.scaling == DfsScaling::Full &&
      static_cast<int64_t>(total_layers_) * total_layers_ > 4'000'000)
    fail("evolve", "dfs.scaling: full W would have {} entries; use scaling: model_pair",
         int64_t{total_layers_} * total_layers_);
}

int DfsGenome::scale_size() const {
  if (options_.scaling == DfsScaling::PerHop) return indicator_size() + 1;
  const int k = options_.scaling == DfsScaling::Full
                    ? total_layers_
                    : static_cast<int>(options_.layers_per_model.size());
  return k * k;
}

std::vector<double> DfsGenome::lower() const {
  std::vector<double> v(indicator_size(), -std::numeric_limits<double>::infinity());
  v.resize(dimension(), options_.scale_min);
  return v;
}
std::vector<double> DfsGenome::upper() const {
  std::vector<double> v(indicator_size(), std::numeric_limits<double>::infinity());
  v.resize(dimension(), options_.scale_max);
  return v;
}
std::vector<double> DfsGenome::initial() const {
  std::vector<double> v(indicator_size(), options_.init_off);
  for (int l = 0; l < options_.layers_per_model[0]; ++l) v[l] = options_.init_on;
  v.resize(dimension(), options_.init_scale);
  return v;
}

std::pair<int, int> DfsGenome::layer_of(int g) const {
  EM_ASSERT(g >= 0 && g < total_layers_);
  const auto it = std::upper_bound(offsets_.begin(), offsets_.end(), g) - 1;
  const int m = static_cast<int>(it - offsets_.begin());
  return {m, g - *it};
}

int DfsGenome::global_index(int model, int layer) const {
  EM_ASSERT(model >= 0 && model < static_cast<int>(offsets_.size()));
  EM_ASSERT(layer >= 0 && layer < options_.layers_per_model[model]);
  return offsets_[model] + layer;
}

double DfsGenome::scale(std::span<const double> x, int from, int to) const {
  const int base = indicator_size();
  EM_ASSERT(options_.scaling != DfsScaling::PerHop);
  if (options_.scaling == DfsScaling::Full) return x[base + from * total_layers_ + to];
  const int k = static_cast<int>(options_.layers_per_model.size());
  return x[base + layer_of(from).first * k + layer_of(to).first];
}

std::vector<LayerHop> DfsGenome::decode(std::span<const double> x) const {
  if (x.size() != dimension())
    fail("evolve", "DFS genome has {} values, the space has {}", x.size(), dimension());
  const int last_a = options_.layers_per_model[0] - 1;
  const int T = indicator_size();
  std::vector<int> globals{0};  // fixed start: model A's first layer
  std::vector<int> entry{-1};   // the indicator entry behind each hop (-1: fixed start; T: end)
  for (int t = 0; t < T; ++t) {
    if (!(x[t] > 0)) continue;
    const int g = t % total_layers_;
    if (t == 0) continue;  // the fixed start itself
    globals.push_back(g);
    entry.push_back(t);
  }
  // The fixed end, unless the path already ends there (e.g. all of A selected in repetition 1).
  if (globals.back() != last_a) globals.push_back(last_a), entry.push_back(T);
  const bool per_hop = options_.scaling == DfsScaling::PerHop;
  std::vector<LayerHop> path;
  for (size_t k = 0; k < globals.size(); ++k) {
    const auto [m, l] = layer_of(globals[k]);
    const double s = k == 0    ? 1.0
                     : per_hop ? x[static_cast<size_t>(T + entry[k])]
                               : scale(x, globals[k - 1], globals[k]);
    // The box transform keeps scale genes in [scale_min, scale_max] (> 0); guard the invariant.
    EM_ASSERT(s > 0);
    path.push_back({m, l, static_cast<float>(s)});
  }
  return path;
}

nlohmann::json DfsGenome::describe(std::span<const double> x) const {
  nlohmann::json hops = nlohmann::json::array();
  for (const auto& h : decode(x)) hops.push_back({h.model, h.layer, h.input_scale});
  return {{"path", hops}, {"length", hops.size()}};
}

}  // namespace evomerge
