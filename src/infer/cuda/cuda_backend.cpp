// The CUDA backend. Weights live on the device in bf16 (converted on upload when stored as f32 or
// f16), small vectors in f32; GEMMs are cuBLASLt bf16 x bf16 with f32 accumulation and f32 output
// (gemm.h); the residual stream, Q/K/V and the KV caches are f32; the activations fed to a GEMM
// are rounded to bf16 (the only rounding the CPU backend does not do: hence a tolerance, stated in
// the tests). One stream; the host waits only when it reads results (the head's outputs).
//
// A layer is uploaded once however many hops use it (DFS paths run over the uploaded layers, no
// copies). Each KV cache slot is its own device buffer, grown and reused; the slot table (pointer,
// base, parent) is uploaded when it changed.
#include "infer/cuda/cuda_backend.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "common/error.h"
#include "infer/cuda/device.h"
#include "infer/cuda/gemm.h"
#include "infer/cuda/kernels.h"
#include "infer/rope.h"
#include "tensor/convert.h"

namespace evomerge::infer_detail {
namespace {

using cuda::bf16_t;
using cuda::check;
using cuda::DeviceBuffer;

// Copies host data to a device buffer (synchronously: uploads happen between batches).
template <class T>
void upload(DeviceBuffer<T>& dst, const T* src, size_t count) {
  dst.reserve(count);
  check(cudaMemcpy(dst.get(), src, count * sizeof(T), cudaMemcpyHostToDevice), "upload");
}

// A weight matrix or embedding table as bf16 on the device. F32 (and F16, widened on the host)
// slices go through a device staging buffer and are rounded there (f32_to_bf16, the host's
// rounding rule), so a candidate's f32 buffers need no host-side bf16 copy.
void upload_bf16(DeviceBuffer<bf16_t>& dst, const TensorView& v, DeviceBuffer<float>& staging) {
  const size_t n = static_cast<size_t>(v.numel());
  dst.reserve(n);
  if (v.dtype == DType::BF16) {
    check(cudaMemcpy(dst.get(), v.data, n * 2, cudaMemcpyHostToDevice), "upload bf16");
    return;
  }
  constexpr size_t kSlice = 1 << 24;  // 64 MiB of f32
  staging.reserve(std::min(n, kSlice));
  std::vector<float> widened;
  for (size_t i = 0; i < n; i += kSlice) {
    const size_t m = std::min(kSlice, n - i);
    const float* src = reinterpret_cast<const float*>(v.data) + i;
    if (v.dtype != DType::F32) {
      widened.resize(m);
      convert_to_f32(v.dtype, v.data + i * dtype_size(v.dtype), widened.data(), m);
      src = widened.data();
    }
    check(cudaMemcpy(staging.get(), src, m * sizeof(float), cudaMemcpyHostToDevice), "upload f32");
    cuda::f32_to_bf16(staging.get(), static_cast<int64_t>(m), dst.get() + i, nullptr);
    check(cudaDeviceSynchronize(), "f32 -> bf16 on the device");  // staging is reused next
  }
}

// A vector as f32 on the device; an absent view leaves the buffer empty (pointer null).
void upload_f32(DeviceBuffer<float>& dst, const TensorView& v) {
  if (!v.data) return;
  const std::vector<float> f = to_f32(v);
  upload(dst, f.data(), f.size());
}

const float* ptr_or_null(const DeviceBuffer<float>& b) {
  return b.size() ? b.get() : nullptr;
}

struct DeviceLayer {
  LayerViews views;
  DeviceBuffer<bf16_t> q, k, v, o, gate, up, down;
  DeviceBuffer<float> attn_norm, mlp_norm, q_norm, k_norm, bq, bk, bv, bo, bg, bu, bd, inv_freq;

  void upload_all(DeviceBuffer<float>& staging) {
    const LayerViews& w = views;
    for (auto [dst, src] : {std::pair{&q, &w.q},
                            {&k, &w.k},
                            {&v, &w.v},
                            {&o, &w.o},
                            {&gate, &w.gate},
                            {&up, &w.up},
                            {&down, &w.down}})
      upload_bf16(*dst, *src, staging);
    upload_f32(attn_norm, w.attn_norm), upload_f32(mlp_norm, w.mlp_norm);
    upload_f32(q_norm, w.q_norm), upload_f32(k_norm, w.k_norm);
    upload_f32(bq, w.bq), upload_f32(bk, w.bk), upload_f32(bv, w.bv), upload_f32(bo, w.bo);
    upload_f32(bg, w.bg), upload_f32(bu, w.bu), upload_f32(bd, w.bd);
  }
};

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(const BackendOptions& o) : options_(o), device_(o.device) {
    const int count = cuda_device_count();
    if (device_.ordinal >= count)
      fail("cuda", "device '{}': {} CUDA device(s) usable on this machine", device_.name(), count);
    check(cudaSetDevice(device_.ordinal), "cudaSetDevice");
    // A blocking stream: the synchronous uploads (legacy default stream) stay ordered before it.
    check(cudaStreamCreate(&stream_), "cudaStreamCreate");
    gemm_ = std::make_unique<cuda::Gemm>(stream_);
  }
  ~CudaBackend() override {
    gemm_.reset();
    if (stream_) cudaStreamDestroy(stream_);
  }

