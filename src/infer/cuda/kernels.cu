// The CUDA backend's own kernels (declared in kernels.h). Plain CUDA C++, no fast-math: expf,
// sinf, cosf and sqrtf are the accurate versions, so results stay close to the CPU backend's f32.
#include <cfloat>
#include <cmath>

#include "kernels.h"

namespace evomerge::cuda {
namespace {

constexpr int kWarp = 32;

__device__ __forceinline__ float bf16_to_f32(bf16_t b) {
  return __uint_as_float(static_cast<uint32_t>(b) << 16);
}

// Round to nearest even, NaN kept a (quiet) NaN: the same rule as tensor/convert.h.
__device__ __forceinline__ bf16_t f32_to_bf16_rne(float f) {
  uint32_t u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<bf16_t>((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<bf16_t>(u >> 16);
}

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = kWarp / 2; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, <= 1024); every thread gets the result.
__device__ float block_sum(float v) {
  __shared__ float part[kWarp];
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  v = warp_sum(v);
  __syncthreads();  // `part` may still be read by a previous call
  if (lane == 0) part[warp] = v;
  __syncthreads();
  const int warps = blockDim.x / kWarp;
  float s = lane < warps ? part[lane] : 0.0f;
  return warp_sum(s);
}

__device__ float silu(float v) {
  return v / (1.0f + expf(-v));
}

__global__ void embed_kernel(const bf16_t* table, const int32_t* tokens, int H, float* x) {
  const int r = blockIdx.x;
  const bf16_t* src = table + static_cast<int64_t>(tokens[r]) * H;
  float* dst = x + static_cast<int64_t>(r) * H;
  for (int i = threadIdx.x; i < H; i += blockDim.x) dst[i] = bf16_to_f32(src[i]);
}

__global__ void scale_rms_norm_kernel(float* x, const int32_t* rows, int H, float scale,
                                      const float* weight, float eps, bf16_t* out) {
  const int i = blockIdx.x;
  float* xr = x + static_cast<int64_t>(rows ? rows[i] : i) * H;
  float ss = 0.0f;
  for (int j = threadIdx.x; j < H; j += blockDim.x) {
    float v = xr[j];
    if (scale != 1.0f) xr[j] = v = v * scale;
    ss += v * v;
  }
  const float inv = 1.0f / sqrtf(block_sum(ss) / static_cast<float>(H) + eps);
  bf16_t* o = out + static_cast<int64_t>(i) * H;
  for (int j = threadIdx.x; j < H; j += blockDim.x)
    o[j] = f32_to_bf16_rne(weight[j] * (xr[j] * inv));
}

__global__ void residual_add_norm_kernel(float* x, const float* t, const float* bias, int H,
                                         const float* weight, float eps, bf16_t* out) {
  const int r = blockIdx.x;
  float* xr = x + static_cast<int64_t>(r) * H;
  const float* tr = t + static_cast<int64_t>(r) * H;
  float ss = 0.0f;
  for (int j = threadIdx.x; j < H; j += blockDim.x) {
    float v = xr[j] + tr[j];
    if (bias) v += bias[j];
    xr[j] = v;
    ss += v * v;
  }
  if (!out) return;
  const float inv = 1.0f / sqrtf(block_sum(ss) / static_cast<float>(H) + eps);
  bf16_t* o = out + static_cast<int64_t>(r) * H;
  for (int j = threadIdx.x; j < H; j += blockDim.x)
    o[j] = f32_to_bf16_rne(weight[j] * (xr[j] * inv));
}

// One block per (row, head) over the nh query heads then the nkv key heads; K heads also store
// their V head. The head vector is staged in shared memory (hd <= 256 floats).
__global__ void qkv_rope_store_kernel(float* q, const float* k, const float* v, const RowDesc* rows,
                                      const SlotDesc* slots, QkvParams p) {
  __shared__ float h[256];
  const int r = blockIdx.x, head = blockIdx.y, hd = p.hd, half = hd / 2;
  const bool is_q = head < p.nh;
  const int a = is_q ? head : head - p.nh;
  const int64_t qd = static_cast<int64_t>(p.nh) * hd, kvd = static_cast<int64_t>(p.nkv) * hd;
  const float* src = is_q ? q + r * qd + a * hd : k + r * kvd + a * hd;
  const float* bias = is_q ? p.bq : p.bk;
  const float* norm = is_q ? p.q_norm : p.k_norm;
  float ss = 0.0f;
  for (int i = threadIdx.x; i < hd; i += blockDim.x) {
    float val = src[i];
    if (bias) val += bias[a * hd + i];
    h[i] = val;
    ss += val * val;
  }
  __syncthreads();
  if (norm) {
    const float inv = 1.0f / sqrtf(block_sum(ss) / static_cast<float>(hd) + p.eps);
    for (int i = threadIdx.x; i < hd; i += blockDim.x) h[i] = norm[i] * (h[i] * inv);
    __syncthreads();
  }
  const RowDesc row = rows[r];
  const float pos = static_cast<float>(row.pos);
  float* dst;
  if (is_q) {
    dst = q + r * qd + a * hd;
  } else {
    const SlotDesc s = slots[row.seq];
    dst = s.kv + static_cast<int64_t>(row.pos - s.base) * p.kvfp + p.kv_offset + a * hd;
    const float* vs = v + r * kvd + a * hd;
    for (int i = threadIdx.x; i < hd; i += blockDim.x)
      dst[kvd + i] = vs[i] + (p.bv ? p.bv[a * hd + i] : 0.0f);
  }
  for (int i = threadIdx.x; i < half; i += blockDim.x) {
    const float angle = pos * p.inv_freq[i];
    const float c = cosf(angle), sn = sinf(angle);
    const float x0 = h[i], x1 = h[i + half];
    dst[i] = x0 * c - x1 * sn;
    dst[i + half] = x1 * c + x0 * sn;
  }
}

// One block per (row, kv head); warp w serves query head g = w % group of that kv head over the
// keys j = first + w / group (mod splits), with an online softmax (running max m, sum l and
// output acc); the splits of a head are merged at the end. Each lane holds hd/32 dimensions.
constexpr int kMaxHeadDim = 256, kLaneDims = kMaxHeadDim / kWarp;

__global__ void attention_kernel(const float* q, const RowDesc* rows, const SlotDesc* slots,
                                 AttnParams p, int splits, bf16_t* out) {
  extern __shared__ float smem[];  // m[W], l[W], acc[W][hd]
  const int r = blockIdx.x, kvh = blockIdx.y, hd = p.hd;
  const int group = p.nh / p.nkv, warps = blockDim.x / kWarp;
  const int lane = threadIdx.x % kWarp, w = threadIdx.x / kWarp;
  const int g = w % group, split = w / group, a = kvh * group + g;
  const int64_t qd = static_cast<int64_t>(p.nh) * hd;
  const float scale = 1.0f / sqrtf(static_cast<float>(hd));
  float qr[kLaneDims], acc[kLaneDims];
  for (int i = 0; i < kLaneDims; ++i) {
    const int d = lane + kWarp * i;
    qr[i] = d < hd ? q[r * qd + static_cast<int64_t>(a) * hd + d] : 0.0f;
    acc[i] = 0.0f;
  }
  const RowDesc row = rows[r];
  const SlotDesc s = slots[row.seq];
  const float* parent_kv = s.parent >= 0 ? slots[s.parent].kv : nullptr;
  const int64_t pos = row.pos;
  const int64_t first = p.window < pos + 1 ? pos - p.window + 1 : 0;
  const int64_t off = p.kv_offset + static_cast<int64_t>(kvh) * hd;
  const int64_t kvd = static_cast<int64_t>(p.nkv) * hd;
  float m = -INFINITY, l = 0.0f;
  for (int64_t j = first + split; j <= pos; j += splits) {
    const float* kr =
        j < s.base ? parent_kv + j * p.kvfp + off : s.kv + (j - s.base) * p.kvfp + off;
    float dot = 0.0f;
    for (int i = 0; i < kLaneDims; ++i) {
      const int d = lane + kWarp * i;
      if (d < hd) dot += qr[i] * kr[d];
    }
    const float sc = warp_sum(dot) * scale;
    const float m_new = fmaxf(m, sc);
    const float corr = expf(m - m_new), pj = expf(sc - m_new);
    l = l * corr + pj;
    const float* vr = kr + kvd;
    for (int i = 0; i < kLaneDims; ++i) {
      const int d = lane + kWarp * i;
      if (d < hd) acc[i] = acc[i] * corr + pj * vr[d];
    }
    m = m_new;
  }
  float* sm = smem;
  float* sl = smem + warps;
  float* sacc = smem + 2 * warps;
  if (lane == 0) sm[w] = m, sl[w] = l;
  for (int i = 0; i < kLaneDims; ++i) {
    const int d = lane + kWarp * i;
    if (d < hd) sacc[w * hd + d] = acc[i];
  }
  __syncthreads();
  if (split != 0) return;
  float M = -INFINITY;
  for (int t = 0; t < splits; ++t) M = fmaxf(M, sm[t * group + g]);
  float L = 0.0f;
  for (int t = 0; t < splits; ++t) L += sl[t * group + g] * expf(sm[t * group + g] - M);
  const float invL = 1.0f / L;
  for (int d = lane; d < hd; d += kWarp) {
    float o = 0.0f;
    for (int t = 0; t < splits; ++t) {
      const int ww = t * group + g;
      o += sacc[ww * hd + d] * expf(sm[ww] - M);
    }
    out[r * qd + static_cast<int64_t>(a) * hd + d] = f32_to_bf16_rne(o * invL);
  }
}

__global__ void swiglu_kernel(const float* g, const float* u, const float* bg, const float* bu,
                              int64_t count, int I, bf16_t* out) {
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < count;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int i = static_cast<int>(e % I);
    const float gv = bg ? g[e] + bg[i] : g[e];
    const float uv = bu ? u[e] + bu[i] : u[e];
    out[e] = f32_to_bf16_rne(silu(gv) * uv);
  }
}

// First argmax (ties: the lowest index, as the CPU's strict >), max, then sum exp in double.
__global__ void row_stats_kernel(const float* logits, int64_t V, int64_t vocab, RowStats* out) {
  __shared__ float best_v[1024 / kWarp];
  __shared__ int64_t best_i[1024 / kWarp];
  __shared__ double part[1024 / kWarp];
  const float* l = logits + blockIdx.x * V;
  float bv = -INFINITY;
  int64_t bi = vocab;  // none yet
  for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x)
    if (l[i] > bv || bi == vocab) bv = l[i], bi = i;  // strided: indices increase per thread
  const int lane = threadIdx.x % kWarp, w = threadIdx.x / kWarp, warps = blockDim.x / kWarp;
  for (int o = kWarp / 2; o > 0; o /= 2) {
    const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
    const int64_t oi = __shfl_xor_sync(0xffffffffu, bi, o);
    if (ov > bv || (ov == bv && oi < bi) || (bi == vocab && oi != vocab)) bv = ov, bi = oi;
  }
  if (lane == 0) best_v[w] = bv, best_i[w] = bi;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int t = 1; t < warps; ++t)
      if (best_v[t] > best_v[0] || (best_v[t] == best_v[0] && best_i[t] < best_i[0]))
        best_v[0] = best_v[t], best_i[0] = best_i[t];
  }
  __syncthreads();
  const double mx = best_v[0];
  double sum = 0.0;
  for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x)
    sum += exp(static_cast<double>(l[i]) - mx);
  for (int o = kWarp / 2; o > 0; o /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, o);
  if (lane == 0) part[w] = sum;
  __syncthreads();
  if (threadIdx.x == 0) {
    double s = 0.0;
    for (int t = 0; t < warps; ++t) s += part[t];
    out[blockIdx.x] = {static_cast<int32_t>(best_i[0]), best_v[0], log(s)};
  }
}

