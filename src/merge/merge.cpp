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
      fail(kLora,
           "{}: tensor '{}' is not a lora_A/lora_B weight (embedding LoRAs, biases and "
           "modules_to_save are not supported)",
           st.string(), t.name);
    std::string module = name.substr(0, name.size() - 14);
    (is_a ? pairs[module].first : pairs[module].second) = &t;
  }
  for (const auto& [module, ab] : pairs) {
    const std::string base_name = module + ".weight";
    if (!ab.first || !ab.second)
      fail(kLora, "{}: module '{}' has only one of lora_A / lora_B", st.string(), module);
    const TensorInfo* w = m->folder_->weights.find(base_name);
    if (!w)
      fail(kLora, "{}: LoRA module '{}' does not fit {}: it has no tensor '{}'", st.string(),
           module, ref.path, base_name);
    const Shape& sa = ab.first->shape;
    const Shape& sb = ab.second->shape;
    if (w->shape.size() != 2 || sa.size() != 2 || sb.size() != 2 || sa[1] != w->shape[1] ||
        sb[0] != w->shape[0] || sa[0] != sb[1])
      fail(kLora,
           "{}: LoRA module '{}' does not fit {}: A {} and B {} cannot update '{}' {} (need A [r, "
           "{}], B [{}, r])",
           st.string(), module, ref.path, shape_string(sa), shape_string(sb), base_name,
           shape_string(w->shape), w->shape.size() == 2 ? w->shape[1] : -1,
           w->shape.empty() ? -1 : w->shape[0]);
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

bool SourceModel::has(std::string_view name) const {
  return folder_->weights.contains(name);
}
const TensorInfo* SourceModel::info(std::string_view name) const {
  return folder_->weights.find(name);
}
TensorView SourceModel::stored(std::string_view name) const {
  return folder_->weights.view(name);
}

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
// MergedBuffers

MergedBuffers::MergedBuffers(DType dtype) : dtype_(dtype) {
  EM_ASSERT(dtype_is_compute(dtype));
}

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
  if (it == tensors_.end())
    fail("merge", "merged buffers: no tensor '{}' (prepare() them for this plan)", name);
  return {it->second.storage.data(), it->second.storage.size()};
}

// ---------------------------------------------------------------------------------------------
// Merger

Merger::Merger(MergeOptions options)
    : options_(options), impl_(std::make_unique<Impl>(options.threads)) {}
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

MergeStats merge_to_folder(const MergeConfig& config, const fs::path& out_dir,
                           const MergeOptions& options, const FolderOptions& folder_options) {
  ModelCache cache;
  MergePlan plan = build_plan(config, cache, options);
  Merger merger(options);
  return merger.write_folder(plan, out_dir, folder_options);
}

}  // namespace evomerge
