// AVX2 + FMA attention operations (attention_kernels.h), for x86-64 CPUs without AVX-512: 8 lanes,
// 16 registers, AVX's masked float loads/stores (vmaskmovps) for the last partial vector. Score
// tiles 3 rows x 32 keys (12 accumulators), P·V tiles 6 rows x 2 vectors of head_dim (12).
#include <immintrin.h>

#define EM_ATTN_TARGET __attribute__((target("avx2,fma")))

#include "infer/attention_simd.h"

namespace evomerge::infer_detail {
namespace {

struct Avx2 {
  using reg = __m256;
  static constexpr int kLanes = 8;
  static EM_ATTN_INLINE __m256i mask(int64_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static EM_ATTN_INLINE reg zero() { return _mm256_setzero_ps(); }
  static EM_ATTN_INLINE reg load(const float* p) { return _mm256_loadu_ps(p); }
  static EM_ATTN_INLINE reg load_n(const float* p, int64_t n) {
    return _mm256_maskload_ps(p, mask(n));
  }
  static EM_ATTN_INLINE void store(float* p, reg v) { _mm256_storeu_ps(p, v); }
  static EM_ATTN_INLINE void store_n(float* p, reg v, int64_t n) {
    _mm256_maskstore_ps(p, mask(n), v);
  }
  static EM_ATTN_INLINE reg and_n(reg v, int64_t n) {
    return _mm256_and_ps(v, _mm256_castsi256_ps(mask(n)));
  }
  static EM_ATTN_INLINE reg set1(float x) { return _mm256_set1_ps(x); }
  static EM_ATTN_INLINE reg fmadd(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
  static EM_ATTN_INLINE reg mul(reg a, reg b) { return _mm256_mul_ps(a, b); }
  // 1 / b: the estimate refined by one Newton step, r (2 - b r) (a few ulp; vdivps' throughput
  // was most of silu_mul's time).
  static EM_ATTN_INLINE reg recip(reg b) {
    const reg r = _mm256_rcp_ps(b);
    return _mm256_mul_ps(r, _mm256_fnmadd_ps(b, r, _mm256_set1_ps(2.0f)));
  }
  static EM_ATTN_INLINE reg add(reg a, reg b) { return _mm256_add_ps(a, b); }
  static EM_ATTN_INLINE reg sub(reg a, reg b) { return _mm256_sub_ps(a, b); }
  static EM_ATTN_INLINE reg max(reg a, reg b) { return _mm256_max_ps(a, b); }
  static EM_ATTN_INLINE reg min(reg a, reg b) { return _mm256_min_ps(a, b); }
  static EM_ATTN_INLINE float hsum(reg v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static EM_ATTN_INLINE float hmax(reg v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static EM_ATTN_INLINE reg round(reg v) {
    return _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  }
  static EM_ATTN_INLINE reg pow2(reg n) {
    const __m256i e = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
    return _mm256_castsi256_ps(_mm256_slli_epi32(e, 23));
  }
  static EM_ATTN_INLINE reg zero_below(reg x, float t, reg v) {
    return _mm256_and_ps(v, _mm256_cmp_ps(x, _mm256_set1_ps(t), _CMP_GE_OQ));
  }
};

}  // namespace

const AttentionOps& attention_ops_avx2() {
  return simd_ops<Avx2, 3, 6, 2>();
}

}  // namespace evomerge::infer_detail
