// Source models, the plan, and in-memory execution. Folder writing is in write.cpp.
#include "merge/merge.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <set>
#include <thread>

#include "arch/arch.h"
#include "common/error.h"
#include "common/progress.h"
#include "io/files.h"
#include "merge/adapter_config.h"
#include "merge/chat_templates.h"
#include "merge/executor.h"
#include "merge/methods.h"
#include "merge/tokenizer_merge.h"
#include "tensor/convert.h"

namespace evomerge {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {
constexpr std::string_view kPlan = "merge-plan";
constexpr std::string_view kLora = "lora";
}  // namespace

// ---------------------------------------------------------------------------------------------
// SourceModel

struct SourceModel::LoraPair {
  TensorView a;  // [r, in]
  TensorView b;  // [out, r]
  double scale = 1.0;
};

SourceModel::~SourceModel() = default;

std::shared_ptr<SourceModel> SourceModel::open(const ModelRef& ref) {
  std::shared_ptr<SourceModel> m(new SourceModel());
  m->ref_ = ref;
  Model model = Model::open(ref.path);
  m->folder_ = std::make_unique<ModelFolder>(std::move(model.folder));
  m->config_ = std::move(model.config);
  if (ref.lora.empty()) return m;

  // PEFT adapter: adapter_config.json {r, lora_alpha, use_rslora?, alpha_pattern?, fan_in_fan_out?}
  // and adapter_model.safetensors with base_model.model.<module>.lora_{A,B}.weight.
  fs::path dir = resolve_model_path(ref.lora);
  fs::path cfg_path = dir / "adapter_config.json";
  const AdapterConfig cfg =
      parse_adapter_config(read_text_file(cfg_path, 4u << 20), cfg_path.string());
  const double alpha = cfg.alpha;
  const bool rslora = cfg.rslora;
  const std::map<std::string, double>& alpha_pattern = cfg.alpha_pattern;

  fs::path st = dir / "adapter_model.safetensors";
  m->lora_files_.push_back(SafetensorsFile::open(st));
  const SafetensorsFile& f = m->lora_files_.back();
  std::map<std::string, std::pair<const TensorInfo*, const TensorInfo*>> pairs;
  for (const auto& t : f.tensors()) {
    std::string name = t.name;
    if (name.starts_with("base_model.model.")) name = name.substr(17);
    bool is_a = name.ends_with(".lora_A.weight"), is_b = name.ends_with(".lora_B.weight");
    if (!is_a && !is_b)
      fail(kLora, "{}: tensor '{}' is not a lora_A/lora_B weight (embedding LoRAs, biases and modules_to_save are not supported)",
           st.string(), t.name);
    std::string module = name.substr(0, name.size() - 14);
    (is_a ? pairs[module].first : pairs[module].second) = &t;
  }
  for (const auto& [module, ab] : pairs) {
    const std::string base_name = module + ".weight";
    if (!ab.first || !ab.second) fail(kLora, "{}: module '{}' has only one of lora_A / lora_B", st.string(), module);
    const TensorInfo* w = m->folder_->weights.find(base_name);
    if (!w) fail(kLora, "{}: LoRA module '{}' does not fit {}: it has no tensor '{}'", st.string(), module, ref.path, base_name);
    const Shape& sa = ab.first->shape;
    const Shape& sb = ab.second->shape;
    if (w->shape.size() != 2 || sa.size() != 2 || sb.size() != 2 || sa[1] != w->shape[1] || sb[0] != w->shape[0] ||
        sa[0] != sb[1])
      fail(kLora, "{}: LoRA module '{}' does not fit {}: A {} and B {} cannot update '{}' {} (need A [r, {}], B [{}, r])",
           st.string(), module, ref.path, shape_string(sa), shape_string(sb), base_name, shape_string(w->shape),
           w->shape.size() == 2 ? w->shape[1] : -1, w->shape.empty() ? -1 : w->shape[0]);
    if (!dtype_is_compute(ab.first->dtype) || !dtype_is_compute(ab.second->dtype))
      fail(kLora, "{}: LoRA module '{}' has a non-float dtype", st.string(), module);
    double a = alpha;
    for (const auto& [pat, v] : alpha_pattern)
      if (module == pat || module.ends_with("." + pat)) a = v;
    const double rank = static_cast<double>(sa[0]);
    LoraPair p{f.view(*ab.first), f.view(*ab.second), rslora ? a / std::sqrt(rank) : a / rank};
    m->lora_.emplace(base_name, p);
  }
  if (m->lora_.empty()) fail(kLora, "{}: the adapter has no LoRA tensors", st.string());
  return m;
}

bool SourceModel::has(std::string_view name) const { return folder_->weights.contains(name); }
const TensorInfo* SourceModel::info(std::string_view name) const { return folder_->weights.find(name); }
TensorView SourceModel::stored(std::string_view name) const { return folder_->weights.view(name); }

void SourceModel::add_lora_delta(std::string_view name, float* dst) const {
  auto it = lora_.find(name);
  if (it == lora_.end()) return;
  const LoraPair& p = it->second;
  const int64_t r = p.a.shape[0], in = p.a.shape[1], out = p.b.shape[0];
  std::vector<float> A = to_f32(p.a), B = to_f32(p.b);
  const float s = static_cast<float>(p.scale);
  // W[o, :] += s * sum_k B[o, k] * A[k, :]   (k-outer keeps the inner loop contiguous)
  for (int64_t o = 0; o < out; ++o) {
    float* row = dst + o * in;
    for (int64_t k = 0; k < r; ++k) {
      const float c = s * B[o * r + k];
      const float* arow = A.data() + k * in;
      for (int64_t i = 0; i < in; ++i) row[i] += c * arow[i];
    }
  }
}

void SourceModel::read_f32(std::string_view name, float* dst) const {
  TensorView v = stored(name);
  convert_to_f32(v.dtype, v.data, dst, static_cast<size_t>(v.numel()));
  add_lora_delta(name, dst);
}

// ---------------------------------------------------------------------------------------------
// ModelCache

std::shared_ptr<const SourceModel> ModelCache::get(const ModelRef& ref) {
  const std::string key = ref.str();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (auto it = models_.find(key); it != models_.end()) return it->second;
  }
  auto m = SourceModel::open(ref);  // outside the lock: opening maps and validates files
  std::lock_guard<std::mutex> lock(mutex_);
  return models_.emplace(key, std::move(m)).first->second;
}

