// The AVX-512 kernel on tile-packed bf16 weights (gemm.h: PackedBf16, gemm_rows_avx512_packed):
// the product of the few rows that stay on avx512 where the engine's kernel is amx (a decode step
// of one sequence, gemm_kernel_for_rows), so that the amx engine reads only the packed copy and the
// plain bf16 bytes are never touched after packing (CpuBackend releases mapped ones).
// Same arithmetic as gemm_avx512.cpp: f32 activations times the weights widened exactly to f32,
// f32 FMA. One 64-byte row of a packed block holds one k pair of 16 columns: its even (low) and odd
// (high) halves widen with a shift and a mask, each multiplied by one broadcast activation, so 16
// outputs accumulate in one register pair per block.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "infer/gemm.h"

#define EM_AVX512 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,fma")))

namespace evomerge::infer_detail {
namespace {

// Sums over one packed block (32 k) of column block `b` into the four accumulators: x the block's
// 32 activations.
EM_AVX512 __attribute__((always_inline)) inline void block_step(const uint16_t* b, const float* x,
                                                                __m512 (&acc)[4]) {
  const __m512i high = _mm512_set1_epi32(static_cast<int>(0xffff0000u));
#pragma GCC unroll 8
  for (int r = 0; r < kPackedDepth / 2; r += 2) {
    const __m512i w0 = _mm512_load_si512(b + r * 2 * kPackedCols);
    const __m512i w1 = _mm512_load_si512(b + (r + 1) * 2 * kPackedCols);
    acc[0] = _mm512_fmadd_ps(_mm512_set1_ps(x[2 * r]),
                             _mm512_castsi512_ps(_mm512_slli_epi32(w0, 16)), acc[0]);
    acc[1] = _mm512_fmadd_ps(_mm512_set1_ps(x[2 * r + 1]),
                             _mm512_castsi512_ps(_mm512_and_si512(w0, high)), acc[1]);
    acc[2] = _mm512_fmadd_ps(_mm512_set1_ps(x[2 * r + 2]),
                             _mm512_castsi512_ps(_mm512_slli_epi32(w1, 16)), acc[2]);
    acc[3] = _mm512_fmadd_ps(_mm512_set1_ps(x[2 * r + 3]),
                             _mm512_castsi512_ps(_mm512_and_si512(w1, high)), acc[3]);
  }
}

}  // namespace

EM_AVX512 void gemm_rows_avx512_packed(const GemmActivations& A, const PackedBf16& W, int64_t r0,
                                       int64_t r1, float* C, int64_t ldc) {
  const int64_t k = A.k, kb = W.depth_blocks(), full = k / kPackedDepth;
  alignas(64) float tail[kPackedDepth];  // the last partial block's activations, zero-padded
  for (int64_t i = 0; i < A.m; ++i) {
    const float* x = A.f32 + i * A.lda;
    if (full < kb) {
      std::fill(tail, tail + kPackedDepth, 0.0f);
      std::copy(x + full * kPackedDepth, x + k, tail);
    }
    for (int64_t j0 = r0; j0 < r1; j0 += kPackedCols) {
      const uint16_t* b = W.data() + (j0 / kPackedCols) * kb * kPackedBlock;
      __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                       _mm512_setzero_ps()};
      for (int64_t d = 0; d < full; ++d)
        block_step(b + d * kPackedBlock, x + d * kPackedDepth, acc);
      if (full < kb) block_step(b + full * kPackedBlock, tail, acc);
      const __m512 sum =
          _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
      const int cols = static_cast<int>(std::min<int64_t>(kPackedCols, r1 - j0));
      _mm512_mask_storeu_ps(C + i * ldc + (j0 - r0), static_cast<__mmask16>((1u << cols) - 1), sum);
    }
  }
}

}  // namespace evomerge::infer_detail