__global__ void target_logprobs_kernel(const float* logits, int64_t V, const RowStats* stats,
                                       const int64_t* sel, const int32_t* token, int count,
                                       double* out_lp, int32_t* out_greedy) {
  const int t = blockIdx.x * blockDim.x + threadIdx.x;
  if (t >= count) return;
  const RowStats s = stats[sel[t]];
  const float lt = logits[sel[t] * V + token[t]];
  out_lp[t] = static_cast<double>(lt) - static_cast<double>(s.max) - s.lse;
  out_greedy[t] = s.argmax == token[t];
}

__global__ void f32_to_bf16_kernel(const float* in, int64_t count, bf16_t* out) {
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < count;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x)
    out[e] = f32_to_bf16_rne(in[e]);
}

int grid_for(int64_t count, int block) {
  const int64_t g = (count + block - 1) / block;
  return static_cast<int>(g < 65535 * 16 ? (g > 0 ? g : 1) : 65535 * 16);
}

}  // namespace

void embed_rows(const bf16_t* table, const int32_t* tokens, int n, int H, float* x,
                cudaStream_t stream) {
  if (n > 0) embed_kernel<<<n, 256, 0, stream>>>(table, tokens, H, x);
}

void scale_rms_norm(float* x, const int32_t* rows, int n, int H, float scale, const float* weight,
                    float eps, bf16_t* out, cudaStream_t stream) {
  if (n > 0) scale_rms_norm_kernel<<<n, 256, 0, stream>>>(x, rows, H, scale, weight, eps, out);
}

