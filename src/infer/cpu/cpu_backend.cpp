// The CPU backend: weights stay in their stored dtype (mapped or caller-owned), compute is f32,
// KV caches are host f32. Same math as reference_forward.cpp (held to it by tests), organised for
// throughput:
//  - A micro-batch of rows, across sequences, goes through each hop together, so each weight
//    matrix is applied as one GEMM (matmul() below: kernels.h, the GEMM kernel chosen for this CPU
//    at run time, gemm.h), each weight read once for all rows.
//  - Few parallel regions per layer (each is a fork/join, a cost a decode step of one row pays
//    tens of times): q/k/v in one (linear_many), gate/up with the activation in one
//    (linear_gated), the residual add with the next RMSNorm.
//  - Each KV cache slot holds, per hop, K [kv head x position x head_dim] then V (the same), so the
//    attention kernels read one head's keys and values contiguously (a position-major layout put
//    consecutive positions of one head kv_floats_per_pos apart: 80 KB, a page each, on the 1B
//    model). Positions below `base` are read from the parent's slot.
//  - Buffers (activations, caches, scratch) grow to the largest batch seen and are reused: a
//    decoding step allocates nothing.
#include "infer/cpu/cpu_backend.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <thread>

#include "common/error.h"
#include "common/machine.h"
#include "common/pages.h"
#include "infer/attention_kernels.h"
#include "infer/kernels.h"
#include "infer/rope.h"
#include "tensor/convert.h"

namespace evomerge::infer_detail {
namespace {

std::vector<float> vec_f32(const TensorView& v) {
  return v.data ? to_f32(v) : std::vector<float>{};
}

Matrix matrix(const TensorView& v) {
  Matrix m;
  m.data = v.data;
  m.dtype = v.dtype;
  m.rows = v.shape.at(0);
  m.cols = v.shape.at(1);
  return m;
}

// An RMSNorm weight in f32; Gemma's norms multiply by (1 + w), folded in here once.
std::vector<float> norm_f32(const TensorView& v, bool plus_one) {
  std::vector<float> w = vec_f32(v);
  if (plus_one)
    for (float& x : w) x += 1.0f;
  return w;
}

// gelu_pytorch_tanh: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
float gelu_tanh(float v) {
  constexpr float kSqrt2OverPi = 0.7978845608028654f;
  return 0.5f * v * (1.0f + std::tanh(kSqrt2OverPi * (v + 0.044715f * v * v * v)));
}

// Gemma 2's soft-capping: cap * tanh(v / cap).
float softcap(float v, float cap) {
  return cap * std::tanh(v / cap);
}

// HF RMSNorm over n values: x * rsqrt(mean(x^2) + eps) in f32, then times the weight.
void rms_norm(const float* x, float* y, int64_t n, const float* weight, float eps) {
  float ss[16] = {};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int l = 0; l < 16; ++l) ss[l] += x[i + l] * x[i + l];
  float s = 0;
  for (int l = 0; l < 16; ++l) s += ss[l];
  for (; i < n; ++i) s += x[i] * x[i];
  const float inv = 1.0f / std::sqrt(s / static_cast<float>(n) + eps);
  for (i = 0; i < n; ++i) y[i] = weight[i] * (x[i] * inv);
}

// log-softmax of `target` over the first `vocab` logits; also whether target is the argmax. The
// normaliser with the attention kernels' exp (log_sum_exp: f32 terms, summed in double per 256).
TokenLogProb logprob(const float* logits, int64_t vocab, int32_t target) {
  const int64_t best = argmax(logits, vocab);
  const float mx = logits[best];
  const double lse = log_sum_exp(selected_attention_kernel(), logits, vocab, mx);
  return {static_cast<double>(logits[target]) - mx - lse, best == target};
}

template <class T>
void grow(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
}

// One layer's weights: views of the matrices, f32 copies of the small vectors.
struct LayerWeights {
  LayerViews views;
  std::vector<float> attn_norm, mlp_norm, q_norm, k_norm, post_attn_norm, post_mlp_norm;
  std::vector<float> bq, bk, bv, bo, bg, bu, bd;
  Matrix q, k, v, o, gate, up, down;
  std::vector<float> inv_freq;
  float rope_mscale = 1.0f;  // longrope's cos/sin scale
  // The copies above (and the matrices' f32 copies / tile packing) predate the bytes: rebuilt by
  // refresh() before the layer's next use (CpuBackend::forward_layer), so a layer is packed once
  // per change of its bytes however often refresh_weights() and add_layer() mark it.
  bool stale = true;
  int64_t packed_memory_bytes = 0;  // of this layer's packed copies, counted against the budget

