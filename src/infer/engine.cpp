// The fast path of the inference engine. Same math as reference_forward.cpp (held to it by tests),
// organised for throughput:
//  - Work is a list of rows, one per (sequence, position, token). A micro-batch of up to
//    max_batch_tokens rows, across sequences, goes through every hop together, so each weight
//    matrix is applied as one GEMM (kernels.h: OpenBLAS sgemm per thread block, or a fused bf16
//    GEMV for few rows).
//  - Each sequence owns a KV cache slot per hop (K and V rows [position x n_kv*head_dim], f32). A
//    sequence may have a parent (a shared context): positions below `base` are read from the
//    parent's cache, so a context shared by several continuations is computed once.
//  - Buffers (activations, caches, scratch) grow to the largest batch seen and are reused: a
//    decoding step allocates nothing.
#include "infer/engine.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <thread>

#include "common/error.h"
#include "infer/kernels.h"
#include "infer/rope.h"
#include "tensor/convert.h"

namespace evomerge {

using infer_detail::MatmulScratch;
using infer_detail::Matrix;
using infer_detail::ThreadPool;

namespace {

std::vector<float> vec_f32(const TensorView& v) {
  return v.data ? to_f32(v) : std::vector<float>{};
}

// The weights of one layer of one model, resolved once (views) with f32 copies of the small
// vectors.
struct LayerWeights {
  const ModelConfig* cfg = nullptr;
  TensorView attn_norm_v, mlp_norm_v, q_norm_v, k_norm_v, bq_v, bk_v, bv_v, bo_v, bg_v, bu_v, bd_v;
  std::vector<float> attn_norm, mlp_norm, q_norm, k_norm, bq, bk, bv, bo, bg, bu, bd;
  Matrix q, k, v, o, gate, up, down;
  std::vector<float> inv_freq;

  void refresh(bool cache_f32) {
    attn_norm = vec_f32(attn_norm_v);
    mlp_norm = vec_f32(mlp_norm_v);
    q_norm = vec_f32(q_norm_v);
    k_norm = vec_f32(k_norm_v);
    bq = vec_f32(bq_v), bk = vec_f32(bk_v), bv = vec_f32(bv_v), bo = vec_f32(bo_v);
    bg = vec_f32(bg_v), bu = vec_f32(bu_v), bd = vec_f32(bd_v);
    for (Matrix* m : {&q, &k, &v, &o, &gate, &up, &down}) m->refresh(cache_f32);
  }
};

// A tensor view checked against the shape the config implies. `what` names the source in errors.
TensorView checked(const WeightSource& w, const std::string& name, const Shape& shape,
                   const std::string& what) {
  if (!w.has(name)) fail("infer", "{}: tensor '{}' is missing", what, name);
  TensorView v = w.tensor(name);
  if (v.shape != shape)
    fail("infer", "{}: tensor '{}' has shape {}, expected {}", what, name, shape_string(v.shape),
         shape_string(shape));
  if (!dtype_is_compute(v.dtype))
    fail("infer", "{}: tensor '{}' has dtype {}; weights must be F32, F16 or BF16", what, name,
         dtype_name(v.dtype));
  if (v.nbytes != static_cast<size_t>(v.numel()) * dtype_size(v.dtype))
    fail("infer", "{}: tensor '{}': {} bytes for shape {}", what, name, v.nbytes,
         shape_string(v.shape));
  return v;
}

Matrix matrix(const TensorView& v) {
  Matrix m;
  m.data = v.data;
  m.dtype = v.dtype;
  m.rows = v.shape.at(0);
  m.cols = v.shape.at(1);
  return m;
}

float silu(float v) {
  return v / (1.0f + std::exp(-v));
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

}  // namespace

struct Engine::Impl {
  std::vector<std::shared_ptr<const WeightSource>> models;
  std::vector<std::string> names;  // for error messages
  EngineOptions options;
  ThreadPool pool;
  int max_context = 0;
  bool custom_path = false;

  // Embedding, final norm and head come from model 0.
  TensorView embed_v, final_norm_v;
  std::vector<float> final_norm;
  Matrix head;

  std::map<std::pair<int, int>, LayerWeights> layers;  // (model, layer) -> weights, shared by hops
  struct Hop {
    LayerWeights* w = nullptr;
    float scale = 1.0f;
    int64_t nh = 0, nkv = 0, hd = 0, inter = 0, qdim = 0, kvdim = 0;
    int64_t kv_offset = 0;  // offset (in floats per position) of this hop's K; V follows at +kvdim
  };
  std::vector<Hop> hops;
  int64_t kv_floats_per_pos = 0;  // sum over hops of 2 * kvdim

