// AVX512-BF16 GEMM kernel (gemm.h) for bf16 weights: vdpbf16ps multiplies 32 bf16 pairs per
// instruction into 16 f32 sums, reading W as stored (no widening). The activations come split into
// kSplitParts bf16 parts (split_activations), all multiplied into the same accumulator, so the
// product is as exact as an f32 one; under Precision::Bf16 one part (the rounded activations). Same
// dot-product form and blocking as gemm_avx512.cpp; one accumulator per output, so a row's result
// does not depend on how many rows are multiplied with it.

#include <array>
#include <utility>

#include "infer/avx512_intrinsics.h"
#include "infer/gemm.h"
#include "infer/gemm_tiling.h"

#define EM_AVX512BF16 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx512bf16,fma")))

namespace evomerge::infer_detail {
namespace {

constexpr int kMaxMr = 4, kMaxNr = 8;

EM_AVX512BF16 inline __m512bh load_bh(const uint16_t* p, __mmask32 mask) {
  return reinterpret_cast<__m512bh>(_mm512_maskz_loadu_epi16(mask, p));
}

// acc[i][j] += sum over parts p < PARTS of part_p[i][0:32] · W[j][0:32], pairwise (masked lanes
// 0). Part p of row i is at a + p * part_offset + i * lda.
template <int PARTS, int MR, int NR>
EM_AVX512BF16 __attribute__((always_inline)) inline void micro_step(__m512 (&acc)[MR][NR],
                                                                    const uint16_t* a, int64_t lda,
                                                                    int64_t part_offset,
                                                                    const uint16_t* W, int64_t ldw,
                                                                    __mmask32 mask) {
  __m512bh x[PARTS][MR];
#pragma GCC unroll 8
  for (int p = 0; p < PARTS; ++p)
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) x[p][i] = load_bh(a + p * part_offset + i * lda, mask);
#pragma GCC unroll 8
  for (int j = 0; j < NR; ++j) {
    const __m512bh w = load_bh(W + j * ldw, mask);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
      for (int p = PARTS - 1; p >= 0; --p)  // smallest part first
        acc[i][j] = _mm512_dpbf16_ps(acc[i][j], x[p][i], w);
  }
}

using MicroFn = void (*)(const uint16_t* a, int64_t lda, int64_t part_offset, const uint16_t* W,
                         int64_t ldw, int64_t k0, int64_t kc, float* C, int64_t ldc,
                         bool accumulate);

template <int PARTS, int MR, int NR>
EM_AVX512BF16 void micro(const uint16_t* a, int64_t lda, int64_t part_offset, const uint16_t* W,
                         int64_t ldw, int64_t k0, int64_t kc, float* C, int64_t ldc,
                         bool accumulate) {
  __m512 acc[MR][NR];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_setzero_ps();
  const int64_t end = k0 + kc;
  int64_t c = k0;
  for (; c + 32 <= end; c += 32)
    micro_step<PARTS, MR, NR>(acc, a + c, lda, part_offset, W + c, ldw, 0xffffffffu);
  if (c < end)
    micro_step<PARTS, MR, NR>(acc, a + c, lda, part_offset, W + c, ldw,
                              static_cast<__mmask32>((1ull << (end - c)) - 1));
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) {
      const float s = _mm512_reduce_add_ps(acc[i][j]);
      C[i * ldc + j] = accumulate ? C[i * ldc + j] + s : s;
    }
}

template <int PARTS, int MR, int... J>
constexpr std::array<MicroFn, kMaxNr> micro_row(std::integer_sequence<int, J...>) {
  return {&micro<PARTS, MR, J + 1>...};
}
using MicroTable = std::array<std::array<MicroFn, kMaxNr>, kMaxMr>;
template <int PARTS>
constexpr MicroTable micro_table() {
  return {micro_row<PARTS, 1>(std::make_integer_sequence<int, kMaxNr>{}),
          micro_row<PARTS, 2>(std::make_integer_sequence<int, kMaxNr>{}),
          micro_row<PARTS, 3>(std::make_integer_sequence<int, kMaxNr>{}),
          micro_row<PARTS, 4>(std::make_integer_sequence<int, kMaxNr>{})};
}
constexpr MicroTable kMicroExact = micro_table<kSplitParts>(), kMicroOnePart = micro_table<1>();
// W rows per micro-kernel for MR activation rows (registers: MR x NR accumulators,
// kSplitParts x MR activation vectors, one weight vector: at most 29 of 32).
constexpr int kNrFor[kMaxMr + 1] = {0, 8, 6, 4, 4};

}  // namespace

void gemm_rows_avx512bf16(const GemmActivations& A, const GemmWeights& W, int64_t r0, int64_t r1,
                          float* C, int64_t ldc) {
  const int64_t k = A.k, m = A.m;
  const auto* w0 = reinterpret_cast<const uint16_t*>(W.data) + r0 * k;
  const MicroTable& micro_fns = A.parts == 1 ? kMicroOnePart : kMicroExact;
  gemm_tiles(m, r1 - r0, k, 32, kMaxMr, kNrFor,
             [&](int64_t i0, int mr, int64_t j0, int nr, int64_t k0, int64_t kc, bool acc) {
               micro_fns[mr - 1][nr - 1](A.split + i0 * k, k, m * k, w0 + j0 * k, k, k0, kc,
                                         C + i0 * ldc + j0, ldc, acc);
             });
}

}  // namespace evomerge::infer_detail