size_t ModelCache::size() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return models_.size();
}

// ---------------------------------------------------------------------------------------------
// The plan

namespace {

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
};

const ParamMap kEmpty;

std::string at(const MergeConfig& c, int line) {
  return line > 0 ? fmt::format("{}:{}", c.where, line) : c.where;
}

}  // namespace

MergePlan build_plan(const MergeConfig& config, ModelCache& cache, const MergeOptions& options) {
  MergePlan plan;
  plan.config = config;
  plan.method = config.merge_method;
  plan.random_seed = options.random_seed;
  const MethodSpec* spec = find_method(config.merge_method);
  if (!spec) {
    std::string known;
    for (const auto& n : method_names()) known += (known.empty() ? "" : ", ") + n;
    fail(kPlan, "{}: merge_method: unknown method '{}' (known: {})", config.where, config.merge_method, known);
  }

  // Parameters the method does not read: mergekit ignores them, so they are warnings (errors under
  // --strict, checked at the end of planning), found before any model is opened.
  plan.warnings = config.warnings;
  auto check_names = [&](const ParamMap& params, const std::string& key) {
    for (const auto& [name, value] : params) {
      bool known = false;
      for (const auto& p : spec->globals) known = known || p.name == name;
      for (const auto& p : spec->per_model) known = known || p.name == name;
      if (!known) {
        std::string list;
        for (const auto& p : spec->globals) list += (list.empty() ? "" : ", ") + p.name;
        for (const auto& p : spec->per_model) list += (list.empty() ? "" : ", ") + p.name;
        plan.warnings.push_back(fmt::format(
            "{}: {}.{}: parameter '{}' has no effect: merge_method {} does not use it (known: {})",
            at(config, value.line), key, name, name, spec->name, list.empty() ? "none" : list));
      }
    }
  };
  check_names(config.parameters, "parameters");
  for (size_t i = 0; i < config.models.size(); ++i) check_names(config.models[i].parameters, fmt::format("models[{}].parameters", i));
  for (size_t k = 0; k < config.slices.size(); ++k) {
    check_names(config.slices[k].parameters, fmt::format("slices[{}].parameters", k));
    for (size_t j = 0; j < config.slices[k].sources.size(); ++j)
      check_names(config.slices[k].sources[j].parameters, fmt::format("slices[{}].sources[{}].parameters", k, j));
  }
  // A built-in name or a literal template is checked before any model is opened; `auto` reads them.
  if (!config.chat_template.empty() && config.chat_template != "auto")
    plan.chat_template =
        resolve_chat_template(config.chat_template, {}, config.where, plan.warnings);

  // Open every model once (shared through the cache).
  std::vector<ModelRef> refs = config.referenced_models();
  for (const auto& r : refs) plan.models.push_back(cache.get(r));
  auto model_index = [&](const ModelRef& r) {
    for (size_t i = 0; i < refs.size(); ++i)
      if (refs[i] == r) return static_cast<int>(i);
    EM_ASSERT(false);
    return -1;
  };
  auto model_of = [&](const ModelRef& r) -> const SourceModel& { return *plan.models[model_index(r)]; };
  if (config.chat_template == "auto") {
    std::vector<fs::path> dirs;
    for (const auto& m : plan.models) dirs.push_back(m->folder().dir);
    plan.chat_template = resolve_chat_template("auto", dirs, config.where, plan.warnings);
  }

  // Architectures must agree unless allow_crimes.
  const ModelConfig& first_cfg = plan.models.front()->config();
  for (const auto& m : plan.models)
    if (m->config().architecture != first_cfg.architecture && !options.allow_crimes)
      fail(kPlan, "{}: models of different architectures: {} is {} but {} is {} (use --allow-crimes to merge anyway)",
           config.where, plan.models.front()->reference(), first_cfg.architecture, m->reference(), m->config().architecture);

  // Normalise to slices.
  std::vector<NSlice> slices;
  if (!config.models.empty()) {
    NSlice s;
    s.key = "models";
    s.base = config.base_model;
    s.params = &kEmpty;
    bool base_listed = false;
    for (size_t i = 0; i < config.models.size(); ++i) {
      const auto& m = config.models[i];
      int n = static_cast<int>(model_of(m.model).config().num_hidden_layers);
      s.sources.push_back({m.model, 0, n, &m.parameters, m.line, fmt::format("models[{}]", i)});
      base_listed = base_listed || (config.base_model && m.model == *config.base_model);
    }
    if (config.base_model && !base_listed) {
      int n = static_cast<int>(model_of(*config.base_model).config().num_hidden_layers);
      s.sources.push_back({*config.base_model, 0, n, &kEmpty, 0, "base_model"});
    }
    slices.push_back(std::move(s));
  } else {
    for (size_t k = 0; k < config.slices.size(); ++k) {
      const auto& cs = config.slices[k];
      NSlice s;
      s.key = fmt::format("slices[{}]", k);
      s.base = cs.base_model ? cs.base_model : config.base_model;
      s.params = &cs.parameters;
      for (size_t j = 0; j < cs.sources.size(); ++j) {
        const auto& src = cs.sources[j];
        std::string key = fmt::format("slices[{}].sources[{}]", k, j);
        int n = static_cast<int>(model_of(src.model).config().num_hidden_layers);
        if (src.layer_end > n)
          fail(kPlan, "{}: {}.layer_range: [{}, {}] is outside {} which has {} layers", at(config, src.line), key,
               src.layer_start, src.layer_end, src.model.str(), n);
        s.sources.push_back({src.model, src.layer_start, src.layer_end, &src.parameters, src.line, key});
      }
      slices.push_back(std::move(s));
    }
  }
  for (const auto& s : slices) {
    const int len = s.sources[0].end - s.sources[0].start;
    for (const auto& src : s.sources)
      if (src.end - src.start != len)
        fail(kPlan, "{}: {}: all inputs to a slice must contain the same number of layers ({} has {}, {} has {})",
             at(config, src.line), s.key, s.sources[0].key, len, src.key, src.end - src.start);
    // Input counts and base placement per method.
    int base_pos = -1;
    for (size_t j = 0; j < s.sources.size(); ++j)
      if (s.base && s.sources[j].ref == *s.base) base_pos = static_cast<int>(j);
    const int others = static_cast<int>(s.sources.size()) - (base_pos >= 0 ? 1 : 0);
    const std::string& mname = spec->name;
    if (spec->base == BaseUse::Required && base_pos < 0)
      fail(kPlan, "{}: {}: merge_method {} needs base_model{}", config.where, s.key, mname,
           s.base ? fmt::format(" ({} is not among the sources)", s.base->str()) : std::string(" (none given)"));
    auto need = [&](bool ok, std::string_view what) {
      if (!ok) fail(kPlan, "{}: {}: merge_method {} needs {} (got {} model(s){})", config.where, s.key, mname, what,
                    s.sources.size(), base_pos >= 0 ? ", base included" : "");
    };
    if (mname == "slerp") need(s.sources.size() == 2, "exactly two models, one of them base_model");
    if (mname == "nuslerp") need(others == 2, "exactly two models besides the optional base_model");
    if (mname == "nearswap" || mname == "arcee_fusion") need(others == 1, "base_model and exactly one other model");
    if (mname == "model_stock") need(others >= 2, "base_model and at least two other models");
    if (mname == "passthrough") need(s.sources.size() == 1, "exactly one source per slice");
  }

  // Donor: the base model, else the first referenced model (mergekit picks an arbitrary one).
  plan.donor = config.base_model ? model_index(*config.base_model) : 0;
  const SourceModel& donor = *plan.models[plan.donor];
  plan.out_config_json = donor.folder().config;
  std::optional<DType> out_dtype = config.out_dtype ? config.out_dtype : config.dtype;
  if (out_dtype) plan.out_config_json["torch_dtype"] = std::string(dtype_torch_name(*out_dtype));
  int total_layers = 0;
  for (const auto& s : slices) total_layers += s.sources[0].end - s.sources[0].start;
  if (!config.slices.empty())
    plan.out_config_json[std::string(layer_count_key(donor.config()))] = total_layers;

  // Output tensor list from the output config (named as the donor's checkpoint names them).
  ModelConfig out_cfg = parse_model_config(plan.out_config_json, donor.folder().dir.string() + "/config.json");
  out_cfg.num_hidden_layers = total_layers;
  out_cfg.gpt2_prefix = donor.config().gpt2_prefix;
  const TensorNames out_names = tensor_names(out_cfg);
  auto is_embed_name = [&](std::string_view name) {
    return name == out_names.embed || name == out_names.head;
  };
  std::vector<TensorSpec> out_specs = expected_tensors(out_cfg, DType::F32);
  // lm_head: written when any model of the last slice has one (tied models then contribute their
  // embeddings); a tied donor config is then untied so the head is used (mergekit leaves it tied).
  bool any_head = false;
  for (const auto& src : slices.back().sources)
    any_head = any_head || model_of(src.ref).has(tensor_names(model_of(src.ref).config()).head);
  if (out_cfg.tie_word_embeddings && any_head) {
    out_specs.push_back({out_names.head, DType::F32, {out_cfg.vocab_size, out_cfg.hidden_size}});
    plan.out_config_json["tie_word_embeddings"] = false;
  }

  // Per-tensor planning.
  auto lookup = [](std::initializer_list<const ParamMap*> levels, std::string_view pname, std::string_view tname,
                   double t) -> std::optional<double> {
    for (const ParamMap* level : levels) {
      if (!level) continue;
      auto it = level->find(pname);
      if (it == level->end()) continue;
      if (auto v = it->second.evaluate(tname, t)) return v;
    }
    return std::nullopt;
  };

  const bool merge_vocab = !config.tokenizer_source.empty() || config.tokenizer.given;
  int layer_base = 0;
  std::vector<std::pair<int, int>> layer_slice;  // out layer -> (slice, offset)
  for (size_t k = 0; k < slices.size(); ++k) {
    int len = slices[k].sources[0].end - slices[k].sources[0].start;
    for (int o = 0; o < len; ++o) layer_slice.push_back({static_cast<int>(k), o});
    layer_base += len;
  }

  for (const auto& ts : out_specs) {
    auto loc = classify_tensor(ts.name);
    EM_ASSERT(loc.has_value());
    PlanTensor pt;
    pt.name = ts.name;
    const NSlice* slice;
    int offset = 0;
    double t = 0.0;  // pre- and post-layer weights use t = 0 (mergekit >= v0.1.2)
    if (loc->place == TensorPlace::Layer) {
      auto [k, o] = layer_slice[loc->layer];
      slice = &slices[k];
      offset = o;
      pt.out_layer = loc->layer;
      int len = slice->sources[0].end - slice->sources[0].start;
      t = len > 1 ? static_cast<double>(o) / (len - 1) : 1.0;
    } else {
      slice = loc->place == TensorPlace::PreLayer ? &slices.front() : &slices.back();
    }
    for (const auto& src : slice->sources) {
      const SourceModel& sm = model_of(src.ref);
      std::string in_name =
          loc->place == TensorPlace::Layer ? layer_tensor_name(*loc, src.start + offset) : ts.name;
      if (ts.name == out_names.head && !sm.has(in_name) && sm.config().tie_word_embeddings)
        in_name = tensor_names(sm.config()).embed;
      const TensorInfo* info = sm.info(in_name);
      if (!info)
        fail(kPlan, "{}: tensor '{}' is required for output '{}' but missing in model {}", at(config, src.line), in_name,
             ts.name, sm.reference());
      PlanInput in;
      in.model = model_index(src.ref);
      in.tensor = in_name;
      const bool is_base = slice->base && src.ref == *slice->base;
      if (is_base) pt.base = static_cast<int>(pt.inputs.size());
      // Per-model parameters: the source's own, then the slice's, then the top level (input name).
      for (const auto& p : spec->per_model) {
        auto v = lookup({src.params, slice->params, &config.parameters}, p.name, in_name, t);
        if (!v && p.default_value) v = p.default_value;
        if (!v) {
          if (is_base && !spec->base_is_input) continue;  // e.g. ties: the base has no weight
          fail(kPlan, "{}: {}: missing required parameter '{}' for model {} (tensor '{}')", at(config, src.line), src.key,
               p.name, src.ref.str(), in_name);
        }
        in.params[p.name] = *v;
      }
      pt.inputs.push_back(std::move(in));
    }
    if (spec->base == BaseUse::Ignored) pt.base = -1;
    for (const auto& p : spec->globals) {
      auto v = lookup({slice->params, &config.parameters}, p.name, ts.name, t);
      if (!v && p.default_value) v = p.default_value;
      if (!v) fail(kPlan, "{}: missing required parameter '{}' for tensor '{}' (set it under parameters:)", config.where, p.name, ts.name);
      pt.globals[p.name] = *v;
    }

    // Shapes: equal, except vocab rows of embeddings (common submatrix; GTA methods use the base's;
    // with a merged vocabulary, plan_merged_vocab sets them).
    const PlanInput& ref_in = pt.inputs[pt.base >= 0 ? pt.base : 0];
    const TensorInfo* ref_info = plan.models[ref_in.model]->info(ref_in.tensor);
    Shape shape = ref_info->shape;
    const bool gta_like = spec->base == BaseUse::Required && spec->name != "slerp" && spec->name != "model_stock" &&
                          spec->name != "arcee_fusion";
    for (const auto& in : pt.inputs) {
      const Shape& s = plan.models[in.model]->info(in.tensor)->shape;
      if (s == shape) continue;
      bool rectify = is_embed_name(ts.name) && s.size() == 2 && shape.size() == 2 && s[1] == shape[1];
      if (rectify && merge_vocab) continue;
      if (rectify && !gta_like) shape[0] = std::min(shape[0], s[0]);
      else if (!(rectify && s[0] >= shape[0]))
        fail(kPlan, "{}: tensor '{}' has shape {} in {} but {} in {}", config.where, ts.name, shape_string(s),
             plan.models[in.model]->reference(), shape_string(ref_info->shape), plan.models[ref_in.model]->reference());
    }
    pt.shape = shape;
    pt.dtype = out_dtype ? *out_dtype : ref_info->dtype;

    // Checks that would otherwise fail mid-merge.
    if (spec->name == "linear" && pt.globals["normalize"] != 0) {
      double wsum = 0;
      for (const auto& in : pt.inputs) wsum += in.params.at("weight");
      if (wsum == 0)
        fail(kPlan, "{}: linear: the weights of tensor '{}' sum to zero (normalize: true divides by the sum)", config.where, ts.name);
    }
    if (spec->name == "della" || spec->name == "della_linear")
      for (const auto& in : pt.inputs) {
        if (!in.params.count("density")) continue;
        double d = in.params.at("density"), e = in.params.at("epsilon");
        if (d < 1 && d > 0 && (d + e >= 1 || d - e <= 0))
          fail(kPlan, "{}: {}: tensor '{}' of {}: density {} and epsilon {} need 0 < density - epsilon and density + epsilon < 1",
               config.where, spec->name, in.tensor, plan.models[in.model]->reference(), d, e);
      }
    plan.tensors.push_back(std::move(pt));
  }
  if (merge_vocab) plan_merged_vocab(plan);
  // Embedding rows may have shrunk to a common vocabulary: say so in the config (mergekit does not).
  if (const PlanTensor* e = plan.find(out_names.embed); e && e->shape[0] != out_cfg.vocab_size)
    plan.out_config_json["vocab_size"] = e->shape[0];
  plan.out_config = parse_model_config(plan.out_config_json, "merged config.json");
  plan.out_config.gpt2_prefix = out_cfg.gpt2_prefix;
  if (options.strict && !plan.warnings.empty())
    fail(kPlan, "{} (an error under --strict; {} warning(s) in all)", plan.warnings.front(),
         plan.warnings.size());
  return plan;
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
    for (const auto& in : t.inputs) b += static_cast<uint64_t>(shape_numel(t.shape)) * dtype_size(models[in.model]->info(in.tensor)->dtype);
  return b;
}