  // A sequence's KV cache. Positions [0, base) live in the parent's cache.
  struct Seq {
    const Seq* parent = nullptr;
    int base = 0;
    int len = 0;  // positions filled so far (absolute, parent's included)
    int cap = 0;  // absolute capacity
    std::vector<float>
        kv;  // [(cap - base) x kv_floats_per_pos], hop-major: hop h's K at h's kv_offset
    float* own_row(int64_t pos, int64_t offset, int64_t floats_per_pos) {
      return kv.data() + (pos - base) * floats_per_pos + offset;
    }
  };
  std::vector<std::unique_ptr<Seq>> seq_pool;

  struct Row {
    Seq* seq = nullptr;
    int pos = 0;
    int32_t token = 0;
    bool logits = false;
  };

  // Scratch, grown to the largest micro-batch seen.
  std::vector<float> x, xn, q, k, v, att, tmp, g, u, final_x, logits_buf;
  std::vector<std::vector<float>> score_scratch;  // per thread, max_context
  MatmulScratch mm;
  Stats stats;

  Impl(std::vector<std::shared_ptr<const WeightSource>> m, EngineOptions opt)
      : models(std::move(m)),
        options(opt),
        pool(opt.threads > 0 ? opt.threads : std::max(1u, std::thread::hardware_concurrency())) {
    // Parallelism is ours (ThreadPool); each thread calls sgemm on its own block.
    openblas_set_num_threads(1);
    if (models.empty()) fail("infer", "a layer path needs at least one model");
    for (size_t i = 0; i < models.size(); ++i) {
      if (!models[i]) fail("infer", "model {} of the layer path is null", i);
      names.push_back(fmt::format("model {} ({})", i, models[i]->config().architecture));
    }
    const ModelConfig& c0 = models[0]->config();
    for (size_t i = 0; i < models.size(); ++i) {
      const ModelConfig& c = models[i]->config();
      if (c.hidden_size != c0.hidden_size || c.vocab_size != c0.vocab_size)
        fail("infer",
             "{}: hidden_size {} / vocab_size {} differ from model 0's {} / {}; a layer path needs "
             "both equal",
             names[i], c.hidden_size, c.vocab_size, c0.hidden_size, c0.vocab_size);
      if (c.hidden_act != "silu")
        fail("infer", "{}: hidden_act '{}' is not supported (silu)", names[i], c.hidden_act);
      if (c.num_key_value_heads <= 0 || c.num_attention_heads % c.num_key_value_heads != 0)
        fail("infer", "{}: num_attention_heads {} is not a multiple of num_key_value_heads {}",
             names[i], c.num_attention_heads, c.num_key_value_heads);
      rope_inv_freq(c);  // rejects unsupported rope types up front
    }
    max_context = options.max_context > 0 ? options.max_context
                                          : static_cast<int>(c0.max_position_embeddings);
    if (options.max_batch_tokens <= 0) fail("infer", "max_batch_tokens must be positive");
    const int64_t H = c0.hidden_size, V = c0.vocab_size;
    embed_v = checked(*models[0], "model.embed_tokens.weight", {V, H}, names[0]);
    final_norm_v = checked(*models[0], "model.norm.weight", {H}, names[0]);
    head = matrix(c0.tie_word_embeddings ? embed_v
                                         : checked(*models[0], "lm_head.weight", {V, H}, names[0]));
    score_scratch.resize(pool.size());
  }

  LayerWeights& layer(int model, int index) {
    auto key = std::make_pair(model, index);
    if (auto it = layers.find(key); it != layers.end()) return it->second;
    const WeightSource& w = *models[model];
    const ModelConfig& c = w.config();
    const std::string& what = names[model];
    const int64_t H = c.hidden_size, I = c.intermediate_size,
                  qd = c.num_attention_heads * c.head_dim, kvd = c.num_key_value_heads * c.head_dim;
    auto name = [&](const char* suffix) { return layer_tensor_name(index, suffix); };
    LayerWeights L;
    L.cfg = &c;
    L.attn_norm_v = checked(w, name("input_layernorm.weight"), {H}, what);
    L.mlp_norm_v = checked(w, name("post_attention_layernorm.weight"), {H}, what);
    L.q = matrix(checked(w, name("self_attn.q_proj.weight"), {qd, H}, what));
    L.k = matrix(checked(w, name("self_attn.k_proj.weight"), {kvd, H}, what));
    L.v = matrix(checked(w, name("self_attn.v_proj.weight"), {kvd, H}, what));
    L.o = matrix(checked(w, name("self_attn.o_proj.weight"), {H, qd}, what));
    L.gate = matrix(checked(w, name("mlp.gate_proj.weight"), {I, H}, what));
    L.up = matrix(checked(w, name("mlp.up_proj.weight"), {I, H}, what));
    L.down = matrix(checked(w, name("mlp.down_proj.weight"), {H, I}, what));
    if (c.qkv_bias) {
      L.bq_v = checked(w, name("self_attn.q_proj.bias"), {qd}, what);
      L.bk_v = checked(w, name("self_attn.k_proj.bias"), {kvd}, what);
      L.bv_v = checked(w, name("self_attn.v_proj.bias"), {kvd}, what);
    }
    if (c.o_bias) L.bo_v = checked(w, name("self_attn.o_proj.bias"), {H}, what);
    if (c.qk_norm) {
      L.q_norm_v = checked(w, name("self_attn.q_norm.weight"), {c.head_dim}, what);
      L.k_norm_v = checked(w, name("self_attn.k_norm.weight"), {c.head_dim}, what);
    }
    if (c.mlp_bias) {
      L.bg_v = checked(w, name("mlp.gate_proj.bias"), {I}, what);
      L.bu_v = checked(w, name("mlp.up_proj.bias"), {I}, what);
      L.bd_v = checked(w, name("mlp.down_proj.bias"), {H}, what);
    }
    L.inv_freq = rope_inv_freq(c);
    L.refresh(options.cache_f32_weights);
    return layers.emplace(key, std::move(L)).first->second;
  }