  // The bytes the layer's packed copies would take (0: none would be made).
  int64_t packable_bytes(bool cache_f32) const {
    int64_t bytes = 0;
    for (const Matrix* m : {&q, &k, &v, &o, &gate, &up, &down})
      if (m->packs(cache_f32)) bytes += static_cast<int64_t>(m->packed_bytes());
    return bytes;
  }

  // The matrices' copies on the pool (packing a 1B model's bf16 weights for the amx tiles is
  // ~2 GB of copying), then the vectors. `may_pack`: decided for the whole layer by the caller
  // (the memory budget), before the threads, so the same layers are packed on every run.
  void refresh(ThreadPool& pool, bool cache_f32, bool may_pack) {
    Matrix* matrices[] = {&q, &k, &v, &o, &gate, &up, &down};
    pool.parallel_for(std::size(matrices), [&](int64_t i, int) {
      Matrix& m = *matrices[i];
      m.refresh(cache_f32, may_pack);
      // Packed: the kernels read only the packed copy (gemm.h), so a mapped matrix's own pages
      // leave the resident set.
      if (views.file_mapped && !m.packed.empty())
        release_mapped_pages(m.data, static_cast<size_t>(m.rows * m.cols) * dtype_size(m.dtype));
    });
    const LayerViews& w = views;
    const bool p1 = w.config->norm_plus_one;
    attn_norm = norm_f32(w.attn_norm, p1), mlp_norm = norm_f32(w.mlp_norm, p1);
    q_norm = norm_f32(w.q_norm, p1), k_norm = norm_f32(w.k_norm, p1);
    post_attn_norm = norm_f32(w.post_attn_norm, p1), post_mlp_norm = norm_f32(w.post_mlp_norm, p1);
    bq = vec_f32(w.bq), bk = vec_f32(w.bk), bv = vec_f32(w.bv), bo = vec_f32(w.bo);
    bg = vec_f32(w.bg), bu = vec_f32(w.bu), bd = vec_f32(w.bd);
    stale = false;
  }
};

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(const BackendOptions& o)
      : options_(o),
        pool_(o.threads > 0 ? o.threads : std::max(1u, std::thread::hardware_concurrency())),
        packed_memory_budget_(o.max_packed_bytes >= 0 ? o.max_packed_bytes
                                                      : physical_memory_bytes() / 4) {
    attn_scratch_.resize(pool_.size());
    rope_scratch_.resize(pool_.size());
  }

  std::string name() const override { return "cpu"; }

  void set_head(const HeadViews& v) override {
    head_views_ = v;
    head_ = matrix(v.head);
  }

  int add_layer(const LayerViews& v) override {
    auto L = std::make_unique<LayerWeights>();
    L->views = v;
    L->q = matrix(v.q), L->k = matrix(v.k), L->v = matrix(v.v), L->o = matrix(v.o);
    L->gate = matrix(v.gate), L->up = matrix(v.up), L->down = matrix(v.down);
    L->inv_freq = rope_inv_freq(*v.config, v.index);
    L->rope_mscale = rope_attention_factor(*v.config);
    layers_.push_back(std::move(L));  // stale: refreshed before its first use
    return static_cast<int>(layers_.size()) - 1;
  }

  void refresh_weights() override {
    final_norm_ = norm_f32(head_views_.final_norm, head_views_.config->norm_plus_one);
    // The head is counted first: it runs for every token of every sequence. Its views are the
    // model's own (mapped or in memory); counted as in memory either way (one matrix).
    packed_memory_used_ -= head_packed_bytes_;
    const int64_t head_bytes =
        head_.packs(options_.cache_f32_weights) ? static_cast<int64_t>(head_.packed_bytes()) : 0;
    const bool pack_head = packed_memory_used_ + head_bytes <= packed_memory_budget_;
    head_packed_bytes_ = pack_head ? head_bytes : 0;
    packed_memory_used_ += head_packed_bytes_;
    head_.refresh(options_.cache_f32_weights, pack_head);
    for (auto& L : layers_) L->stale = true;
  }

