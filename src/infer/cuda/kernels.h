// Internal to the CUDA backend: launchers of its own kernels (kernels.cu). Every pointer is device
// memory; every launch is asynchronous on `stream`. Shapes are row-major; "bf16" is raw uint16_t
// bits (bfloat16, round-to-nearest-even when written). The math follows the CPU backend
// (cpu/cpu_backend.cpp) with f32 arithmetic; tests hold each kernel to plain loops
// (cuda/kernels_test.cpp).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace evomerge::cuda {

using bf16_t = uint16_t;

// A KV cache slot on the device: K/V rows [(cap - base) x kv_floats_per_pos] f32 at `kv`;
// positions below `base` live in slot `parent`.
struct SlotDesc {
  float* kv = nullptr;
  int base = 0;
  int parent = -1;
};

// A row of the micro-batch: KV slot and absolute position.
struct RowDesc {
  int seq = 0;
  int pos = 0;
};

// x[r] = f32(table[tokens[r]]), table [V x H] bf16, x [n x H].
void embed_rows(const bf16_t* table, const int32_t* tokens, int n, int H, float* x,
                cudaStream_t stream);

// x[r] *= scale (in place, when scale != 1), then out[r] = bf16(RMSNorm(x[r]) * weight), eps in
// f32 as HF. `rows` (may be null: every row r < n) picks x's rows: out row i is x row rows[i].
void scale_rms_norm(float* x, const int32_t* rows, int n, int H, float scale, const float* weight,
                    float eps, bf16_t* out, cudaStream_t stream);

// x[r] += t[r] (+ bias), then out[r] = bf16(RMSNorm(x[r]) * weight); out may be null (no norm).
void residual_add_norm(float* x, const float* t, const float* bias, int n, int H,
                       const float* weight, float eps, bf16_t* out, cudaStream_t stream);

// Per row r: q/k/v += biases (may be null), per-head RMSNorm of q and k (q_norm/k_norm [hd], may
// be null; Qwen3), rotate-half RoPE of q and k at rows[r].pos with inv_freq [hd/2], then K and V
// into the row's slot at (pos - base) * kvfp + kv_offset (V at + nkv*hd).
// q [n x nh*hd], k/v [n x nkv*hd] f32.
struct QkvParams {
  int n = 0, nh = 0, nkv = 0, hd = 0;
  const float *bq = nullptr, *bk = nullptr, *bv = nullptr;
  const float *q_norm = nullptr, *k_norm = nullptr;
  const float* inv_freq = nullptr;
  float eps = 1e-6f;
  int64_t kv_offset = 0, kvfp = 0;
};
void qkv_rope_store(float* q, const float* k, const float* v, const RowDesc* rows,
                    const SlotDesc* slots, const QkvParams& p, cudaStream_t stream);

// Causal attention of each row over its slot's positions [max(0, pos - window + 1), pos]: query
// head a reads kv head a / (nh / nkv); scores scaled by 1/sqrt(hd), softmax in f32 (online, exact
// up to rounding). q [n x nh*hd] f32 (after RoPE), out [n x nh*hd] bf16. hd <= 256.
struct AttnParams {
  int n = 0, nh = 0, nkv = 0, hd = 0;
  int64_t window = INT64_MAX;
  int64_t kv_offset = 0, kvfp = 0;
};
void attention(const float* q, const RowDesc* rows, const SlotDesc* slots, const AttnParams& p,
               bf16_t* out, cudaStream_t stream);

// out = bf16(silu(g + bg) * (u + bu)), biases may be null; g/u [n x I] f32.
void swiglu(const float* g, const float* u, const float* bg, const float* bu, int64_t count, int I,
            bf16_t* out, cudaStream_t stream);

// Per row r of logits [m x V]: its first argmax over [0, vocab), max and log-sum-exp (the sum of
// exp in double, as the CPU).
struct RowStats {
  int32_t argmax = 0;
  float max = 0;
  double lse = 0;  // log(sum_i exp(l_i - max))
};
void row_stats(const float* logits, int m, int64_t V, int64_t vocab, RowStats* out,
               cudaStream_t stream);
// out_lp[t] = logits[sel[t]][token[t]] - max - lse, out_greedy[t] = argmax == token[t].
void target_logprobs(const float* logits, int64_t V, const RowStats* stats, const int64_t* sel,
                     const int32_t* token, int count, double* out_lp, int32_t* out_greedy,
                     cudaStream_t stream);

// f32 <-> bf16 (round to nearest even) conversions on the device.
void f32_to_bf16(const float* in, int64_t count, bf16_t* out, cudaStream_t stream);

}  // namespace evomerge::cuda