  void set_path(const std::vector<LayerHop>& path) {
    if (path.empty()) fail("infer", "the layer path is empty");
    hops.clear();
    kv_floats_per_pos = 0;
    for (size_t i = 0; i < path.size(); ++i) {
      const LayerHop& p = path[i];
      if (p.model < 0 || p.model >= static_cast<int>(models.size()))
        fail("infer", "layer path hop {}: model {} is out of range (0..{})", i, p.model,
             models.size() - 1);
      const ModelConfig& c = models[p.model]->config();
      if (p.layer < 0 || p.layer >= c.num_hidden_layers)
        fail("infer", "layer path hop {}: layer {} is out of range for {} ({} layers)", i, p.layer,
             names[p.model], c.num_hidden_layers);
      if (!std::isfinite(p.input_scale))
        fail("infer", "layer path hop {}: input_scale is not finite", i);
      Hop h;
      h.w = &layer(p.model, p.layer);
      h.scale = p.input_scale;
      h.nh = c.num_attention_heads, h.nkv = c.num_key_value_heads, h.hd = c.head_dim;
      h.inter = c.intermediate_size, h.qdim = h.nh * h.hd, h.kvdim = h.nkv * h.hd;
      h.kv_offset = kv_floats_per_pos;
      kv_floats_per_pos += 2 * h.kvdim;
      hops.push_back(h);
    }
    // Caches laid out for the old path are meaningless now.
    for (auto& s : seq_pool) s->len = 0;
  }

  void refresh() {
    final_norm = vec_f32(final_norm_v);
    head.refresh(options.cache_f32_weights);
    for (auto& [key, L] : layers) L.refresh(options.cache_f32_weights);
  }

  // Sequences [0, n) of the pool, reset: `caps[i]` absolute capacity, parent/base as given.
  Seq& seq(size_t i) {
    while (seq_pool.size() <= i) seq_pool.push_back(std::make_unique<Seq>());
    return *seq_pool[i];
  }
  void reset_seq(Seq& s, const Seq* parent, int base, int cap) {
    EM_ASSERT(!parent || !parent->parent);
    s.parent = parent;
    s.base = base;
    s.len = base;
    s.cap = cap;
    size_t need = static_cast<size_t>(std::max(0, cap - base)) * kv_floats_per_pos;
    if (s.kv.size() < need) s.kv.resize(need);
  }

  void check_tokens(std::span<const int32_t> ids, const char* what) const {
    const int64_t V = models[0]->config().vocab_size;
    for (int32_t t : ids)
      if (t < 0 || t >= V)
        fail("infer", "{}: token id {} is outside the vocabulary [0, {})", what, t, V);
  }
  void check_length(size_t n, const char* what) const {
    if (n > static_cast<size_t>(max_context))
      fail("infer", "{} of {} tokens is longer than the context ({} tokens)", what, n, max_context);
  }

  template <class T>
  static void grow(std::vector<T>& v, size_t n) {
    if (v.size() < n) v.resize(n);
  }

  // Runs `rows` (in order; a sequence's rows in increasing position) through the model in
  // micro-batches. For every row with `logits` set, consumer(row_index, logits[vocab]) is called.
  template <class Consumer>
  void forward(std::span<const Row> rows, Consumer&& consumer) {
    const size_t mb = static_cast<size_t>(options.max_batch_tokens);
    for (size_t start = 0; start < rows.size(); start += mb) {
      size_t n = std::min(mb, rows.size() - start);
      forward_batch(rows.subspan(start, n),
                    [&](size_t i, const float* l) { consumer(start + i, l); });
    }
  }