  uint64_t packed_memory_weight_bytes() const override {
    return static_cast<uint64_t>(packed_memory_used_);
  }

  void set_path(std::span<const HopSpec> path) override;

  void reset_seq(int slot, int parent, int base, int cap) override {
    while (seqs_.size() <= static_cast<size_t>(slot)) seqs_.emplace_back();
    Seq& s = seqs_[slot];
    s.parent = parent;
    s.base = base;
    s.rows = std::max(0, cap - base);
    const size_t need = static_cast<size_t>(s.rows) * kv_floats_per_pos_;
    if (s.kv.size() < need) s.kv.resize(need);
    // One attention score per key of the slot's longest row, sized here so that the decode steps
    // that follow never grow it (tested: decode_alloc_test.cpp).
    for (auto& scratch : attn_scratch_) scratch.reserve(1, std::max(0, cap), 0);
  }

  void embed(std::span<const Row> rows) override;
  void forward_layer(size_t hop, std::span<const Row> rows) override;
  void logits(std::span<const int64_t> selected, const LogitsFn& consumer) override;
  void argmax(std::span<const int64_t> selected, int64_t vocab, int32_t* out) override {
    run_head(selected, [&](size_t i, const float* l) {
      out[i] = static_cast<int32_t>(infer_detail::argmax(l, vocab));
    });
  }
  void log_probs(std::span<const int64_t> selected, int64_t vocab, std::span<const Target> targets,
                 TokenLogProb* out) override {
    size_t t = 0;  // targets are in `sel` order
    run_head(selected, [&](size_t i, const float* l) {
      for (; t < targets.size() && targets[t].sel == static_cast<int64_t>(i); ++t)
        out[t] = logprob(l, vocab, targets[t].token);
    });
    EM_ASSERT(t == targets.size());
  }

 private:
  struct Hop {
    LayerWeights* w = nullptr;
    float scale = 1.0f;
    int64_t nh = 0, nkv = 0, hd = 0, inter = 0, qdim = 0, kvdim = 0;
    int64_t kv_offset = 0;  // sum of 2 * kvdim over the hops before: its slab at rows * kv_offset
  };
  // A KV cache slot of `rows` = cap - base positions: hop h's slab at rows * h.kv_offset holds K
  // [nkv x rows x hd] then V [nkv x rows x hd]; positions [0, base) are in the parent's slot.
  struct Seq {
    int parent = -1;
    int base = 0;
    int64_t rows = 0;
    std::vector<float> kv;
    // K (or V) of kv head g at position pos (>= base) of hop h.
    float* at(const Hop& h, int64_t g, int64_t pos, bool value) {
      return kv.data() + rows * h.kv_offset + (value ? rows * h.kvdim : 0) +
             (g * rows + pos - base) * h.hd;
    }
  };

  // Y[n x W.rows] = X[n x W.cols] · Wᵀ: every weight matmul of the backend goes through here.
  void matmul(const Matrix& W, const float* X, int64_t n, float* Y) {
    linear(pool_, W, X, n, Y, mm_, options_.precision);
  }
  void attend_and_project(const Hop& hop, std::span<const Row> rows);
  void mlp(const Hop& hop, int64_t n);
  void add_block_output(const Hop& hop, const std::vector<float>& post_norm,
                        const std::vector<float>& bias, int64_t n,
                        const float* next_norm = nullptr);
  template <class Consumer>
  void run_head(std::span<const int64_t> selected, Consumer&& consumer);

  // Packs the layer when it is mapped from a file (packing drops its mapped pages) or its packed
  // copies fit what is left of the budget for weights held in memory.
  void refresh_layer(LayerWeights& L) {
    packed_memory_used_ -= L.packed_memory_bytes;
    L.packed_memory_bytes = 0;
    const int64_t bytes = L.packable_bytes(options_.cache_f32_weights);
    bool pack = true;
    if (!L.views.file_mapped) {
      pack = packed_memory_used_ + bytes <= packed_memory_budget_;
      if (pack) L.packed_memory_bytes = bytes;
      packed_memory_used_ += L.packed_memory_bytes;
    }
    L.refresh(pool_, options_.cache_f32_weights, pack);
  }

