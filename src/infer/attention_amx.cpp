// Precision::Bf16's attention of prefill blocks on the AMX tiles (attention_kernels.h:
// attend_group_amx). Both products are the tile GEMM of the weights (gemm_rows_amx_packed: C = A ·
// Wᵀ with W packed once into the tile layout), with the keys and values as its "weights":
//   S [m x nk]  = Q [m x hd] · K [nk x hd]ᵀ        W = K: the packing of a weight matrix
//   O [m x hd]  = P [m x nk] · V [nk x hd]  = P · (Vᵀ)ᵀ    W = Vᵀ [hd x nk]: packed here straight
//                                                      from the f32 V rows (pack_values)
// K and V are packed once per block for every query head of their group (GQA), each head's Q and
// P converted to bf16 rows. The softmax between them is attend_block's (the avx512 kernel's exp,
// the same rounding of P).
#include <algorithm>
#include <cmath>
#include <limits>

#include "infer/attention_kernels.h"
#include "infer/avx512_intrinsics.h"

#define EM_AVX512BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

namespace evomerge::infer_detail {
namespace {

int64_t round_up(int64_t x, int64_t to) {
  return (x + to - 1) / to * to;
}

// y[i] = bf16(x[i]) (nearest even) for i < n: AVX512-BF16's conversion, 16 at a time (the
// attention's rows are short: 64-128 values for q and k, where a call through tensor/convert.h's
// dispatch cost more than its conversion).
EM_AVX512BF16 void to_bf16(const float* x, uint16_t* y, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 mask = static_cast<__mmask16>(n - i >= 16 ? 0xffff : (1u << (n - i)) - 1);
    const __m256i h = (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(mask, x + i));
    _mm256_mask_storeu_epi16(y + i, mask, h);
  }
}

// V of keys [lo, lo + nk) as W = Vᵀ [hd x kpad] in the tile layout (gemm.h: PackedBf16), kpad =
// nk rounded up to 32, zero beyond nk and hd: block (column block jb of 16 dims, depth block kb of
// 32 keys) row r holds, for dims c < 16, the pair (V[key 2r][c], V[key 2r + 1][c]): two f32 rows
// of 16 dims rounded to bf16 (nearest even, as f32_to_bf16) and interleaved, one store.
EM_AVX512BF16 void pack_values(const AttentionBlock& b, int64_t lo, int64_t nk, PackedBf16& out) {
  const int64_t hd = b.hd, kpad = round_up(nk, kPackedDepth);
  uint16_t* dst = out.resize(hd, kpad);
  const int64_t kb_count = out.depth_blocks(), jb_count = (hd + kPackedCols - 1) / kPackedCols;
  alignas(64) static constexpr uint16_t kInterleave[32] = {
      0, 16, 1, 17, 2,  18, 3,  19, 4,  20, 5,  21, 6,  22, 7,  23,
      8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
  const __m512i interleave = _mm512_load_si512(kInterleave);
  for (int64_t kb = 0; kb < kb_count; ++kb)
    for (int64_t r = 0; r < kPackedDepth / 2; ++r) {
      const int64_t j = kb * kPackedDepth + 2 * r;  // key pair (j, j + 1), relative to lo
      const float* v0 = j < nk ? kv_row(b, lo + j, true) : nullptr;
      const float* v1 = j + 1 < nk ? kv_row(b, lo + j + 1, true) : nullptr;
      for (int64_t jb = 0; jb < jb_count; ++jb) {
        const int64_t d0 = jb * kPackedCols, nd = std::min<int64_t>(kPackedCols, hd - d0);
        const __mmask16 mask = static_cast<__mmask16>((1u << nd) - 1);
        const __m512 x0 = v0 ? _mm512_maskz_loadu_ps(mask, v0 + d0) : _mm512_setzero_ps();
        const __m512 x1 = v1 ? _mm512_maskz_loadu_ps(mask, v1 + d0) : _mm512_setzero_ps();
        // Lanes 0-15: x0's 16 values, 16-31: x1's; then pairs (x0[c], x1[c]).
        const __m512i both = (__m512i)_mm512_cvtne2ps_pbh(x1, x0);
        _mm512_store_si512(dst + (jb * kb_count + kb) * kPackedBlock + r * 2 * kPackedCols,
                           _mm512_permutexvar_epi16(interleave, both));
      }
    }
}

// K of keys [lo, lo + nk) in bf16 rows [nk x hd], packed as W [nk x hd].
void pack_keys(const AttentionBlock& b, int64_t lo, int64_t nk, AttentionScratch& s) {
  const int64_t hd = b.hd;
  if (static_cast<int64_t>(s.k16.size()) < nk * hd) s.k16.resize(static_cast<size_t>(nk * hd));
  for (int64_t j = 0; j < nk; ++j) to_bf16(kv_row(b, lo + j, false), s.k16.data() + j * hd, hd);
  s.k_tiles.pack(s.k16.data(), nk, hd);
}

// x[j] *= scale for j < n, in one pass with their maximum (returned).
EM_AVX512BF16 float scale_and_max(float* x, int64_t n, float scale) {
  const __m512 sc = _mm512_set1_ps(scale);
  __m512 mx = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 mask = static_cast<__mmask16>(n - i >= 16 ? 0xffff : (1u << (n - i)) - 1);
    const __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(mask, x + i), sc);
    _mm512_mask_storeu_ps(x + i, mask, v);
    mx = _mm512_mask_max_ps(mx, mask, mx, v);
  }
  return _mm512_reduce_max_ps(mx);
}