  template <class Consumer>
  void forward_batch(std::span<const Row> rows, Consumer&& consumer) {
    const ModelConfig& c0 = models[0]->config();
    const int64_t n = static_cast<int64_t>(rows.size()), H = c0.hidden_size, V = c0.vocab_size;
    ++stats.forward_calls;
    int64_t maxq = 0, maxkv = 0, maxi = 0;
    for (const Hop& h : hops)
      maxq = std::max(maxq, h.qdim), maxkv = std::max(maxkv, h.kvdim),
      maxi = std::max(maxi, h.inter);
    grow(x, n * H), grow(xn, n * std::max(H, maxq)), grow(q, n * maxq), grow(k, n * maxkv),
        grow(v, n * maxkv);
    grow(att, n * maxq), grow(tmp, n * H), grow(g, n * maxi), grow(u, n * maxi);
    for (auto& s : score_scratch) grow(s, static_cast<size_t>(max_context));

    // Embedding rows (converted from the stored dtype).
    const size_t esz = dtype_size(embed_v.dtype);
    pool.parallel_for(n, [&](int64_t r, int) {
      EM_ASSERT(rows[r].pos < rows[r].seq->cap);
      convert_to_f32(embed_v.dtype, embed_v.data + static_cast<size_t>(rows[r].token) * H * esz,
                     &x[r * H], H);
    });

    for (const Hop& hop : hops) run_hop(hop, rows);
    for (const Row& r : rows) r.seq->len = std::max(r.seq->len, r.pos + 1);

    // Final norm and head for the rows that want logits, kLogitRows at a time.
    constexpr int64_t kLogitRows = 128;
    grow(final_x, kLogitRows * H), grow(logits_buf, kLogitRows * V);
    const float eps = static_cast<float>(c0.rms_norm_eps);
    std::vector<int64_t>& sel = selected_;
    sel.clear();
    for (int64_t r = 0; r < n; ++r)
      if (rows[r].logits) sel.push_back(r);
    for (size_t s0 = 0; s0 < sel.size(); s0 += kLogitRows) {
      const int64_t m = std::min<int64_t>(kLogitRows, sel.size() - s0);
      for (int64_t i = 0; i < m; ++i)
        rms_norm(&x[sel[s0 + i] * H], &final_x[i * H], H, final_norm.data(), eps);
      infer_detail::linear(pool, head, final_x.data(), m, logits_buf.data(), mm);
      for (int64_t i = 0; i < m; ++i)
        consumer(static_cast<size_t>(sel[s0 + i]), &logits_buf[i * V]);
    }
  }
  std::vector<int64_t> selected_;
  std::vector<std::pair<int64_t, int64_t>> blocks_;  // attention row blocks: (first row, count)