  BackendOptions options_;
  ThreadPool pool_;
  const int64_t packed_memory_budget_;  // BackendOptions::max_packed_bytes, resolved
  int64_t packed_memory_used_ = 0;
  int64_t head_packed_bytes_ = 0;
  HeadViews head_views_;
  std::vector<float> final_norm_;
  Matrix head_;
  std::vector<std::unique_ptr<LayerWeights>> layers_;  // by handle; stable addresses
  std::vector<Hop> hops_;
  int64_t kv_floats_per_pos_ = 0;  // sum over hops of 2 * kvdim
  std::vector<Seq> seqs_;
  int64_t n_ = 0;  // rows of the current micro-batch

  // Scratch, grown to the largest micro-batch seen.
  std::vector<float> x, xn, q, k, v, att, tmp, g, u, final_x, logits_buf;
  std::vector<AttentionScratch> attn_scratch_;       // per thread
  std::vector<std::vector<float>> rope_scratch_;     // per thread: one row's cos and sin
  std::vector<std::pair<int64_t, int64_t>> blocks_;  // attention row blocks: (first row, count)
  std::vector<int64_t> item_start_;  // the blocks' first attention work items (prefix sums)
  MatmulScratch mm_;
};

void CpuBackend::set_path(std::span<const HopSpec> path) {
  hops_.clear();
  kv_floats_per_pos_ = 0;
  for (const HopSpec& p : path) {
    LayerWeights& L = *layers_.at(p.layer);
    const ModelConfig& c = *L.views.config;
    Hop h;
    h.w = &L;
    h.scale = p.scale;
    h.nh = c.num_attention_heads, h.nkv = c.num_key_value_heads, h.hd = c.head_dim;
    h.inter = c.intermediate_size, h.qdim = h.nh * h.hd, h.kvdim = h.nkv * h.hd;
    h.kv_offset = kv_floats_per_pos_;
    kv_floats_per_pos_ += 2 * h.kvdim;
    hops_.push_back(h);
    for (auto& r : rope_scratch_) grow(r, static_cast<size_t>(h.hd));
  }
}

void CpuBackend::embed(std::span<const Row> rows) {
  const ModelConfig& c0 = *head_views_.config;
  const int64_t n = static_cast<int64_t>(rows.size()), H = c0.hidden_size;
  n_ = n;
  int64_t maxq = 0, maxkv = 0, maxi = 0;
  for (const Hop& h : hops_)
    maxq = std::max(maxq, h.qdim), maxkv = std::max(maxkv, h.kvdim), maxi = std::max(maxi, h.inter);
  grow(x, n * H), grow(xn, n * std::max(H, maxq)), grow(q, n * maxq), grow(k, n * maxkv),
      grow(v, n * maxkv);
  grow(att, n * maxq), grow(tmp, n * H), grow(g, n * maxi), grow(u, n * maxi);
  // Attention scores per thread: one per key of the longest row, never sized from the config's
  // max_position_embeddings (1e9 there allocated 7.8 GB for a 2 MB model).
  int64_t longest = 0;
  for (const Row& r : rows) longest = std::max<int64_t>(longest, r.pos + 1);
  for (auto& s : attn_scratch_) s.reserve(1, longest, 0);

  // Embedding rows (converted from the stored dtype).
  const TensorView& e = head_views_.embed;
  const size_t esz = dtype_size(e.dtype);
  const float multiplier = static_cast<float>(c0.embedding_multiplier);  // Granite, Gemma
  pool_.parallel_for(n, [&](int64_t r, int) {
    float* xr = &x[r * H];
    convert_to_f32(e.dtype, e.data + static_cast<size_t>(rows[r].token) * H * esz, xr, H);
    if (multiplier != 1.0f)
      for (int64_t i = 0; i < H; ++i) xr[i] *= multiplier;
  });
}