std::string MergePlan::describe() const {
  std::string out = fmt::format("merge_method: {}\nmodels:\n", method);
  for (size_t i = 0; i < models.size(); ++i)
    out += fmt::format("  [{}] {}{}\n", i, models[i]->reference(), static_cast<int>(i) == donor ? "  (donor: config, tokenizer)" : "");
  out += fmt::format("output: {} layers, {} tensors, {}\n", out_config.num_hidden_layers, tensors.size(), format_bytes(static_cast<double>(output_bytes())));
  for (const auto& t : tensors) {
    std::string globals;
    for (const auto& [k, v] : t.globals) globals += fmt::format(" {}={:g}", k, v);
    out += fmt::format("{} {} {}{}\n", t.name, dtype_name(t.dtype), shape_string(t.shape), globals);
    for (size_t i = 0; i < t.inputs.size(); ++i) {
      const auto& in = t.inputs[i];
      std::string params;
      for (const auto& [k, v] : in.params) params += fmt::format(" {}={:g}", k, v);
      out += fmt::format("    <- [{}] {}{}{}\n", in.model, in.tensor, static_cast<int>(i) == t.base ? " (base)" : "", params);
    }
  }
  return out;
}

std::vector<size_t> plan_tensors_in_layers(const MergePlan& plan, std::span<const int> layers) {
  std::vector<size_t> out;
  for (size_t i = 0; i < plan.tensors.size(); ++i)
    if (std::find(layers.begin(), layers.end(), plan.tensors[i].out_layer) != layers.end()) out.push_back(i);
  return out;
}