  void run_hop(const Hop& hop, std::span<const Row> rows) {
    const LayerWeights& L = *hop.w;
    const ModelConfig& c = *L.cfg;
    const int64_t n = static_cast<int64_t>(rows.size()), H = c.hidden_size;
    const int64_t nh = hop.nh, nkv = hop.nkv, hd = hop.hd, qd = hop.qdim, kvd = hop.kvdim,
                  I = hop.inter;
    const float eps = static_cast<float>(c.rms_norm_eps);

    // x <- s * x (the residual stream is scaled before the layer; see LayerHop), then RMSNorm.
    pool.parallel_for(n, [&](int64_t r, int) {
      float* xr = &x[r * H];
      if (hop.scale != 1.0f)
        for (int64_t i = 0; i < H; ++i) xr[i] *= hop.scale;
      rms_norm(xr, &xn[r * H], H, L.attn_norm.data(), eps);
    });
    infer_detail::linear(pool, L.q, xn.data(), n, q.data(), mm);
    infer_detail::linear(pool, L.k, xn.data(), n, k.data(), mm);
    infer_detail::linear(pool, L.v, xn.data(), n, v.data(), mm);

    // Biases, q/k norms per head (Qwen3, before RoPE), RoPE, and K/V into the cache.
    pool.parallel_for(n, [&](int64_t r, int) {
      float* qr = &q[r * qd];
      float* kr = &k[r * kvd];
      float* vr = &v[r * kvd];
      if (!L.bq.empty()) {
        for (int64_t i = 0; i < qd; ++i) qr[i] += L.bq[i];
        for (int64_t i = 0; i < kvd; ++i) kr[i] += L.bk[i], vr[i] += L.bv[i];
      }
      for (int64_t a = 0; a < nh; ++a) {
        if (!L.q_norm.empty()) rms_norm(qr + a * hd, qr + a * hd, hd, L.q_norm.data(), eps);
        rope_apply(qr + a * hd, static_cast<int>(hd), L.inv_freq.data(), rows[r].pos);
      }
      for (int64_t a = 0; a < nkv; ++a) {
        if (!L.k_norm.empty()) rms_norm(kr + a * hd, kr + a * hd, hd, L.k_norm.data(), eps);
        rope_apply(kr + a * hd, static_cast<int>(hd), L.inv_freq.data(), rows[r].pos);
      }
      Seq& s = *rows[r].seq;
      std::copy(kr, kr + kvd, s.own_row(rows[r].pos, hop.kv_offset, kv_floats_per_pos));
      std::copy(vr, vr + kvd, s.own_row(rows[r].pos, hop.kv_offset + kvd, kv_floats_per_pos));
    });

    // Causal attention over each row's sequence positions [0, pos]; query head a reads kv head
    // a / (nh / nkv) (repeat_kv); softmax in f32. Work items are (block of consecutive rows of one
    // sequence, head). Blocks of several rows (prefill) use sgemm for QKᵀ and PV; single rows
    // (decode) use dot products.
    const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
    const int64_t group = nh / nkv;
    const int64_t window =
        c.sliding_window ? *c.sliding_window : std::numeric_limits<int64_t>::max();
    constexpr int64_t kAttnRows = 64;
    blocks_.clear();
    for (int64_t r = 0; r < n; ++r) {
      const bool extend = !blocks_.empty() && rows[r].seq == rows[r - 1].seq &&
                          rows[r].pos == rows[r - 1].pos + 1 &&
                          r - blocks_.back().first < kAttnRows;
      if (extend)
        ++blocks_.back().second;
      else
        blocks_.emplace_back(r, 1);
    }
    const int64_t kvfp = kv_floats_per_pos;
    pool.parallel_for(static_cast<int64_t>(blocks_.size()) * nh, [&](int64_t item, int thread) {
      const auto [r0, m] = blocks_[item / nh];
      const int64_t a = item % nh, gi = a / group;
      Seq& s = *rows[r0].seq;
      const float* qv = &q[r0 * qd + a * hd];
      float* out = &att[r0 * qd + a * hd];
      auto key_base = [&](int64_t j,
                          int64_t off) -> const float* {  // K (off) or V (off + kvd) row of key j
        if (j < s.base) return s.parent->kv.data() + j * kvfp + off + gi * hd;
        return s.kv.data() + (j - s.base) * kvfp + off + gi * hd;
      };
      if (m < 4) {
        float* score = score_scratch[thread].data();
        for (int64_t i = 0; i < m; ++i) {
          const int64_t pos = rows[r0 + i].pos;
          const int64_t first = std::max<int64_t>(0, pos - window + 1);  // pos - j < window
          float mx = -std::numeric_limits<float>::infinity();
          for (int64_t j = first; j <= pos; ++j) {
            float sc = infer_detail::dot(qv + i * qd, key_base(j, hop.kv_offset), hd) * scale;
            score[j] = sc;
            mx = std::max(mx, sc);
          }
          float sum = 0;
          for (int64_t j = first; j <= pos; ++j) sum += (score[j] = std::exp(score[j] - mx));
          const float inv = 1.0f / sum;
          float* o = out + i * qd;
          std::fill(o, o + hd, 0.0f);
          for (int64_t j = first; j <= pos; ++j) {
            const float p = score[j] * inv;
            const float* vr = key_base(j, hop.kv_offset + kvd);
            for (int64_t e = 0; e < hd; ++e) o[e] += p * vr[e];
          }
        }
        return;
      }
      // S[m x L] = Q_blk · K[0, L)ᵀ, keys from the parent's cache ([0, base)) and the own one.
      const int64_t p0 = rows[r0].pos, L = rows[r0 + m - 1].pos + 1;
      auto& S = score_scratch[thread];
      if (static_cast<int64_t>(S.size()) < m * L) S.resize(m * L);
      const int64_t nparent = std::min<int64_t>(s.base, L);
      auto qk = [&](int64_t j0, int64_t j1) {
        if (j1 <= j0) return;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m),
                    static_cast<int>(j1 - j0), static_cast<int>(hd), scale, qv,
                    static_cast<int>(qd), key_base(j0, hop.kv_offset), static_cast<int>(kvfp), 0.0f,
                    S.data() + j0, static_cast<int>(L));
      };
      qk(0, nparent);
      qk(nparent, L);
      for (int64_t i = 0; i < m; ++i) {
        const int64_t pos = p0 + i, first = std::max<int64_t>(0, pos - window + 1);
        float* row = S.data() + i * L;
        float mx = -std::numeric_limits<float>::infinity();
        for (int64_t j = first; j <= pos; ++j) mx = std::max(mx, row[j]);
        float sum = 0;
        for (int64_t j = first; j <= pos; ++j) sum += (row[j] = std::exp(row[j] - mx));
        const float inv = 1.0f / sum;
        std::fill(row, row + first, 0.0f);
        for (int64_t j = first; j <= pos; ++j) row[j] *= inv;
        std::fill(row + pos + 1, row + L, 0.0f);  // causal: later keys of the block
      }
      // O[m x hd] = P · V[0, L)
      auto pv = [&](int64_t j0, int64_t j1, float beta) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(m),
                    static_cast<int>(hd), static_cast<int>(j1 - j0), 1.0f, S.data() + j0,
                    static_cast<int>(L), key_base(j0, hop.kv_offset + kvd), static_cast<int>(kvfp),
                    beta, out, static_cast<int>(qd));
      };
      if (nparent > 0) pv(0, nparent, 0.0f);
      if (L > nparent) pv(nparent, L, nparent > 0 ? 1.0f : 0.0f);
    });

    infer_detail::linear(pool, L.o, att.data(), n, tmp.data(), mm);
    pool.parallel_for(n, [&](int64_t r, int) {
      float* xr = &x[r * H];
      const float* t = &tmp[r * H];
      for (int64_t i = 0; i < H; ++i) xr[i] += t[i];
      if (!L.bo.empty())
        for (int64_t i = 0; i < H; ++i) xr[i] += L.bo[i];
      rms_norm(xr, &xn[r * H], H, L.mlp_norm.data(), eps);
    });

    // SwiGLU: down(silu(gate(n)) * up(n)).
    infer_detail::linear(pool, L.gate, xn.data(), n, g.data(), mm);
    infer_detail::linear(pool, L.up, xn.data(), n, u.data(), mm);
    pool.parallel_for(n, [&](int64_t r, int) {
      float* gr = &g[r * I];
      const float* ur = &u[r * I];
      if (!L.bg.empty())
        for (int64_t i = 0; i < I; ++i) gr[i] = silu(gr[i] + L.bg[i]) * (ur[i] + L.bu[i]);
      else
        for (int64_t i = 0; i < I; ++i) gr[i] = silu(gr[i]) * ur[i];
    });
    infer_detail::linear(pool, L.down, g.data(), n, tmp.data(), mm);
    pool.parallel_for(n, [&](int64_t r, int) {
      float* xr = &x[r * H];
      const float* t = &tmp[r * H];
      for (int64_t i = 0; i < H; ++i) xr[i] += t[i];
      if (!L.bd.empty())
        for (int64_t i = 0; i < H; ++i) xr[i] += L.bd[i];
    });
  }

  // log-softmax of `target` over the first `vocab` logits; also whether target is the argmax.
  static std::pair<double, bool> logprob(const float* logits, int64_t vocab, int32_t target) {
    int64_t best = 0;
    for (int64_t i = 1; i < vocab; ++i)
      if (logits[i] > logits[best]) best = i;
    const double mx = logits[best];
    double sum = 0;
    for (int64_t i = 0; i < vocab; ++i) sum += std::exp(static_cast<double>(logits[i]) - mx);
    return {static_cast<double>(logits[target]) - mx - std::log(sum), best == target};
  }
  static int32_t argmax(const float* logits, int64_t vocab) {
    int64_t best = 0;
    for (int64_t i = 1; i < vocab; ++i)
      if (logits[i] > logits[best]) best = i;
    return static_cast<int32_t>(best);
  }
  int64_t score_vocab() const {
    const int64_t V = models[0]->config().vocab_size;
    return options.score_vocab > 0 ? std::min<int64_t>(options.score_vocab, V) : V;
  }

  std::vector<Row> rows_;  // reused row list
};