void CpuBackend::forward_layer(size_t hop_index, std::span<const Row> rows) {
  const Hop& hop = hops_.at(hop_index);
  if (hop.w->stale) refresh_layer(*hop.w);
  const LayerWeights& L = *hop.w;
  const ModelConfig& c = *L.views.config;
  const int64_t n = static_cast<int64_t>(rows.size()), H = c.hidden_size;
  const int64_t nh = hop.nh, nkv = hop.nkv, hd = hop.hd, qd = hop.qdim, kvd = hop.kvdim;
  const float eps = static_cast<float>(c.rms_norm_eps);

  // x <- s * x (the residual stream is scaled before the layer; see LayerHop), then RMSNorm.
  pool_.parallel_for(n, [&](int64_t r, int) {
    float* xr = &x[r * H];
    if (hop.scale != 1.0f)
      for (int64_t i = 0; i < H; ++i) xr[i] *= hop.scale;
    rms_norm(xr, &xn[r * H], H, L.attn_norm.data(), eps);
  });
  const LinearOut qkv[] = {{&L.q, q.data()}, {&L.k, k.data()}, {&L.v, v.data()}};
  linear_many(pool_, qkv, xn.data(), n, mm_, options_.precision);

  // Biases, q/k norms per head (Qwen3, before RoPE), RoPE, and K/V into the cache.
  pool_.parallel_for(n, [&](int64_t r, int thread) {
    // The row's cos / sin once for all its q and k heads (rope_angles, as rope_apply computes
    // them).
    float* rope_cos = rope_scratch_[thread].data();
    float* rope_sin = rope_cos + hd / 2;
    rope_angles(static_cast<int>(hd), L.inv_freq.data(), rows[r].pos, L.rope_mscale, rope_cos,
                rope_sin);
    float* qr = &q[r * qd];
    float* kr = &k[r * kvd];
    float* vr = &v[r * kvd];
    if (!L.bq.empty()) {
      for (int64_t i = 0; i < qd; ++i) qr[i] += L.bq[i];
      for (int64_t i = 0; i < kvd; ++i) kr[i] += L.bk[i], vr[i] += L.bv[i];
    }
    for (int64_t a = 0; a < nh; ++a) {
      if (!L.q_norm.empty()) rms_norm(qr + a * hd, qr + a * hd, hd, L.q_norm.data(), eps);
      rope_rotate(qr + a * hd, static_cast<int>(hd), rope_cos, rope_sin);
    }
    for (int64_t a = 0; a < nkv; ++a) {
      if (!L.k_norm.empty()) rms_norm(kr + a * hd, kr + a * hd, hd, L.k_norm.data(), eps);
      rope_rotate(kr + a * hd, static_cast<int>(hd), rope_cos, rope_sin);
    }
    if (options_.precision == Precision::Bf16) {  // the attention's bf16 operands (AttentionBlock)
      round_activations_to_bf16(qr, qd, qd, 0, 1, qr);
      round_activations_to_bf16(kr, kvd, kvd, 0, 1, kr);
      round_activations_to_bf16(vr, kvd, kvd, 0, 1, vr);
    }
    Seq& s = seqs_[rows[r].seq];
    for (int64_t g = 0; g < nkv; ++g) {
      std::copy(kr + g * hd, kr + (g + 1) * hd, s.at(hop, g, rows[r].pos, false));
      std::copy(vr + g * hd, vr + (g + 1) * hd, s.at(hop, g, rows[r].pos, true));
    }
  });

  attend_and_project(hop, rows);
  mlp(hop, n);
}