void residual_add_norm(float* x, const float* t, const float* bias, int n, int H,
                       const float* weight, float eps, bf16_t* out, cudaStream_t stream) {
  if (n > 0) residual_add_norm_kernel<<<n, 256, 0, stream>>>(x, t, bias, H, weight, eps, out);
}

void qkv_rope_store(float* q, const float* k, const float* v, const RowDesc* rows,
                    const SlotDesc* slots, const QkvParams& p, cudaStream_t stream) {
  if (p.n <= 0) return;
  qkv_rope_store_kernel<<<dim3(p.n, p.nh + p.nkv), 64, 0, stream>>>(q, k, v, rows, slots, p);
}

void attention(const float* q, const RowDesc* rows, const SlotDesc* slots, const AttnParams& p,
               bf16_t* out, cudaStream_t stream) {
  if (p.n <= 0) return;
  const int group = p.nh / p.nkv;
  // 8 warps when the group divides 8 (splits = 8 / group key subsets per head), else one per head.
  const int warps = (group <= 8 && 8 % group == 0) ? 8 : group;
  const int splits = warps / group;
  const size_t shared = sizeof(float) * (2 * warps + static_cast<size_t>(warps) * p.hd);
  attention_kernel<<<dim3(p.n, p.nkv), warps * kWarp, shared, stream>>>(q, rows, slots, p, splits,
                                                                        out);
}

void swiglu(const float* g, const float* u, const float* bg, const float* bu, int64_t count, int I,
            bf16_t* out, cudaStream_t stream) {
  if (count > 0)
    swiglu_kernel<<<grid_for(count, 256), 256, 0, stream>>>(g, u, bg, bu, count, I, out);
}

void row_stats(const float* logits, int m, int64_t V, int64_t vocab, RowStats* out,
               cudaStream_t stream) {
  if (m > 0) row_stats_kernel<<<m, 1024, 0, stream>>>(logits, V, vocab, out);
}

void target_logprobs(const float* logits, int64_t V, const RowStats* stats, const int64_t* sel,
                     const int32_t* token, int count, double* out_lp, int32_t* out_greedy,
                     cudaStream_t stream) {
  if (count > 0)
    target_logprobs_kernel<<<(count + 255) / 256, 256, 0, stream>>>(logits, V, stats, sel, token,
                                                                    count, out_lp, out_greedy);
}

void f32_to_bf16(const float* in, int64_t count, bf16_t* out, cudaStream_t stream) {
  if (count > 0) f32_to_bf16_kernel<<<grid_for(count, 256), 256, 0, stream>>>(in, count, out);
}

}  // namespace evomerge::cuda
