// The merge engine: source models (memory-mapped once, shared), a validated plan (output tensor ->
// inputs, method, evaluated parameters), and two ways to execute it with the same kernels:
//  - in memory, into caller-owned buffers that the inference engine reads through TensorViews
//    (the evolution engine merges every candidate this way, re-merging only what changed);
//  - streamed to a Hugging Face folder, one tensor at a time on all cores, through ShardedWriter
//    inside a StagedDir (nothing is left behind on error).
//
// Typical in-memory use (one cache and one Merger for a whole search):
//   ModelCache cache;  Merger merger({.threads = 0});  MergedBuffers out(DType::F32);
//   for each candidate:
//     MergePlan plan = build_plan(candidate_config, cache);   // cheap: names, shapes, parameters
//     out.prepare(plan);                                       // allocates only the first time
//     merger.merge_into(plan, out);                           // or only plan_tensors_in_layers(...)
//     auto weights = make_memory_weights(out.config(), out.views());   // infer/engine.h
//
// Numerics: inputs are converted to f32, every method computes in f32 (f64 for reductions), and the
// result is rounded once to the output dtype. Random sparsifiers (DARE, DELLA) draw from a
// counter-based generator keyed by (random_seed, output tensor name, input index, element index), so
// results do not depend on thread count or tensor order. See docs/mergekit-compat.md for how each
// mergekit quirk is handled.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "arch/config.h"
#include "io/model_folder.h"
#include "merge/config.h"
#include "tensor/tensor.h"

namespace evomerge {

struct MergeOptions {
  bool allow_crimes = false;  // allow inputs of different architectures
  uint64_t random_seed = 0;   // DARE / DELLA / arcee_fusion sampling
  int threads = 0;            // 0: all cores
  bool progress = true;       // progress bar for folder writes
  bool strict =
      false;  // --strict: a config warning (a key or parameter with no effect) is an error
};

// A model folder, memory-mapped, plus an optional PEFT LoRA adapter applied on the fly
// (W + (lora_alpha / r) * B A, with B [out, r] and A [r, in]).
class SourceModel {
 public:
  static std::shared_ptr<SourceModel> open(const ModelRef& ref);
  ~SourceModel();

  const ModelRef& ref() const { return ref_; }
  std::string reference() const { return ref_.str(); }
  const ModelFolder& folder() const { return *folder_; }
  const ModelConfig& config() const { return config_; }
  bool has(std::string_view name) const;
  // Stored dtype and shape of a tensor (LoRA keeps the shape); nullptr when absent.
  const TensorInfo* info(std::string_view name) const;
  // Reads tensor `name` (a compute dtype) into dst[numel] as f32, with the LoRA delta added.
  void read_f32(std::string_view name, float* dst) const;
  // The stored bytes (no LoRA) and, separately, the LoRA delta added onto dst[numel] (a no-op when
  // the tensor has no adapter): the executor converts in parallel chunks, then adds the delta.
  TensorView stored(std::string_view name) const;
  void add_lora_delta(std::string_view name, float* dst) const;
  bool has_lora() const { return !lora_.empty(); }
  size_t lora_tensor_count() const { return lora_.size(); }

 private:
  struct LoraPair;
  SourceModel() = default;
  ModelRef ref_;
  std::unique_ptr<ModelFolder> folder_;
  ModelConfig config_;
  std::map<std::string, LoraPair, std::less<>> lora_;  // keyed by the base tensor name
  std::vector<SafetensorsFile> lora_files_;
};

// Source models by reference string, opened once and shared by every plan built from this cache.
// Thread-safe.
class ModelCache {
 public:
  std::shared_ptr<const SourceModel> get(const ModelRef& ref);
  size_t size() const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<const SourceModel>> models_;
};

// Evaluated parameters of one tensor: name -> value (booleans are 0/1).
using ParamSet = std::map<std::string, double, std::less<>>;

struct PlanInput {
  int model = 0;       // index into MergePlan::models
  std::string tensor;  // tensor name in that model (differs from the output name in frankenmerges)
  ParamSet params;     // evaluated per-model parameters (weight, density, scale, ...), defaults filled
  // When set, the input's f32 values, read instead of `tensor`: embedding rows permuted into a
  // merged vocabulary (merge/tokenizer_merge.h), [rows, hidden].
  std::shared_ptr<const std::vector<float>> rows;
};

struct PlanTensor {
  std::string name;        // output tensor name (HF)
  Shape shape;
  DType dtype = DType::BF16;  // output dtype
  std::vector<PlanInput> inputs;
  int base = -1;           // index into inputs of the base model's tensor, -1 if none
  ParamSet globals;        // evaluated global parameters, defaults filled
  int out_layer = -1;      // output layer index, -1 for embeddings / final norm / head
  uint64_t nbytes() const { return static_cast<uint64_t>(shape_numel(shape)) * dtype_size(dtype); }
};

struct MergedVocab;

struct MergePlan {
  std::string method;
  MergeConfig config;                                         // the config it was built from
  std::vector<std::shared_ptr<const SourceModel>> models;     // distinct inputs
  int donor = 0;                      // model whose config.json / tokenizer / aux files are used
  nlohmann::json out_config_json;     // donor config.json, torch_dtype and num_hidden_layers rewritten
  ModelConfig out_config;             // parsed from out_config_json
  std::vector<PlanTensor> tensors;    // canonical order: embeddings, layer by layer, norm, head
  uint64_t random_seed = 0;
  // What mergekit accepts and ignores (unknown keys, parameters the method does not read), one line
  // each, "file:line: key: ... has no effect ..."; the CLI prints them. Empty under strict (they
  // fail).
  std::vector<std::string> warnings;
  // The resolved chat_template (merge/chat_templates.h) written into tokenizer_config.json; ""
  // keeps the tokenizer source's own.
  std::string chat_template;
  // The merged vocabulary when the config sets tokenizer_source or tokenizer (else null: the
  // donor's tokenizer files are copied as they are).
  std::shared_ptr<const MergedVocab> vocab;