Engine::Engine(std::shared_ptr<const WeightSource> weights, EngineOptions options)
    : impl_(std::make_unique<Impl>(
          std::vector<std::shared_ptr<const WeightSource>>{std::move(weights)}, options)) {
  std::vector<LayerHop> path;
  for (int i = 0; i < impl_->models[0]->config().num_hidden_layers; ++i)
    path.push_back({0, i, 1.0f});
  impl_->set_path(path);
  impl_->refresh();
}

Engine::Engine(std::vector<std::shared_ptr<const WeightSource>> models, std::vector<LayerHop> path,
               EngineOptions options)
    : impl_(std::make_unique<Impl>(std::move(models), options)) {
  impl_->custom_path = true;
  impl_->set_path(path);
  impl_->refresh();
}

Engine::~Engine() = default;

const ModelConfig& Engine::config() const {
  return impl_->models[0]->config();
}

void Engine::weights_changed() {
  impl_->refresh();
}

void Engine::set_path(std::vector<LayerHop> path) {
  impl_->set_path(path);
}

Engine::Stats Engine::stats() const {
  return impl_->stats;
}

std::vector<std::vector<float>> Engine::forward_logits(
    const std::vector<std::vector<int32_t>>& sequences) {
  Impl& m = *impl_;
  const int64_t V = config().vocab_size;
  std::vector<std::vector<float>> out(sequences.size());
  auto& rows = m.rows_;
  rows.clear();
  std::vector<std::pair<size_t, int>> where;  // row -> (sequence, position)
  for (size_t b = 0; b < sequences.size(); ++b) {
    m.check_tokens(sequences[b], "forward_logits");
    m.check_length(sequences[b].size(), "a sequence");
    Impl::Seq& s = m.seq(b);
    m.reset_seq(s, nullptr, 0, static_cast<int>(sequences[b].size()));
    out[b].resize(sequences[b].size() * V);
    for (size_t t = 0; t < sequences[b].size(); ++t) {
      rows.push_back({&s, static_cast<int>(t), sequences[b][t], true});
      where.emplace_back(b, static_cast<int>(t));
    }
  }
  m.stats.prefill_tokens += rows.size();
  m.forward(rows, [&](size_t r, const float* logits) {
    auto [b, t] = where[r];
    std::copy(logits, logits + V, out[b].begin() + static_cast<int64_t>(t) * V);
  });
  return out;
}

