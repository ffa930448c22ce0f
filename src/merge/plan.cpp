// The merge plan: a mergekit config resolved against the opened models into one PlanTensor per
// output tensor (its inputs, per-model and global parameters, shape and dtype). Every check that
// would otherwise fail mid-merge happens here, before anything is written.
#include <fmt/format.h>

#include <algorithm>

#include "arch/arch.h"
#include "common/error.h"
#include "common/progress.h"
#include "io/files.h"
#include "merge/chat_templates.h"
#include "merge/merge.h"
#include "merge/methods.h"
#include "merge/tokenizer_merge.h"

namespace evomerge {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kPlan = "merge-plan";

// A config normalised to slices (mergekit §1.4): `models:` becomes one slice over all layers with
// the base appended when not listed.
struct NSource {
  ModelRef ref;
  int start = 0, end = 0;
  const ParamMap* params = nullptr;
  int line = 0;
  std::string key;  // "models[1]" / "slices[0].sources[2]" for messages
};
struct NSlice {
  std::vector<NSource> sources;
  std::optional<ModelRef> base;
  const ParamMap* params = nullptr;
  std::string key;
  int layers() const { return sources[0].end - sources[0].start; }
};

const ParamMap kEmpty;

std::string at(const MergeConfig& c, int line) {
  return line > 0 ? fmt::format("{}:{}", c.where, line) : c.where;
}

// A parameter's value for tensor `tname` at layer fraction t: the first level that sets it.
std::optional<double> lookup(std::initializer_list<const ParamMap*> levels, std::string_view pname,
                             std::string_view tname, double t) {
  for (const ParamMap* level : levels) {
    if (!level) continue;
    auto it = level->find(pname);
    if (it == level->end()) continue;
    if (auto v = it->second.evaluate(tname, t)) return v;
  }
  return std::nullopt;
}

const MethodSpec& method_spec(const MergeConfig& config) {
  if (const MethodSpec* spec = find_method(config.merge_method)) return *spec;
  std::string known;
  for (const auto& n : method_names()) known += (known.empty() ? "" : ", ") + n;
  fail(kPlan, "{}: merge_method: unknown method '{}' (known: {})", config.where,
       config.merge_method, known);
}

// Parameters the method does not read: mergekit ignores them, so they are warnings (errors under
// --strict, checked at the end of planning), found before any model is opened.
void warn_unused_parameters(const MergeConfig& config, const MethodSpec& spec,
                            std::vector<std::string>& warnings) {
  auto check_names = [&](const ParamMap& params, const std::string& key) {
    for (const auto& [name, value] : params) {
      bool known = false;
      for (const auto& p : spec.globals) known = known || p.name == name;
      for (const auto& p : spec.per_model) known = known || p.name == name;
      if (known) continue;
      std::string list;
      for (const auto& p : spec.globals) list += (list.empty() ? "" : ", ") + p.name;
      for (const auto& p : spec.per_model) list += (list.empty() ? "" : ", ") + p.name;
      warnings.push_back(fmt::format(
          "{}: {}.{}: parameter '{}' has no effect: merge_method {} does not use it (known: {})",
          at(config, value.line), key, name, name, spec.name, list.empty() ? "none" : list));
    }
  };
  check_names(config.parameters, "parameters");
  for (size_t i = 0; i < config.models.size(); ++i)
    check_names(config.models[i].parameters, fmt::format("models[{}].parameters", i));
  for (size_t k = 0; k < config.slices.size(); ++k) {
    check_names(config.slices[k].parameters, fmt::format("slices[{}].parameters", k));
    for (size_t j = 0; j < config.slices[k].sources.size(); ++j)
      check_names(config.slices[k].sources[j].parameters,
                  fmt::format("slices[{}].sources[{}].parameters", k, j));
  }
}

// Builds one plan; the steps share the config, the method and the opened models.
class PlanBuilder {
 public:
  PlanBuilder(const MergeConfig& config, const MergeOptions& options)
      : config_(config), spec_(method_spec(config)), options_(options) {}

  MergePlan build(ModelCache& cache);

 private:
  int model_index(const ModelRef& r) const {
    for (size_t i = 0; i < refs_.size(); ++i)
      if (refs_[i] == r) return static_cast<int>(i);
    EM_ASSERT(false);
    return -1;
  }
  const SourceModel& model_of(const ModelRef& r) const { return *plan_.models[model_index(r)]; }
  int layers_of(const ModelRef& r) const {
    return static_cast<int>(model_of(r).config().num_hidden_layers);
  }