  std::string name() const override { return device_.name(); }

  // What the kernels implement, checked once per config for the head and every layer: the
  // Llama-family layer only (Phi-3, Granite and Gemma need their multipliers, norms and
  // soft-capping; the CPU backend has them), head_dim <= 256 and at most 32 query heads per kv
  // head (the attention kernel's shared-memory tiles). The shapes themselves are checked once,
  // for every backend, by model_views.cpp.
  static void check_supported(const ModelConfig& c) {
    if (c.rope_scaling.type == "longrope")
      fail("cuda",
           "{}: rope type 'longrope' is not supported on cuda yet (run it with --device cpu)",
           c.architecture);
    switch (c.family) {
      case ArchFamily::Llama:
      case ArchFamily::Mistral:
      case ArchFamily::Qwen2:
      case ArchFamily::Qwen3:
        break;
      default:
        fail("cuda", "architecture {} is not supported on cuda yet (run it with --device cpu)",
             c.architecture);
    }
    if (c.head_dim > 256 || c.num_attention_heads / c.num_key_value_heads > 32)
      fail("cuda", "{}: head_dim {} > 256 or more than 32 query heads per kv head: not supported",
           c.architecture, c.head_dim);
  }

  void set_head(const HeadViews& v) override {
    check_supported(*v.config);
    head_views_ = v;
  }

  int add_layer(const LayerViews& v) override {
    const ModelConfig& c = *v.config;
    check_supported(c);
    use_device();
    auto L = std::make_unique<DeviceLayer>();
    L->views = v;
    L->upload_all(staging_);
    const std::vector<float> inv = rope_inv_freq(c);  // every rope type the CPU supports
    upload(L->inv_freq, inv.data(), inv.size());
    // A pageable cudaMemcpy may return before its DMA lands: wait before any kernel reads it.
    check(cudaDeviceSynchronize(), "layer upload");
    layers_.push_back(std::move(L));
    return static_cast<int>(layers_.size()) - 1;
  }

  void refresh_weights() override {
    use_device();
    upload_bf16(embed_, head_views_.embed, staging_);
    upload_f32(final_norm_, head_views_.final_norm);
    tied_ = head_views_.head.data == head_views_.embed.data;
    if (!tied_) upload_bf16(head_, head_views_.head, staging_);
    for (auto& L : layers_) L->upload_all(staging_);
    check(cudaDeviceSynchronize(), "weight upload");
  }

  void set_path(std::span<const HopSpec> path) override;
  void reset_seq(int slot, int parent, int base, int cap) override;
  void embed(std::span<const Row> rows) override;
  void forward_layer(size_t hop, std::span<const Row> rows) override;
  void logits(std::span<const int64_t> selected, const LogitsFn& consumer) override;
  void argmax(std::span<const int64_t> selected, int64_t vocab, int32_t* out) override;
  void log_probs(std::span<const int64_t> selected, int64_t vocab, std::span<const Target> targets,
                 TokenLogProb* out) override;

 private:
  struct Hop {
    const DeviceLayer* w = nullptr;
    float scale = 1.0f;
    int nh = 0, nkv = 0, hd = 0, inter = 0;
    int64_t kv_offset = 0;
  };
  static constexpr int64_t kHeadRows = 256;  // selected rows per head GEMM