// ---------------------------------------------------------------------------------------------
// MergedBuffers

MergedBuffers::MergedBuffers(DType dtype) : dtype_(dtype) { EM_ASSERT(dtype_is_compute(dtype)); }

bool MergedBuffers::prepare(const MergePlan& plan) {
  bool same = tensors_.size() == plan.tensors.size();
  if (same)
    for (const auto& t : plan.tensors) {
      auto it = tensors_.find(t.name);
      if (it == tensors_.end() || it->second.shape != t.shape) {
        same = false;
        break;
      }
    }
  config_ = plan.out_config;
  config_json_ = plan.out_config_json;
  config_json_["torch_dtype"] = std::string(dtype_torch_name(dtype_));
  config_.torch_dtype = dtype_;
  if (same) return false;
  tensors_.clear();
  for (const auto& t : plan.tensors) tensors_.emplace(t.name, Tensor(dtype_, t.shape));
  return true;
}

std::map<std::string, TensorView> MergedBuffers::views() const {
  std::map<std::string, TensorView> out;
  for (const auto& [name, t] : tensors_) out.emplace(name, t.view());
  return out;
}

TensorView MergedBuffers::view(std::string_view name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) fail("merge", "merged buffers: no tensor '{}'", name);
  return it->second.view();
}

std::span<std::byte> MergedBuffers::mutable_bytes(std::string_view name) {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) fail("merge", "merged buffers: no tensor '{}' (prepare() them for this plan)", name);
  return {it->second.storage.data(), it->second.storage.size()};
}