  void open_models(ModelCache& cache);
  void normalise_slices();
  void check_slice_inputs(const NSlice& s) const;
  ModelConfig plan_output_config();
  PlanTensor plan_tensor(const TensorSpec& ts, const TensorNames& out_names) const;
  void plan_inputs(PlanTensor& pt, const NSlice& slice, const TensorLocation& loc, int offset,
                   double t, const TensorNames& out_names) const;
  void plan_shape(PlanTensor& pt, const TensorNames& out_names) const;
  void check_tensor(const PlanTensor& pt) const;

  const MergeConfig& config_;
  const MethodSpec& spec_;
  const MergeOptions& options_;
  MergePlan plan_;
  std::vector<ModelRef> refs_;  // plan_.models[i] is refs_[i]
  std::vector<NSlice> slices_;
  std::vector<std::pair<int, int>> layer_slice_;  // output layer -> (slice, layer offset in it)
  std::optional<DType> out_dtype_;
  bool merge_vocab_ = false;
};

void PlanBuilder::open_models(ModelCache& cache) {
  refs_ = config_.referenced_models();
  for (const auto& r : refs_) plan_.models.push_back(cache.get(r));
  if (config_.chat_template == "auto") {
    std::vector<fs::path> dirs;
    for (const auto& m : plan_.models) dirs.push_back(m->folder().dir);
    plan_.chat_template = resolve_chat_template("auto", dirs, config_.where, plan_.warnings);
  }
  // Architectures must agree unless allow_crimes.
  const ModelConfig& first = plan_.models.front()->config();
  for (const auto& m : plan_.models)
    if (m->config().architecture != first.architecture && !options_.allow_crimes)
      fail(kPlan,
           "{}: models of different architectures: {} is {} but {} is {} (use --allow-crimes to "
           "merge anyway)",
           config_.where, plan_.models.front()->reference(), first.architecture, m->reference(),
           m->config().architecture);
}

void PlanBuilder::normalise_slices() {
  if (!config_.models.empty()) {
    NSlice s;
    s.key = "models";
    s.base = config_.base_model;
    s.params = &kEmpty;
    bool base_listed = false;
    for (size_t i = 0; i < config_.models.size(); ++i) {
      const auto& m = config_.models[i];
      s.sources.push_back(
          {m.model, 0, layers_of(m.model), &m.parameters, m.line, fmt::format("models[{}]", i)});
      base_listed = base_listed || (config_.base_model && m.model == *config_.base_model);
    }
    if (config_.base_model && !base_listed)
      s.sources.push_back(
          {*config_.base_model, 0, layers_of(*config_.base_model), &kEmpty, 0, "base_model"});
    slices_.push_back(std::move(s));
  } else {
    for (size_t k = 0; k < config_.slices.size(); ++k) {
      const auto& cs = config_.slices[k];
      NSlice s;
      s.key = fmt::format("slices[{}]", k);
      s.base = cs.base_model ? cs.base_model : config_.base_model;
      s.params = &cs.parameters;
      for (size_t j = 0; j < cs.sources.size(); ++j) {
        const auto& src = cs.sources[j];
        std::string key = fmt::format("slices[{}].sources[{}]", k, j);
        const int n = layers_of(src.model);
        if (src.layer_end > n)
          fail(kPlan, "{}: {}.layer_range: [{}, {}] is outside {} which has {} layers",
               at(config_, src.line), key, src.layer_start, src.layer_end, src.model.str(), n);
        s.sources.push_back(
            {src.model, src.layer_start, src.layer_end, &src.parameters, src.line, key});
      }
      slices_.push_back(std::move(s));
    }
  }
  for (size_t k = 0; k < slices_.size(); ++k) {
    check_slice_inputs(slices_[k]);
    for (int o = 0; o < slices_[k].layers(); ++o) layer_slice_.push_back({static_cast<int>(k), o});
  }
}

// Equal layer counts, and the input counts and base placement each method needs.
void PlanBuilder::check_slice_inputs(const NSlice& s) const {
  for (const auto& src : s.sources)
    if (src.end - src.start != s.layers())
      fail(kPlan,
           "{}: {}: all inputs to a slice must contain the same number of layers ({} has {}, {} "
           "has {})",
           at(config_, src.line), s.key, s.sources[0].key, s.layers(), src.key,
           src.end - src.start);
  int base_pos = -1;
  for (size_t j = 0; j < s.sources.size(); ++j)
    if (s.base && s.sources[j].ref == *s.base) base_pos = static_cast<int>(j);
  const int others = static_cast<int>(s.sources.size()) - (base_pos >= 0 ? 1 : 0);
  const std::string& mname = spec_.name;
  if (spec_.base == BaseUse::Required && base_pos < 0)
    fail(kPlan, "{}: {}: merge_method {} needs base_model{}", config_.where, s.key, mname,
         s.base ? fmt::format(" ({} is not among the sources)", s.base->str())
                : std::string(" (none given)"));
  auto need = [&](bool ok, std::string_view what) {
    if (!ok)
      fail(kPlan, "{}: {}: merge_method {} needs {} (got {} model(s){})", config_.where, s.key,
           mname, what, s.sources.size(), base_pos >= 0 ? ", base included" : "");
  };
  if (mname == "slerp") need(s.sources.size() == 2, "exactly two models, one of them base_model");
  if (mname == "nuslerp") need(others == 2, "exactly two models besides the optional base_model");
  if (mname == "nearswap" || mname == "arcee_fusion")
    need(others == 1, "base_model and exactly one other model");
  if (mname == "model_stock") need(others >= 2, "base_model and at least two other models");
  if (mname == "passthrough") need(s.sources.size() == 1, "exactly one source per slice");
}

// The output config.json (the donor's, with dtype and layer count) and the model config read from
// it, whose tensor names the output uses.
ModelConfig PlanBuilder::plan_output_config() {
  // Donor: the base model, else the first referenced model (mergekit picks an arbitrary one).
  plan_.donor = config_.base_model ? model_index(*config_.base_model) : 0;
  const SourceModel& donor = *plan_.models[plan_.donor];
  plan_.out_config_json = donor.folder().config;
  out_dtype_ = config_.out_dtype ? config_.out_dtype : config_.dtype;
  if (out_dtype_) plan_.out_config_json["torch_dtype"] = std::string(dtype_torch_name(*out_dtype_));
  const int total_layers = static_cast<int>(layer_slice_.size());
  if (!config_.slices.empty())
    plan_.out_config_json[std::string(layer_count_key(donor.config()))] = total_layers;
  ModelConfig out_cfg =
      parse_model_config(plan_.out_config_json, donor.folder().dir.string() + "/config.json");
  out_cfg.num_hidden_layers = total_layers;
  out_cfg.gpt2_prefix = donor.config().gpt2_prefix;
  return out_cfg;
}

// The sources of one output tensor, with their per-model parameters: the source's own, then the
// slice's, then the top level (looked up by the input tensor's name).
void PlanBuilder::plan_inputs(PlanTensor& pt, const NSlice& slice, const TensorLocation& loc,
                              int offset, double t, const TensorNames& out_names) const {
  for (const auto& src : slice.sources) {
    const SourceModel& sm = model_of(src.ref);
    std::string in_name =
        loc.place == TensorPlace::Layer ? layer_tensor_name(loc, src.start + offset) : pt.name;
    if (pt.name == out_names.head && !sm.has(in_name) && sm.config().tie_word_embeddings)
      in_name = tensor_names(sm.config()).embed;
    if (!sm.info(in_name))
      fail(kPlan, "{}: tensor '{}' is required for output '{}' but missing in model {}",
           at(config_, src.line), in_name, pt.name, sm.reference());
    PlanInput in;
    in.model = model_index(src.ref);
    in.tensor = in_name;
    const bool is_base = slice.base && src.ref == *slice.base;
    if (is_base) pt.base = static_cast<int>(pt.inputs.size());
    for (const auto& p : spec_.per_model) {
      auto v = lookup({src.params, slice.params, &config_.parameters}, p.name, in_name, t);
      if (!v && p.default_value) v = p.default_value;
      if (!v) {
        if (is_base && !spec_.base_is_input) continue;  // e.g. ties: the base has no weight
        fail(kPlan, "{}: {}: missing required parameter '{}' for model {} (tensor '{}')",
             at(config_, src.line), src.key, p.name, src.ref.str(), in_name);
      }
      in.params[p.name] = *v;
    }
    pt.inputs.push_back(std::move(in));
  }
}

// Shapes must be equal, except vocab rows of embeddings (common submatrix; GTA methods use the
// base's; with a merged vocabulary, plan_merged_vocab sets them).
void PlanBuilder::plan_shape(PlanTensor& pt, const TensorNames& out_names) const {
  const PlanInput& ref_in = pt.inputs[pt.base >= 0 ? pt.base : 0];
  const TensorInfo* ref_info = plan_.models[ref_in.model]->info(ref_in.tensor);
  Shape shape = ref_info->shape;
  const bool gta_like = spec_.base == BaseUse::Required && spec_.name != "slerp" &&
                        spec_.name != "model_stock" && spec_.name != "arcee_fusion";
  const bool is_embed = pt.name == out_names.embed || pt.name == out_names.head;
  for (const auto& in : pt.inputs) {
    const Shape& s = plan_.models[in.model]->info(in.tensor)->shape;
    if (s == shape) continue;
    const bool rectify = is_embed && s.size() == 2 && shape.size() == 2 && s[1] == shape[1];
    if (rectify && merge_vocab_) continue;
    if (rectify && !gta_like)
      shape[0] = std::min(shape[0], s[0]);
    else if (!(rectify && s[0] >= shape[0]))
      fail(kPlan, "{}: tensor '{}' has shape {} in {} but {} in {}", config_.where, pt.name,
           shape_string(s), plan_.models[in.model]->reference(), shape_string(ref_info->shape),
           plan_.models[ref_in.model]->reference());
  }
  pt.shape = shape;
  pt.dtype = out_dtype_ ? *out_dtype_ : ref_info->dtype;
}

// Checks that would otherwise fail mid-merge.
void PlanBuilder::check_tensor(const PlanTensor& pt) const {
  const auto normalize = pt.globals.find("normalize");
  if (spec_.name == "linear" && normalize != pt.globals.end() && normalize->second != 0) {
    double wsum = 0;
    for (const auto& in : pt.inputs) wsum += in.params.at("weight");
    if (wsum == 0)
      fail(kPlan,
           "{}: linear: the weights of tensor '{}' sum to zero (normalize: true divides by the "
           "sum)",
           config_.where, pt.name);
  }
  if (spec_.name == "della" || spec_.name == "della_linear")
    for (const auto& in : pt.inputs) {
      if (!in.params.count("density")) continue;
      const double d = in.params.at("density"), e = in.params.at("epsilon");
      if (d < 1 && d > 0 && (d + e >= 1 || d - e <= 0))
        fail(kPlan,
             "{}: {}: tensor '{}' of {}: density {} and epsilon {} need 0 < density - epsilon and "
             "density + epsilon < 1",
             config_.where, spec_.name, in.tensor, plan_.models[in.model]->reference(), d, e);
    }
}

PlanTensor PlanBuilder::plan_tensor(const TensorSpec& ts, const TensorNames& out_names) const {
  auto loc = classify_tensor(ts.name);
  EM_ASSERT(loc.has_value());
  PlanTensor pt;
  pt.name = ts.name;
  const NSlice* slice;
  int offset = 0;
  double t = 0.0;  // pre- and post-layer weights use t = 0 (mergekit >= v0.1.2)
  if (loc->place == TensorPlace::Layer) {
    auto [k, o] = layer_slice_[loc->layer];
    slice = &slices_[k];
    offset = o;
    pt.out_layer = loc->layer;
    const int len = slice->layers();
    t = len > 1 ? static_cast<double>(o) / (len - 1) : 1.0;
  } else {
    slice = loc->place == TensorPlace::PreLayer ? &slices_.front() : &slices_.back();
  }
  plan_inputs(pt, *slice, *loc, offset, t, out_names);
  if (spec_.base == BaseUse::Ignored) pt.base = -1;
  for (const auto& p : spec_.globals) {
    auto v = lookup({slice->params, &config_.parameters}, p.name, ts.name, t);
    if (!v && p.default_value) v = p.default_value;
    if (!v)
      fail(kPlan, "{}: missing required parameter '{}' for tensor '{}' (set it under parameters:)",
           config_.where, p.name, ts.name);
    pt.globals[p.name] = *v;
  }
  plan_shape(pt, out_names);
  check_tensor(pt);
  return pt;
}

MergePlan PlanBuilder::build(ModelCache& cache) {
  plan_.config = config_;
  plan_.method = config_.merge_method;
  plan_.random_seed = options_.random_seed;
  plan_.warnings = config_.warnings;
  warn_unused_parameters(config_, spec_, plan_.warnings);
  // A built-in name or a literal template is checked before any model is opened; `auto` reads them.
  if (!config_.chat_template.empty() && config_.chat_template != "auto")
    plan_.chat_template =
        resolve_chat_template(config_.chat_template, {}, config_.where, plan_.warnings);
  open_models(cache);  // every model once, shared through the cache
  normalise_slices();
  const ModelConfig out_cfg = plan_output_config();
  const TensorNames out_names = tensor_names(out_cfg);
  std::vector<TensorSpec> out_specs = expected_tensors(out_cfg, DType::F32);
  // lm_head: written when any model of the last slice has one (tied models then contribute their
  // embeddings); a tied donor config is then untied so the head is used (mergekit leaves it tied).
  bool any_head = false;
  for (const auto& src : slices_.back().sources)
    any_head = any_head || model_of(src.ref).has(tensor_names(model_of(src.ref).config()).head);
  if (out_cfg.tie_word_embeddings && any_head) {
    out_specs.push_back({out_names.head, DType::F32, {out_cfg.vocab_size, out_cfg.hidden_size}});
    plan_.out_config_json["tie_word_embeddings"] = false;
  }
  merge_vocab_ = !config_.tokenizer_source.empty() || config_.tokenizer.given;
  for (const auto& ts : out_specs) plan_.tensors.push_back(plan_tensor(ts, out_names));
  if (merge_vocab_) plan_merged_vocab(plan_);
  // Embedding rows may have shrunk to a common vocabulary: say so in the config (mergekit does
  // not).
  if (const PlanTensor* e = plan_.find(out_names.embed); e && e->shape[0] != out_cfg.vocab_size)
    plan_.out_config_json["vocab_size"] = e->shape[0];
  plan_.out_config = parse_model_config(plan_.out_config_json, "merged config.json");
  plan_.out_config.gpt2_prefix = out_cfg.gpt2_prefix;
  if (options_.strict && !plan_.warnings.empty())
    fail(kPlan, "{} (an error under --strict; {} warning(s) in all)", plan_.warnings.front(),
         plan_.warnings.size());
  return std::move(plan_);
}

}  // namespace