// Row i of S (scores of keys [lo, lo + nk)) becomes its probabilities: scaled, soft-capped,
// exp(s - max) over the keys it sees ([first, pos]), rounded into p16 (zero elsewhere, up to
// kpad); rowscale = 1 / their unrounded sum.
EM_AVX512BF16 void softmax_row_bf16(const AttentionOps& ops, const AttentionBlock& b, int64_t i,
                                    int64_t lo, int64_t kpad, float* row, uint16_t* p16,
                                    float* rowscale) {
  const int64_t a = first_key(b, i) - lo, e = b.p0 + i + 1 - lo;  // keys [a, e) of the row
  float* x = row + a;
  const int64_t n = e - a;
  float mx = scale_and_max(x, n, b.scale);
  if (b.softcap > 0.0f) {  // Gemma 2
    for (int64_t j = 0; j < n; ++j) x[j] = b.softcap * std::tanh(x[j] / b.softcap);
    mx = ops.row_max(x, n);
  }
  *rowscale = 1.0f / ops.exp_sum(x, n, mx);
  std::fill(p16, p16 + a, uint16_t{0});
  to_bf16(x, p16 + a, n);
  std::fill(p16 + e, p16 + kpad, uint16_t{0});
}

// One query head: out [m x hd] (row stride ldo) for q [m x hd] (row stride ldq).
EM_AVX512BF16 void attend_head(const AttentionOps& ops, const AttentionBlock& b, const float* q,
                               float* out, int64_t lo, int64_t nk, AttentionScratch& s) {
  const int64_t m = b.m, hd = b.hd, kpad = round_up(nk, kPackedDepth);
  for (int64_t i = 0; i < m; ++i) to_bf16(q + i * b.ldq, s.q16.data() + i * hd, hd);
  float* S = s.scores.data();  // [m x nk]
  gemm_rows_amx_packed({nullptr, m, hd, hd, s.q16.data(), 1}, s.k_tiles, 0, nk, S, nk, s.gemm);
  for (int64_t i = 0; i < m; ++i)
    softmax_row_bf16(ops, b, i, lo, kpad, S + i * nk, s.p16.data() + i * kpad, &s.rowscale[i]);
  gemm_rows_amx_packed({nullptr, m, kpad, kpad, s.p16.data(), 1}, s.v_tiles, 0, hd, out, b.ldo,
                       s.gemm);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t d = 0; d < hd; ++d) out[i * b.ldo + d] *= s.rowscale[i];
}

}  // namespace

void attend_group_amx(const AttentionBlock& b, int64_t heads, AttentionScratch& s) {
  const AttentionOps& ops = attention_ops(AttentionKernel::Avx512);
  const int64_t lo = first_key(b, 0), nk = b.p0 + b.m - lo, kpad = round_up(nk, kPackedDepth);
  const auto grow = [](auto& v, int64_t n) {
    if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
  };
  grow(s.scores, b.m * nk), grow(s.rowscale, b.m);
  grow(s.q16, b.m * b.hd), grow(s.p16, b.m * kpad);
  pack_keys(b, lo, nk, s);
  pack_values(b, lo, nk, s.v_tiles);
  for (int64_t h = 0; h < heads; ++h)
    attend_head(ops, b, b.q + h * b.hd, b.out + h * b.hd, lo, nk, s);
}

std::string amx_attention_unavailable() {
  if (std::string why = gemm_kernel_unavailable(GemmKernel::Amx); !why.empty()) return why;
  return gemm_kernel_unavailable(GemmKernel::Avx512Bf16);
}

}  // namespace evomerge::infer_detail