  // Engines on different devices may share a host thread: each entry point selects its own.
  void use_device() { check(cudaSetDevice(device_.ordinal), "cudaSetDevice"); }
  void sync() { check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize"); }
  // Final norm and head of selected rows [s0, s0 + m): logits_ [m x V] on the device.
  void head_chunk(std::span<const int64_t> selected, size_t s0, int64_t m);
  template <class T>
  void upload_async(DeviceBuffer<T>& dst, const std::vector<T>& src) {
    dst.reserve(src.size());
    check(cudaMemcpyAsync(dst.get(), src.data(), src.size() * sizeof(T), cudaMemcpyHostToDevice,
                          stream_),
          "upload");
    sync();  // the host vector may change before the copy ran otherwise
  }

  BackendOptions options_;
  Device device_;
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<cuda::Gemm> gemm_;
  HeadViews head_views_;
  DeviceBuffer<bf16_t> embed_, head_;
  DeviceBuffer<float> final_norm_;
  DeviceBuffer<float> staging_;  // f32 slices on their way to bf16 (upload_bf16)
  bool tied_ = false;
  std::vector<std::unique_ptr<DeviceLayer>> layers_;
  std::vector<Hop> hops_;
  int64_t kvfp_ = 0;  // floats per position of a slot: every hop's K and V

  std::vector<DeviceBuffer<float>> slot_kv_;
  std::vector<cuda::SlotDesc> slots_;
  bool slots_dirty_ = true;
  DeviceBuffer<cuda::SlotDesc> d_slots_;

  int64_t n_ = 0;  // rows of the current micro-batch
  std::vector<int32_t> h_tokens_;
  std::vector<cuda::RowDesc> h_rows_;
  DeviceBuffer<int32_t> d_tokens_;
  DeviceBuffer<cuda::RowDesc> d_rows_;
  // Activations: x [n x H] f32 residual; xn [n x max(H, qd)] bf16 GEMM input; q [n x qd], k/v
  // [n x kvd], t [n x H], g/u [n x I] f32; att [n x qd] and gu [n x I] bf16.
  DeviceBuffer<float> x_, q_, k_, v_, t_, g_, u_;
  DeviceBuffer<bf16_t> xn_, att_, gu_;
  // Head: fx [kHeadRows x H] bf16, logits [kHeadRows x V] f32, per-row stats, targets.
  DeviceBuffer<bf16_t> fx_;
  DeviceBuffer<float> logits_;
  DeviceBuffer<cuda::RowStats> stats_;
  DeviceBuffer<int32_t> d_sel_;
  std::vector<int32_t> h_sel_;
  std::vector<float> h_logits_;
};

void CudaBackend::set_path(std::span<const HopSpec> path) {
  hops_.clear();
  kvfp_ = 0;
  for (const HopSpec& p : path) {
    const DeviceLayer& L = *layers_.at(p.layer);
    const ModelConfig& c = *L.views.config;
    Hop h;
    h.w = &L;
    h.scale = p.scale;
    h.nh = static_cast<int>(c.num_attention_heads), h.nkv = static_cast<int>(c.num_key_value_heads);
    h.hd = static_cast<int>(c.head_dim), h.inter = static_cast<int>(c.intermediate_size);
    h.kv_offset = kvfp_;
    kvfp_ += 2 * static_cast<int64_t>(h.nkv) * h.hd;
    hops_.push_back(h);
  }
}

void CudaBackend::reset_seq(int slot, int parent, int base, int cap) {
  use_device();
  if (slot_kv_.size() <= static_cast<size_t>(slot)) {
    slot_kv_.resize(slot + 1);
    slots_.resize(slot + 1);
  }
  DeviceBuffer<float>& kv = slot_kv_[slot];
  kv.reserve(std::max<size_t>(1, static_cast<size_t>(std::max(0, cap - base)) * kvfp_));
  const cuda::SlotDesc d{kv.get(), base, parent};
  if (slots_[slot].kv != d.kv || slots_[slot].base != base || slots_[slot].parent != parent) {
    slots_[slot] = d;
    slots_dirty_ = true;
  }
}

void CudaBackend::embed(std::span<const Row> rows) {
  const ModelConfig& c0 = *head_views_.config;
  const int64_t n = static_cast<int64_t>(rows.size()), H = c0.hidden_size;
  n_ = n;
  use_device();
  int64_t maxq = 0, maxkv = 0, maxi = 0;
  for (const Hop& h : hops_)
    maxq = std::max<int64_t>(maxq, h.nh * h.hd), maxkv = std::max<int64_t>(maxkv, h.nkv * h.hd),
    maxi = std::max<int64_t>(maxi, h.inter);
  x_.reserve(n * H), t_.reserve(n * H), q_.reserve(n * maxq), k_.reserve(n * maxkv);
  v_.reserve(n * maxkv), g_.reserve(n * maxi), u_.reserve(n * maxi);
  xn_.reserve(n * std::max(H, maxq)), att_.reserve(n * maxq), gu_.reserve(n * maxi);

  if (slots_dirty_) {
    upload_async(d_slots_, slots_);
    slots_dirty_ = false;
  }
  h_tokens_.resize(n);
  h_rows_.resize(n);
  for (int64_t r = 0; r < n; ++r) {
    h_tokens_[r] = rows[r].token;
    h_rows_[r] = {rows[r].seq, rows[r].pos};
  }
  upload_async(d_tokens_, h_tokens_);
  upload_async(d_rows_, h_rows_);
  cuda::embed_rows(embed_.get(), d_tokens_.get(), static_cast<int>(n), static_cast<int>(H),
                   x_.get(), stream_);
}

void CudaBackend::forward_layer(size_t hop_index, std::span<const Row> rows) {
  const Hop& hop = hops_.at(hop_index);
  const DeviceLayer& L = *hop.w;
  const ModelConfig& c = *L.views.config;
  const int n = static_cast<int>(rows.size()), H = static_cast<int>(c.hidden_size);
  const int64_t qd = static_cast<int64_t>(hop.nh) * hop.hd,
                kvd = static_cast<int64_t>(hop.nkv) * hop.hd;
  const float eps = static_cast<float>(c.rms_norm_eps);

  // x <- s * x, xn = bf16(RMSNorm(x)); q, k, v = xn · Wᵀ.
  cuda::scale_rms_norm(x_.get(), nullptr, n, H, hop.scale, L.attn_norm.get(), eps, xn_.get(),
                       stream_);
  gemm_->linear(L.q.get(), qd, H, xn_.get(), n, q_.get());
  gemm_->linear(L.k.get(), kvd, H, xn_.get(), n, k_.get());
  gemm_->linear(L.v.get(), kvd, H, xn_.get(), n, v_.get());

  cuda::QkvParams qp;
  qp.n = n, qp.nh = hop.nh, qp.nkv = hop.nkv, qp.hd = hop.hd;
  qp.bq = ptr_or_null(L.bq), qp.bk = ptr_or_null(L.bk), qp.bv = ptr_or_null(L.bv);
  qp.q_norm = ptr_or_null(L.q_norm), qp.k_norm = ptr_or_null(L.k_norm);
  qp.inv_freq = L.inv_freq.get();
  qp.eps = eps;
  qp.kv_offset = hop.kv_offset, qp.kvfp = kvfp_;
  cuda::qkv_rope_store(q_.get(), k_.get(), v_.get(), d_rows_.get(), d_slots_.get(), qp, stream_);

  cuda::AttnParams ap;
  ap.n = n, ap.nh = hop.nh, ap.nkv = hop.nkv, ap.hd = hop.hd;
  ap.window = c.sliding_window ? *c.sliding_window : std::numeric_limits<int64_t>::max();
  ap.kv_offset = hop.kv_offset, ap.kvfp = kvfp_;
  cuda::attention(q_.get(), d_rows_.get(), d_slots_.get(), ap, att_.get(), stream_);

  // x += o_proj(att) (+ bo); xn = bf16(RMSNorm(x)) for the MLP.
  gemm_->linear(L.o.get(), H, qd, att_.get(), n, t_.get());
  cuda::residual_add_norm(x_.get(), t_.get(), ptr_or_null(L.bo), n, H, L.mlp_norm.get(), eps,
                          xn_.get(), stream_);
  // SwiGLU: x += down(silu(gate(xn) + bg) * (up(xn) + bu)) (+ bd).
  const int I = hop.inter;
  gemm_->linear(L.gate.get(), I, H, xn_.get(), n, g_.get());
  gemm_->linear(L.up.get(), I, H, xn_.get(), n, u_.get());
  cuda::swiglu(g_.get(), u_.get(), ptr_or_null(L.bg), ptr_or_null(L.bu),
               static_cast<int64_t>(n) * I, I, gu_.get(), stream_);
  gemm_->linear(L.down.get(), H, I, gu_.get(), n, t_.get());
  cuda::residual_add_norm(x_.get(), t_.get(), ptr_or_null(L.bd), n, H, nullptr, eps, nullptr,
                          stream_);
  check(cudaGetLastError(), "layer kernels");
}

void CudaBackend::head_chunk(std::span<const int64_t> selected, size_t s0, int64_t m) {
  const ModelConfig& c0 = *head_views_.config;
  const int64_t H = c0.hidden_size, V = c0.vocab_size;
  fx_.reserve(kHeadRows * H);
  logits_.reserve(kHeadRows * V);
  h_sel_.resize(m);
  for (int64_t i = 0; i < m; ++i) {
    EM_ASSERT(selected[s0 + i] < n_);
    h_sel_[i] = static_cast<int32_t>(selected[s0 + i]);
  }
  upload_async(d_sel_, h_sel_);
  cuda::scale_rms_norm(x_.get(), d_sel_.get(), static_cast<int>(m), static_cast<int>(H), 1.0f,
                       final_norm_.get(), static_cast<float>(c0.rms_norm_eps), fx_.get(), stream_);
  gemm_->linear(tied_ ? embed_.get() : head_.get(), V, H, fx_.get(), m, logits_.get());
}

void CudaBackend::logits(std::span<const int64_t> selected, const LogitsFn& consumer) {
  const int64_t V = head_views_.config->vocab_size;
  for (size_t s0 = 0; s0 < selected.size(); s0 += kHeadRows) {
    const int64_t m = std::min<int64_t>(kHeadRows, selected.size() - s0);
    head_chunk(selected, s0, m);
    h_logits_.resize(m * V);
    check(cudaMemcpyAsync(h_logits_.data(), logits_.get(), m * V * sizeof(float),
                          cudaMemcpyDeviceToHost, stream_),
          "logits to host");
    sync();
    for (int64_t i = 0; i < m; ++i) consumer(s0 + i, &h_logits_[i * V]);
  }
}

void CudaBackend::argmax(std::span<const int64_t> selected, int64_t vocab, int32_t* out) {
  const int64_t V = head_views_.config->vocab_size;
  stats_.reserve(kHeadRows);
  std::vector<cuda::RowStats> host(kHeadRows);
  for (size_t s0 = 0; s0 < selected.size(); s0 += kHeadRows) {
    const int64_t m = std::min<int64_t>(kHeadRows, selected.size() - s0);
    head_chunk(selected, s0, m);
    cuda::row_stats(logits_.get(), static_cast<int>(m), V, vocab, stats_.get(), stream_);
    check(cudaMemcpyAsync(host.data(), stats_.get(), m * sizeof(cuda::RowStats),
                          cudaMemcpyDeviceToHost, stream_),
          "argmax to host");
    sync();
    for (int64_t i = 0; i < m; ++i) out[s0 + i] = host[i].argmax;
  }
}

void CudaBackend::log_probs(std::span<const int64_t> selected, int64_t vocab,
                            std::span<const Target> targets, TokenLogProb* out) {
  const int64_t V = head_views_.config->vocab_size;
  stats_.reserve(kHeadRows);
  DeviceBuffer<int64_t> d_tsel;
  DeviceBuffer<int32_t> d_tok;
  DeviceBuffer<double> d_lp;
  DeviceBuffer<int32_t> d_greedy;
  std::vector<int64_t> tsel;
  std::vector<int32_t> tok, greedy;
  std::vector<double> lp;
  size_t t = 0;  // targets are in `sel` order
  for (size_t s0 = 0; s0 < selected.size(); s0 += kHeadRows) {
    const int64_t m = std::min<int64_t>(kHeadRows, selected.size() - s0);
    head_chunk(selected, s0, m);
    cuda::row_stats(logits_.get(), static_cast<int>(m), V, vocab, stats_.get(), stream_);
    const size_t t0 = t;
    tsel.clear(), tok.clear();
    for (; t < targets.size() && targets[t].sel < static_cast<int64_t>(s0 + m); ++t)
      tsel.push_back(targets[t].sel - static_cast<int64_t>(s0)), tok.push_back(targets[t].token);
    const int count = static_cast<int>(tsel.size());
    if (count == 0) continue;
    upload_async(d_tsel, tsel);
    upload_async(d_tok, tok);
    d_lp.reserve(count), d_greedy.reserve(count);
    cuda::target_logprobs(logits_.get(), V, stats_.get(), d_tsel.get(), d_tok.get(), count,
                          d_lp.get(), d_greedy.get(), stream_);
    lp.resize(count), greedy.resize(count);
    check(cudaMemcpyAsync(lp.data(), d_lp.get(), count * sizeof(double), cudaMemcpyDeviceToHost,
                          stream_),
          "log-probs to host");
    check(cudaMemcpyAsync(greedy.data(), d_greedy.get(), count * sizeof(int32_t),
                          cudaMemcpyDeviceToHost, stream_),
          "greedy flags to host");
    sync();
    for (int i = 0; i < count; ++i) out[t0 + i] = {lp[i], greedy[i] != 0};
  }
  EM_ASSERT(t == targets.size());
}

}  // namespace

int cuda_device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error
    return 0;
  }
  return count;
}

std::unique_ptr<Backend> make_cuda_backend(const BackendOptions& options) {
  return std::make_unique<CudaBackend>(options);
}

}  // namespace evomerge::infer_detail