std::vector<Engine::LoglikResult> Engine::loglikelihood(
    const std::vector<LoglikRequest>& requests) {
  Impl& m = *impl_;
  const int64_t SV = m.score_vocab();
  std::vector<LoglikResult> results(requests.size());
  // Unique contexts, in first-seen order; each request points at its context.
  std::map<std::vector<int32_t>, size_t> ctx_index;
  std::vector<const std::vector<int32_t>*> contexts;
  std::vector<std::vector<size_t>> ctx_requests;
  for (size_t i = 0; i < requests.size(); ++i) {
    const auto& r = requests[i];
    if (r.context.empty())
      fail("infer", "loglikelihood request {}: the context is empty (start it with BOS)", i);
    if (r.continuation.empty())
      fail("infer", "loglikelihood request {}: the continuation is empty", i);
    m.check_tokens(r.context, "loglikelihood context");
    m.check_tokens(r.continuation, "loglikelihood continuation");
    m.check_length(r.context.size() + r.continuation.size() - 1, "a loglikelihood request");
    auto [it, added] = ctx_index.try_emplace(r.context, contexts.size());
    if (added) {
      contexts.push_back(&it->first);
      ctx_requests.emplace_back();
    }
    ctx_requests[it->second].push_back(i);
    results[i].token_logprobs.assign(r.continuation.size(), 0.0f);
    results[i].greedy = true;
  }
  // Groups of contexts whose caches are alive together: bounded so memory stays near what a few
  // micro-batches need.
  const size_t budget = static_cast<size_t>(m.options.max_batch_tokens) * 4;
  auto score = [&](size_t req, size_t tok, const float* logits) {
    auto [lp, greedy] = Impl::logprob(logits, SV, requests[req].continuation[tok]);
    results[req].token_logprobs[tok] = static_cast<float>(lp);
    results[req].logprob += lp;
    results[req].greedy = results[req].greedy && greedy;
  };
  auto& rows = m.rows_;
  for (size_t c0 = 0; c0 < contexts.size();) {
    size_t c1 = c0, tokens = 0;
    while (c1 < contexts.size() && (c1 == c0 || tokens + contexts[c1]->size() <= budget))
      tokens += contexts[c1++]->size();
    // 1. Prefill the contexts; the logits of the last position predict every continuation's first
    // token.
    rows.clear();
    for (size_t c = c0; c < c1; ++c) {
      Impl::Seq& s = m.seq(c - c0);
      m.reset_seq(s, nullptr, 0, static_cast<int>(contexts[c]->size()));
      for (size_t t = 0; t < contexts[c]->size(); ++t)
        rows.push_back({&s, static_cast<int>(t), (*contexts[c])[t], t + 1 == contexts[c]->size()});
    }
    std::vector<size_t> row_ctx(rows.size());
    for (size_t r = 0, c = c0; c < c1; ++c)
      for (size_t t = 0; t < contexts[c]->size(); ++t) row_ctx[r++] = c;
    m.stats.prefill_tokens += rows.size();
    m.forward(rows, [&](size_t r, const float* logits) {
      for (size_t req : ctx_requests[row_ctx[r]]) score(req, 0, logits);
    });
    // 2. Continuations, each a child sequence of its context's cache: feed all but the last token.
    // Children are run in batches of about `budget` rows, reusing their cache slots, so memory
    // stays bounded however many continuations share a context.
    rows.clear();
    std::vector<std::pair<size_t, size_t>>
        row_req;  // row -> (request, continuation token predicted)
    size_t child = c1 - c0;
    auto flush = [&] {
      m.stats.prefill_tokens += rows.size();
      m.forward(rows, [&](size_t r, const float* logits) {
        score(row_req[r].first, row_req[r].second, logits);
      });
      rows.clear();
      row_req.clear();
      child = c1 - c0;
    };
    for (size_t c = c0; c < c1; ++c) {
      for (size_t req : ctx_requests[c]) {
        const auto& cont = requests[req].continuation;
        if (cont.size() < 2) continue;
        if (!rows.empty() && rows.size() + cont.size() - 1 > budget) flush();
        const int base = static_cast<int>(contexts[c]->size());
        Impl::Seq& s = m.seq(child++);
        m.reset_seq(s, &m.seq(c - c0), base, base + static_cast<int>(cont.size()) - 1);
        for (size_t t = 0; t + 1 < cont.size(); ++t) {
          rows.push_back({&s, base + static_cast<int>(t), cont[t], true});
          row_req.emplace_back(req, t + 1);
        }
      }
    }
    if (!rows.empty()) flush();
    c0 = c1;
  }
  return results;
}