// ---------------------------------------------------------------------------------------------
// Merger

Merger::Merger(MergeOptions options) : options_(options), impl_(std::make_unique<Impl>(options.threads)) {}
Merger::~Merger() = default;

void Merger::merge_tensor_f32(const MergePlan& plan, size_t index, float* dst) {
  EM_ASSERT(index < plan.tensors.size());
  impl_->merge(plan, plan.tensors[index], dst);
}

void Merger::merge_into(const MergePlan& plan, MergedBuffers& out, std::span<const size_t> which) {
  std::vector<size_t> all;
  if (which.empty()) {
    all.resize(plan.tensors.size());
    for (size_t i = 0; i < all.size(); ++i) all[i] = i;
    which = all;
  }
  for (size_t i : which) {
    EM_ASSERT(i < plan.tensors.size());
    const PlanTensor& t = plan.tensors[i];
    std::span<std::byte> bytes = out.mutable_bytes(t.name);
    EM_ASSERT(bytes.size() == static_cast<size_t>(shape_numel(t.shape)) * dtype_size(out.dtype()));
    impl_->merge_out(plan, t, out.dtype(), bytes.data());
  }
}

MergeStats merge_to_folder(const MergeConfig& config, const fs::path& out_dir, const MergeOptions& options,
                           const FolderOptions& folder_options) {
  ModelCache cache;
  MergePlan plan = build_plan(config, cache, options);
  Merger merger(options);
  return merger.write_folder(plan, out_dir, folder_options);
}

}  // namespace evomerge
