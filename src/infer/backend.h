// Internal to the inference stage: the seam between the engine's scheduling layer (engine.cpp:
// requests -> rows -> micro-batches, shared contexts, the decode loop; knows no hardware) and a
// compute backend (cpu/, cuda/: where the weights, the activations and the KV caches live and how
// one layer's forward runs). Modelled on ggml's backend split: the scheduler only ever talks to
// this interface, and every backend is held to the CPU backend by tests.
//
// One micro-batch runs as
//   embed(rows);  for each hop h: forward_layer(h, rows);  then one head call (logits / argmax /
//   log_probs) over the rows whose logits are wanted,
// with rows.size() <= BackendOptions::max_batch_tokens. A backend keeps the residual stream of the
// current micro-batch between these calls. One call at a time (like the Engine).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "arch/config.h"
#include "infer/precision.h"
#include "tensor/tensor.h"

namespace evomerge::infer_detail {

// Where an engine runs: "cpu", "cuda" (device 0) or "cuda:N".
struct Device {
  enum class Kind { Cpu, Cuda } kind = Kind::Cpu;
  int ordinal = 0;
  std::string name() const;  // "cpu", "cuda:0"
};
// Parses EngineOptions::device; throws Error naming the value when it is none of the above.
Device parse_device(std::string_view text);
// Whether this build has the CUDA backend (CMake found the toolkit), and how many CUDA devices
// this machine has for it (0 when not built, without a driver or without a GPU).
bool cuda_built();
int cuda_devices();

struct BackendOptions {
  Device device;
  int threads = 0;                 // cpu: worker threads (0: all cores)
  int max_context = 0;             // longest sequence (positions) any KV cache slot will hold
  int max_batch_tokens = 0;        // rows per micro-batch, at most
  bool cache_f32_weights = false;  // cpu: keep f32 copies of bf16/f16 matrices
  Precision precision = Precision::Exact;  // cpu: of every weight product (infer/precision.h)
  int64_t max_packed_bytes = -1;           // cpu: EngineOptions::max_packed_bytes
};

// The host views of one decoder layer's tensors, resolved and checked against the config by the
// engine (model_views.h). Absent optional tensors (biases, q/k norms) have data == nullptr.
// Shapes (nn.Linear [out, in]): q [nh*hd, H], k/v [nkv*hd, H], o [H, nh*hd], gate/up [I, H],
// down [H, I]; norms [H] (q_norm/k_norm [hd]); biases [out].
// Phi-3's fused qkv_proj / gate_up_proj arrive as row ranges of the fused tensor (no copy).
// Gemma 2/3 (config->sandwich_norms): post_attn_norm normalises the attention output and
// post_mlp_norm the MLP output before their residual adds; mlp_norm is pre_feedforward_layernorm.
// Norm weights are as stored (config->norm_plus_one: the backend multiplies by 1 + w).
struct LayerViews {
  const ModelConfig* config = nullptr;  // the layer's model; outlives the backend
  int index = 0;                        // the layer's index in its model (sliding or global, rope)
  TensorView attn_norm, mlp_norm, q_norm, k_norm, post_attn_norm, post_mlp_norm;
  TensorView q, k, v, o, gate, up, down;
  TensorView bq, bk, bv, bo, bg, bu, bd;
  bool file_mapped = false;  // WeightSource::file_mapped of the layer's model
};

// Model 0's embedding [V, H], final norm [H] and head [V, H] (the embedding when tied).
struct HeadViews {
  const ModelConfig* config = nullptr;
  TensorView embed, final_norm, head;
};

// One hop of the layer path: the layer (a handle from Backend::add_layer) and the scale applied to
// the residual stream before it (LayerHop::input_scale).
struct HopSpec {
  int layer = 0;
  float scale = 1.0f;
};

// A row of a micro-batch: token `token` at absolute position `pos` of KV cache slot `seq`.
struct Row {
  int seq = 0;
  int pos = 0;
  int32_t token = 0;
  bool logits = false;
};

// A continuation token to score on selected row `sel` (an index into the head call's `selected`).
struct Target {
  int64_t sel = 0;
  int32_t token = 0;
};
// log p(token) under the log-softmax over the first `vocab` logits, and whether token is their
// first argmax.
struct TokenLogProb {
  double logprob = 0.0;
  bool greedy = false;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;

  // Weights. The views stay valid for the backend's life; their bytes may change, after which the
  // engine calls refresh_weights() (a new candidate merged into the same buffers).
  virtual void set_head(const HeadViews& views) = 0;
  // Uploads / wraps one layer; returns its handle for HopSpec::layer. A layer is added once and
  // may appear in several hops.
  virtual int add_layer(const LayerViews& views) = 0;
  virtual void refresh_weights() = 0;
  // Bytes of kernel-layout copies of weights that are held in memory (not mapped from a file).
  virtual uint64_t packed_memory_weight_bytes() const { return 0; }
  // The hops, in order. Every KV cache's content is meaningless afterwards.
  virtual void set_path(std::span<const HopSpec> hops) = 0;

  // KV cache slot `slot` will hold positions [base, cap); positions [0, base) are read from slot
  // `parent` (-1: none, base is then 0). A parent has no parent itself. Existing storage is
  // reused.
  virtual void reset_seq(int slot, int parent, int base, int cap) = 0;

  // One micro-batch (rows of a sequence in increasing position, every row's pos < its slot's cap).
  virtual void embed(std::span<const Row> rows) = 0;
  // Hop `hop` of the path over the micro-batch: writes each row's K/V into its slot, attends over
  // the slot's positions [0, pos] (parent's below base), updates the residual stream.
  virtual void forward_layer(size_t hop, std::span<const Row> rows) = 0;

  // The final norm and head over rows `selected` (indices into the last micro-batch's rows, in
  // increasing order), then one of:
  //  - consumer(i, logits[V]) for every i < selected.size(), in order (the view is valid during
  //    the call only);
  using LogitsFn = std::function<void(size_t, const float*)>;
  virtual void logits(std::span<const int64_t> selected, const LogitsFn& consumer) = 0;
  //  - out[i] = the first argmax of selected row i's logits [0, vocab);
  virtual void argmax(std::span<const int64_t> selected, int64_t vocab, int32_t* out) = 0;
  //  - out[t] = targets[t]'s log-probability and greedy flag over logits [0, vocab).
  virtual void log_probs(std::span<const int64_t> selected, int64_t vocab,
                         std::span<const Target> targets, TokenLogProb* out) = 0;
};

// The backend of options.device. Throws Error when the device is not available in this build or
// on this machine.
std::unique_ptr<Backend> make_backend(const BackendOptions& options);

}  // namespace evomerge::infer_detail