  const PlanTensor* find(std::string_view name) const;
  uint64_t output_bytes() const;
  uint64_t input_bytes() const;  // bytes read from sources to execute the whole plan
  // Human-readable plan (the CLI's --dry-run): models, method, one line per tensor with its inputs
  // and evaluated parameters.
  std::string describe() const;
};

// Resolves and validates everything a merge needs before any heavy work: models exist and are
// supported, architectures match (unless allow_crimes), slices have equal lengths and valid layer
// ranges, the method and its parameters are known, required parameters are present, weights do not
// sum to zero where the method divides by them, input tensors exist with matching shapes, LoRAs fit.
// Errors name the config line/key or the model and tensor.
MergePlan build_plan(const MergeConfig& config, ModelCache& cache, const MergeOptions& options = {});

// Indices of the plan tensors whose output layer is in `layers` (pre/post tensors: layer -1).
std::vector<size_t> plan_tensors_in_layers(const MergePlan& plan, std::span<const int> layers);

// Caller-owned output buffers, one per plan tensor, in one dtype (F32: no rounding before the
// engine; BF16/F16: half the memory, rounded once). Reused across plans with the same tensor names and
// shapes (the usual case for evolution candidates): prepare() reallocates only when they change, so
// views stay valid and point at the same bytes from one candidate to the next.
class MergedBuffers {
 public:
  explicit MergedBuffers(DType dtype = DType::F32);
  // Sizes the buffers for `plan` and records its output config. Returns true if it (re)allocated.
  bool prepare(const MergePlan& plan);
  DType dtype() const { return dtype_; }
  std::map<std::string, TensorView> views() const;
  TensorView view(std::string_view name) const;  // throws Error if absent
  const ModelConfig& config() const { return config_; }
  const nlohmann::json& config_json() const { return config_json_; }
  // Writable bytes of one buffer (used by Merger).
  std::span<std::byte> mutable_bytes(std::string_view name);

 private:
  DType dtype_;
  std::map<std::string, Tensor, std::less<>> tensors_;
  ModelConfig config_;
  nlohmann::json config_json_;
};

struct FolderOptions {
  uint64_t max_shard_bytes = 5'000'000'000;  // mergekit's --out-shard-size default (5B bytes)
  bool copy_tokenizer = true;                // copy the donor's tokenizer and tag-along files
  bool write_model_card = true;              // README.md
  bool replace_existing = false;             // --force
};

struct MergeStats {
  uint64_t tensors = 0;
  uint64_t bytes_read = 0;     // input tensor bytes
  uint64_t bytes_written = 0;  // output tensor bytes
  double seconds = 0.0;
};

// Runs plans. Owns a thread pool and per-thread f32 scratch that is kept between calls, so merging
// many candidates allocates nothing after the first. One thread uses a Merger at a time (it
// parallelises internally); use one Merger per concurrent caller.
class Merger {
 public:
  explicit Merger(MergeOptions options = {});
  ~Merger();
  Merger(const Merger&) = delete;
  Merger& operator=(const Merger&) = delete;

  // Merges plan.tensors[i] for every i in `which` (every tensor when empty) into `out`, which must
  // have been prepare()d for a plan with the same tensors.
  void merge_into(const MergePlan& plan, MergedBuffers& out, std::span<const size_t> which = {});
  // One tensor as f32 values (tests, tools). dst has numel(plan.tensors[index].shape) elements.
  void merge_tensor_f32(const MergePlan& plan, size_t index, float* dst);
  // Streams the whole merge into a complete HF folder at `out_dir` (shards + index, config.json,
  // tokenizer and tag-along files, mergekit_config.yml, README.md).
  MergeStats write_folder(const MergePlan& plan, const std::filesystem::path& out_dir, const FolderOptions& options = {});

  const MergeOptions& options() const { return options_; }

 private:
  struct Impl;
  MergeOptions options_;
  std::unique_ptr<Impl> impl_;
};

// Convenience for one-shot merges: load, plan, stream to disk.
MergeStats merge_to_folder(const MergeConfig& config, const std::filesystem::path& out_dir,
                           const MergeOptions& options = {}, const FolderOptions& folder_options = {});

}  // namespace evomerge
