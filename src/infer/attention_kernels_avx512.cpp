// AVX-512F attention operations (attention_kernels.h): 16 lanes, 32 registers, masked loads and
// stores for the last partial vector. Score tiles 8 rows x 32 keys (16 accumulators), P·V tiles
// 6 rows x 4 vectors of head_dim (24 accumulators).

#define EM_ATTN_TARGET __attribute__((target("avx512f")))

#include "infer/attention_simd.h"
#include "infer/avx512_intrinsics.h"

namespace evomerge::infer_detail {
namespace {

struct Avx512 {
  using reg = __m512;
  static constexpr int kLanes = 16;
  static EM_ATTN_INLINE __mmask16 mask(int64_t n) { return static_cast<__mmask16>((1u << n) - 1); }
  static EM_ATTN_INLINE reg zero() { return _mm512_setzero_ps(); }
  static EM_ATTN_INLINE reg load(const float* p) { return _mm512_loadu_ps(p); }
  static EM_ATTN_INLINE reg load_n(const float* p, int64_t n) {
    return _mm512_maskz_loadu_ps(mask(n), p);
  }
  static EM_ATTN_INLINE void store(float* p, reg v) { _mm512_storeu_ps(p, v); }
  static EM_ATTN_INLINE void store_n(float* p, reg v, int64_t n) {
    _mm512_mask_storeu_ps(p, mask(n), v);
  }
  static EM_ATTN_INLINE reg and_n(reg v, int64_t n) { return _mm512_maskz_mov_ps(mask(n), v); }
  static EM_ATTN_INLINE reg set1(float x) { return _mm512_set1_ps(x); }
  static EM_ATTN_INLINE reg fmadd(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }
  static EM_ATTN_INLINE reg mul(reg a, reg b) { return _mm512_mul_ps(a, b); }
  // 1 / b: the estimate refined by one Newton step, r (2 - b r) (a few ulp; vdivps' throughput
  // was most of silu_mul's time).
  static EM_ATTN_INLINE reg recip(reg b) {
    const reg r = _mm512_rcp14_ps(b);
    return _mm512_mul_ps(r, _mm512_fnmadd_ps(b, r, _mm512_set1_ps(2.0f)));
  }
  static EM_ATTN_INLINE reg add(reg a, reg b) { return _mm512_add_ps(a, b); }
  static EM_ATTN_INLINE reg sub(reg a, reg b) { return _mm512_sub_ps(a, b); }
  static EM_ATTN_INLINE reg max(reg a, reg b) { return _mm512_max_ps(a, b); }
  static EM_ATTN_INLINE reg min(reg a, reg b) { return _mm512_min_ps(a, b); }
  static EM_ATTN_INLINE float hsum(reg v) { return _mm512_reduce_add_ps(v); }
  static EM_ATTN_INLINE float hmax(reg v) { return _mm512_reduce_max_ps(v); }
  static EM_ATTN_INLINE reg round(reg v) {
    return _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  }
  static EM_ATTN_INLINE reg pow2(reg n) {
    const __m512i e = _mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127));
    return _mm512_castsi512_ps(_mm512_slli_epi32(e, 23));
  }
  static EM_ATTN_INLINE reg zero_below(reg x, float t, reg v) {
    return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, _mm512_set1_ps(t), _CMP_GE_OQ), v);
  }
};

}  // namespace

const AttentionOps& attention_ops_avx512() {
  return simd_ops<Avx512, 8, 6, 4>();
}

}  // namespace evomerge::infer_detail