std::vector<Engine::GenerateResult> Engine::generate_with(
    const std::vector<GenerateRequest>& requests, const DecodeFn& decode,
    std::vector<int32_t> eos_ids, const std::function<void(size_t, int32_t)>& on_token,
    int argmax_vocab) {
  Impl& m = *impl_;
  const int64_t V = config().vocab_size;
  int64_t AV = argmax_vocab > 0 ? std::min<int64_t>(argmax_vocab, V) : m.score_vocab();
  if (eos_ids.empty())
    for (int64_t e : config().eos_token_ids) eos_ids.push_back(static_cast<int32_t>(e));
  const size_t n = requests.size();
  std::vector<GenerateResult> results(n);
  for (size_t i = 0; i < n; ++i) {
    const auto& r = requests[i];
    if (r.prompt.empty()) fail("infer", "generate request {}: the prompt is empty", i);
    m.check_tokens(r.prompt, "generate prompt");
    if (r.prompt.size() >= static_cast<size_t>(m.max_context))
      fail("infer",
           "generate request {}: the prompt of {} tokens does not fit the context ({} tokens) with "
           "room to generate",
           i, r.prompt.size(), m.max_context);
    if (!r.stop_strings.empty() && !decode)
      fail("infer", "generate request {}: stop strings need a tokenizer to decode the text", i);
    if (r.max_new_tokens < 0) fail("infer", "generate request {}: max_new_tokens is negative", i);
  }
  std::vector<int32_t> next(n, 0);
  std::vector<char> active(n, 0);
  auto& rows = m.rows_;
  rows.clear();
  std::vector<size_t> row_seq;  // row -> request
  for (size_t i = 0; i < n; ++i) {
    Impl::Seq& s = m.seq(i);
    const int cap = static_cast<int>(
        std::min<size_t>(requests[i].prompt.size() + requests[i].max_new_tokens, m.max_context));
    m.reset_seq(s, nullptr, 0, std::max(cap, static_cast<int>(requests[i].prompt.size())));
    active[i] = requests[i].max_new_tokens > 0;
    results[i].tokens.reserve(requests[i].max_new_tokens);  // no allocation in the decode loop
    if (!active[i]) continue;
    for (size_t t = 0; t < requests[i].prompt.size(); ++t) {
      rows.push_back(
          {&s, static_cast<int>(t), requests[i].prompt[t], t + 1 == requests[i].prompt.size()});
      row_seq.push_back(i);
    }
  }
  auto take_logits = [&](size_t r, const float* logits) {
    next[row_seq[r]] = Impl::argmax(logits, AV);
  };
  m.stats.prefill_tokens += rows.size();
  m.forward(rows, take_logits);
  for (;;) {
    rows.clear();
    row_seq.clear();
    for (size_t i = 0; i < n; ++i) {
      if (!active[i]) continue;
      GenerateResult& res = results[i];
      const int32_t tok = next[i];
      if (std::find(eos_ids.begin(), eos_ids.end(), tok) != eos_ids.end()) {
        res.stop = StopReason::Eos;
        active[i] = 0;
        continue;
      }
      res.tokens.push_back(tok);
      if (on_token) on_token(i, tok);
      if (!requests[i].stop_strings.empty()) {
        res.text = decode(res.tokens);
        size_t cut = std::string::npos;
        for (const auto& stop : requests[i].stop_strings)
          if (!stop.empty()) cut = std::min(cut, res.text.find(stop));
        if (cut != std::string::npos) {
          res.text.resize(cut);
          res.stop = StopReason::StopString;
          active[i] = 0;
          continue;
        }
      }
      if (static_cast<int>(res.tokens.size()) >= requests[i].max_new_tokens) {
        res.stop = StopReason::MaxTokens;
        active[i] = 0;
        continue;
      }
      Impl::Seq& s = m.seq(i);
      const int pos = static_cast<int>(requests[i].prompt.size() + res.tokens.size()) - 1;
      // Prompt plus generated tokens never exceed the context (as HF's max_length).
      if (pos + 1 >= m.max_context) {
        res.stop = StopReason::ContextFull;
        active[i] = 0;
        continue;
      }
      rows.push_back({&s, pos, tok, true});
      row_seq.push_back(i);
    }
    if (rows.empty()) break;
    m.stats.decode_tokens += rows.size();
    m.forward(rows, take_logits);
  }
  if (decode)
    for (size_t i = 0; i < n; ++i)
      if (results[i].stop != StopReason::StopString) results[i].text = decode(results[i].tokens);
  return results;
}

}  // namespace evomerge