// Causal attention over each row's sequence positions [0, pos]; query head a reads kv head
// a / (nh / nkv) (repeat_kv); softmax in f32. Work items are (block of consecutive rows of one
// sequence, head), each one attend_block (attention_kernels.h: our kernels for this CPU, causal
// skip, packed Kᵀ panels for prefill blocks, dot products for decode rows), or under
// Precision::Bf16 on the amx kernel, for blocks of kAmxAttentionMinRows or more, (block, kv head),
// its query heads on the AMX tiles with K and V packed once for them (attend_group_amx). Then
// o_proj, the residual add and the MLP's RMSNorm.
void CpuBackend::attend_and_project(const Hop& hop, std::span<const Row> rows) {
  const LayerWeights& L = *hop.w;
  const ModelConfig& c = *L.views.config;
  const int64_t n = static_cast<int64_t>(rows.size());
  const int64_t nh = hop.nh, hd = hop.hd, qd = hop.qdim;
  const float scale = c.attention_scale ? static_cast<float>(*c.attention_scale)
                                        : 1.0f / std::sqrt(static_cast<float>(hd));
  const float cap = c.attn_logit_softcapping ? static_cast<float>(*c.attn_logit_softcapping) : 0.0f;
  const int64_t group = nh / hop.nkv;
  const std::optional<int64_t> layer_window = layer_sliding_window(c, L.views.index);
  const int64_t window = layer_window ? *layer_window : std::numeric_limits<int64_t>::max();
  const bool bf16 = options_.precision == Precision::Bf16;
  // Precision::Bf16 on the amx kernel: blocks of kAmxAttentionMinRows or more rows are one item
  // per kv head, its query heads on the tiles (attend_group_amx); others one item per query head.
  static const bool amx_ok = amx_attention_unavailable().empty();
  const bool amx = bf16 && amx_ok && selected_gemm_kernel() == GemmKernel::Amx;
  constexpr int64_t kAttnRows = 64;
  const int64_t block_rows = amx ? kAmxAttentionRows : kAttnRows;
  blocks_.clear();
  for (int64_t r = 0; r < n; ++r) {
    const bool extend = !blocks_.empty() && rows[r].seq == rows[r - 1].seq &&
                        rows[r].pos == rows[r - 1].pos + 1 && r - blocks_.back().first < block_rows;
    if (extend)
      ++blocks_.back().second;
    else
      blocks_.emplace_back(r, 1);
  }
  const AttentionKernel kernel = selected_attention_kernel();
  item_start_.assign(1, 0);
  for (const auto& blk : blocks_)
    item_start_.push_back(item_start_.back() +
                          (amx && blk.second >= kAmxAttentionMinRows ? hop.nkv : nh));
  pool_.parallel_for(item_start_.back(), [&](int64_t item, int thread) {
    const size_t bi = static_cast<size_t>(
        std::upper_bound(item_start_.begin(), item_start_.end(), item) - item_start_.begin() - 1);
    // Plain variables, not a structured binding: clang 14 (the fuzz build) cannot capture a
    // binding in a lambda.
    const int64_t r0 = blocks_[bi].first, m = blocks_[bi].second;
    const int64_t heads = item_start_[bi + 1] - item_start_[bi] == nh ? 1 : group;
    const int64_t a = (item - item_start_[bi]) * heads, gi = a / group;
    Seq& s = seqs_[rows[r0].seq];
    const int64_t L = rows[r0 + m - 1].pos + 1, nparent = std::min<int64_t>(s.base, L);
    // Keys [0, base) from the parent's cache (base 0), [base, L) from the own one.
    KvSegment segs[2];
    int nsegs = 0;
    if (nparent > 0) {
      Seq& p = seqs_[s.parent];
      segs[nsegs++] = {p.at(hop, gi, 0, false), p.at(hop, gi, 0, true), 0, nparent};
    }
    if (L > nparent)
      segs[nsegs++] = {s.at(hop, gi, nparent, false), s.at(hop, gi, nparent, true), nparent, L};
    AttentionBlock b;
    b.q = &q[r0 * qd + a * hd], b.ldq = qd;
    b.out = &att[r0 * qd + a * hd], b.ldo = qd;
    b.m = m, b.hd = hd, b.p0 = rows[r0].pos, b.window = window;
    b.scale = scale, b.softcap = cap;
    b.segments = segs, b.nsegments = nsegs, b.ldkv = hd;
    b.bf16 = bf16;
    if (amx && m >= kAmxAttentionMinRows)
      attend_group_amx(b, heads, attn_scratch_[thread]);
    else
      attend_block(kernel, b, attn_scratch_[thread]);
  });

  matmul(L.o, att.data(), n, tmp.data());
  add_block_output(hop, L.post_attn_norm, L.bo, n, L.mlp_norm.data());
}