MergePlan build_plan(const MergeConfig& config, ModelCache& cache, const MergeOptions& options) {
  return PlanBuilder(config, options).build(cache);
}

const PlanTensor* MergePlan::find(std::string_view name) const {
  for (const auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

uint64_t MergePlan::output_bytes() const {
  uint64_t b = 0;
  for (const auto& t : tensors) b += t.nbytes();
  return b;
}

uint64_t MergePlan::input_bytes() const {
  uint64_t b = 0;
  for (const auto& t : tensors)
    for (const auto& in : t.inputs)
      b += static_cast<uint64_t>(shape_numel(t.shape)) *
           dtype_size(models[in.model]->info(in.tensor)->dtype);
  return b;
}

std::string MergePlan::describe() const {
  std::string out = fmt::format("merge_method: {}\nmodels:\n", method);
  for (size_t i = 0; i < models.size(); ++i)
    out += fmt::format("  [{}] {}{}\n", i, models[i]->reference(),
                       static_cast<int>(i) == donor ? "  (donor: config, tokenizer)" : "");
  out += fmt::format("output: {} layers, {} tensors, {}\n", out_config.num_hidden_layers,
                     tensors.size(), format_bytes(static_cast<double>(output_bytes())));
  for (const auto& t : tensors) {
    std::string globals;
    for (const auto& [k, v] : t.globals) globals += fmt::format(" {}={:g}", k, v);
    out += fmt::format("{} {} {}{}\n", t.name, dtype_name(t.dtype), shape_string(t.shape), globals);
    for (size_t i = 0; i < t.inputs.size(); ++i) {
      const auto& in = t.inputs[i];
      std::string params;
      for (const auto& [k, v] : in.params) params += fmt::format(" {}={:g}", k, v);
      out += fmt::format("    <- [{}] {}{}{}\n", in.model, in.tensor,
                         static_cast<int>(i) == t.base ? " (base)" : "", params);
    }
  }
  return out;
}

std::vector<size_t> plan_tensors_in_layers(const MergePlan& plan, std::span<const int> layers) {
  std::vector<size_t> out;
  for (size_t i = 0; i < plan.tensors.size(); ++i)
    if (std::find(layers.begin(), layers.end(), plan.tensors[i].out_layer) != layers.end())
      out.push_back(i);
  return out;
}

}  // namespace evomerge