// x += residual_multiplier * post_norm(tmp + bias): a block's output (tmp [n x H]) into the
// residual stream (the norm only for Gemma, the multiplier only for Granite); then, given
// next_norm, xn = RMSNorm(x) with it, in the same pass (no region of its own).
void CpuBackend::add_block_output(const Hop& hop, const std::vector<float>& post_norm,
                                  const std::vector<float>& bias, int64_t n,
                                  const float* next_norm) {
  const ModelConfig& c = *hop.w->views.config;
  const int64_t H = c.hidden_size;
  const float eps = static_cast<float>(c.rms_norm_eps);
  const float mult = static_cast<float>(c.residual_multiplier);
  pool_.parallel_for(n, [&](int64_t r, int) {
    float* xr = &x[r * H];
    float* t = &tmp[r * H];
    if (!bias.empty())
      for (int64_t i = 0; i < H; ++i) t[i] += bias[i];
    if (!post_norm.empty()) rms_norm(t, t, H, post_norm.data(), eps);
    if (mult != 1.0f)
      for (int64_t i = 0; i < H; ++i) xr[i] += mult * t[i];
    else
      for (int64_t i = 0; i < H; ++i) xr[i] += t[i];
    if (next_norm) rms_norm(xr, &xn[r * H], H, next_norm, eps);
  });
}

// Gated MLP: x += down(act(gate(xn)) * up(xn)), act silu (SwiGLU) or gelu_pytorch_tanh (Gemma).
void CpuBackend::mlp(const Hop& hop, int64_t n) {
  const LayerWeights& L = *hop.w;
  const int64_t I = hop.inter;
  const bool gelu = L.views.config->hidden_act == "gelu_pytorch_tanh";
  const AttentionKernel simd = selected_attention_kernel();  // the vectorised exp of silu
  // Each task of the gated pair applies the activation to its columns: g <- act(g + bg) * (u + bu).
  linear_gated(pool_, L.gate, L.up, xn.data(), n, g.data(), u.data(), mm_, options_.precision,
               [&](int64_t c0, int64_t c1) {
                 for (int64_t r = 0; r < n; ++r) {
                   float* gr = &g[r * I];
                   float* ur = &u[r * I];
                   if (!L.bg.empty())
                     for (int64_t i = c0; i < c1; ++i) gr[i] += L.bg[i], ur[i] += L.bu[i];
                   if (gelu)
                     for (int64_t i = c0; i < c1; ++i) gr[i] = gelu_tanh(gr[i]) * ur[i];
                   else
                     silu_mul(simd, gr + c0, ur + c0, c1 - c0);
                 }
               });
  matmul(L.down, g.data(), n, tmp.data());
  add_block_output(hop, L.post_mlp_norm, L.bd, n);
}

// Final norm and head for the selected rows, kLogitRows at a time.
template <class Consumer>
void CpuBackend::run_head(std::span<const int64_t> sel, Consumer&& consumer) {
  const ModelConfig& c0 = *head_views_.config;
  const int64_t H = c0.hidden_size, V = c0.vocab_size;
  constexpr int64_t kLogitRows = 128;
  grow(final_x, kLogitRows * H), grow(logits_buf, kLogitRows * V);
  const float eps = static_cast<float>(c0.rms_norm_eps);
  for (size_t s0 = 0; s0 < sel.size(); s0 += kLogitRows) {
    const int64_t m = std::min<int64_t>(kLogitRows, sel.size() - s0);
    for (int64_t i = 0; i < m; ++i) {
      EM_ASSERT(sel[s0 + i] < n_);
      rms_norm(&x[sel[s0 + i] * H], &final_x[i * H], H, final_norm_.data(), eps);
    }
    matmul(head_, final_x.data(), m, logits_buf.data());
    if (c0.logits_scaling != 1.0 || c0.final_logit_softcapping) {  // Granite, Gemma 2
      const float scaling = static_cast<float>(c0.logits_scaling);
      const float cap = static_cast<float>(c0.final_logit_softcapping.value_or(0.0));
      for (int64_t i = 0; i < m * V; ++i) {
        float& l = logits_buf[i];
        if (scaling != 1.0f) l /= scaling;
        if (cap > 0.0f) l = softcap(l, cap);
      }
    }
    for (int64_t i = 0; i < m; ++i) consumer(s0 + i, &logits_buf[i * V]);
  }
}

void CpuBackend::logits(std::span<const int64_t> selected, const LogitsFn& consumer) {
  run_head(selected, consumer);
}

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(const BackendOptions& options) {
  return std::make_unique<CpuBackend>(options);
}

}  // namespace evomerge::infer_detail
