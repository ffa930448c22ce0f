// The AVX-512 kernel on tile-packed bf16 weights (gemm.h: PackedBf16, gemm_rows_avx512_packed):
// the engine's bf16 products where its kernel is avx512 (AVX-512 CPUs without AMX or AVX512-BF16:
// Skylake-X, Ice Lake), and the few rows that stay on avx512 where it is amx (a decode step of one
// sequence, gemm_kernel_for_rows), so that those engines read only the packed copy.
//
// Same arithmetic as gemm_avx512.cpp: f32 activations times the weights widened exactly to f32,
// f32 FMA. An outer-product micro-kernel, as gemm_avx2_packed.cpp with 16 lanes: one 64-byte row of
// a packed block holds one k pair of its 16 columns, whose even (low) and odd (high) halves widen
// with a shift and a mask; for each k value MR broadcast activations times NB column blocks
// accumulate into MR x NB zmm. Every output accumulates its k products in order in one register,
// chunks of k continuing from C: a row's result does not depend on the other rows or the chunking.
//
// Many rows (>= kWideMinRows in a row block): the panels of two column blocks for a k chunk are
// widened to f32 once (2 x 16 x 256 f32 = 32 KiB, in L1) and the row tiles (8 rows x 32 columns,
// 16 accumulators) run on them with no shift or mask in the loop: on AVX-512 those share the FMA
// ports. Few rows (decode, bound by reading W) widen in the loop, a tile of 1-3 rows spanning 3-8
// column blocks so that >= 8 independent FMA chains hide the FMA latency. The last partial block
// of k multiplies a zero-padded copy of the activations (W is zero-padded in the packing, A not).
#include <algorithm>
#include <array>

#include "infer/avx512_intrinsics.h"
#include "infer/gemm.h"
#include "infer/gemm_packed_passes.h"

#define EM_AVX512 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,fma")))

namespace evomerge::infer_detail {
namespace {

constexpr int kMaxMr = 8, kMaxNb = 8, kWideNb = 2;
constexpr int64_t kChunkBlocks = kPackedChunkDepth / kPackedDepth;
static_assert(kPackedRowBlock % kMaxMr == 0);
constexpr int64_t kWideMinRows = 24;
// Column blocks per in-loop tile of mr rows: mr x nb accumulators, >= 8 of them.
constexpr int kNbFor[kMaxMr + 1] = {0, 8, 4, 3, 2, 2, 2, 2, 2};

EM_AVX512 inline __mmask16 column_mask(int cols, int nb) {
  const int valid = std::clamp(cols - nb * static_cast<int>(kPackedCols), 0, 16);
  return static_cast<__mmask16>((1u << valid) - 1);
}

template <int MR, int NB, bool Wide>
EM_AVX512 void micro(const PackedTile& t) {
  __m512 acc[MR][NB];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int nb = 0; nb < NB; ++nb)
      acc[i][nb] = t.accumulate ? _mm512_maskz_loadu_ps(column_mask(t.cols, nb),
                                                        t.c + i * t.ldc + nb * kPackedCols)
                                : _mm512_setzero_ps();
  const __m512i high = _mm512_set1_epi32(static_cast<int>(0xffff0000u));
  const float* row[MR];  // by pointer and constant offset: no address arithmetic in the loop
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) row[i] = t.a + i * t.lda;
  const int64_t depth = t.blocks * kPackedDepth;
  for (int64_t d = 0; d < t.blocks; ++d) {
#pragma GCC unroll 4
    for (int r = 0; r < kPackedDepth / 2; ++r) {
      __m512i raw[NB];
      if constexpr (!Wide)
#pragma GCC unroll 8
        for (int nb = 0; nb < NB; ++nb)
          raw[nb] = _mm512_load_si512(t.w + nb * t.w_stride + d * kPackedBlock + r * kPackedRow);
#pragma GCC unroll 2
      for (int p = 0; p < 2; ++p) {
        __m512 w[NB];
#pragma GCC unroll 8
        for (int nb = 0; nb < NB; ++nb) {
          if constexpr (Wide)
            w[nb] = _mm512_load_ps(t.wide + (nb * depth + d * kPackedDepth + 2 * r + p) * 16);
          else
            w[nb] = _mm512_castsi512_ps(p == 0 ? _mm512_slli_epi32(raw[nb], 16)
                                               : _mm512_and_si512(raw[nb], high));
        }
#pragma GCC unroll 8
        for (int i = 0; i < MR; ++i) {
          const __m512 a = _mm512_set1_ps(row[i][2 * r + p]);
#pragma GCC unroll 8
          for (int nb = 0; nb < NB; ++nb) acc[i][nb] = _mm512_fmadd_ps(a, w[nb], acc[i][nb]);
        }
      }
    }
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) row[i] += kPackedDepth;
  }
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int nb = 0; nb < NB; ++nb)
      _mm512_mask_storeu_ps(t.c + i * t.ldc + nb * kPackedCols, column_mask(t.cols, nb),
                            acc[i][nb]);
}

// The panels of nb column blocks (w, w_stride apart), `blocks` packed blocks each, widened to f32:
// out [nb][blocks * 32][16], the same exact values the in-loop path multiplies.
EM_AVX512 void widen_panels(const uint16_t* w, int64_t w_stride, int nb, int64_t blocks,
                            float* out) {
  const __m512i high = _mm512_set1_epi32(static_cast<int>(0xffff0000u));
  const int64_t pairs = blocks * kPackedDepth / 2;
  for (int b = 0; b < nb; ++b)
    for (int64_t r = 0; r < pairs; ++r) {
      const __m512i raw = _mm512_load_si512(w + b * w_stride + r * kPackedRow);
      float* e = out + (b * 2 * pairs + 2 * r) * kPackedCols;
      _mm512_store_ps(e, _mm512_castsi512_ps(_mm512_slli_epi32(raw, 16)));
      _mm512_store_ps(e + kPackedCols, _mm512_castsi512_ps(_mm512_and_si512(raw, high)));
    }
}

using MicroFn = void (*)(const PackedTile&);
template <int MR, int NB, bool Wide>
constexpr MicroFn micro_or_null() {  // only the shapes run_rows calls are instantiated
  if constexpr (NB <= (Wide ? kWideNb : kNbFor[MR]))
    return &micro<MR, NB, Wide>;
  else
    return nullptr;
}
template <int MR, bool Wide, int... J>
constexpr std::array<MicroFn, kMaxNb> micro_row(std::integer_sequence<int, J...>) {
  return {micro_or_null<MR, J + 1, Wide>()...};
}
template <bool Wide, int... I>
constexpr std::array<std::array<MicroFn, kMaxNb>, kMaxMr> micro_table(
    std::integer_sequence<int, I...>) {
  return {micro_row<I + 1, Wide>(std::make_integer_sequence<int, kMaxNb>{})...};
}
// kMicro[wide][mr - 1][nb - 1]: nb <= kNbFor[mr] in the loop, nb <= kWideNb on widened panels.
constexpr std::array<std::array<std::array<MicroFn, kMaxNb>, kMaxMr>, 2> kMicro = {
    micro_table<false>(std::make_integer_sequence<int, kMaxMr>{}),
    micro_table<true>(std::make_integer_sequence<int, kMaxMr>{})};

// Rows [i0, i1) of one pass (gemm_packed_passes.h), at a with row stride lda.
void run_rows(const PackedPass& p, const float* a, int64_t lda, int64_t i0, int64_t i1) {
  const int64_t panel = p.W.depth_blocks() * kPackedBlock;  // elements per column block
  const uint16_t* w0 = p.W.data() + (p.r0 / kPackedCols) * panel + p.b0 * kPackedBlock;
  const int64_t n = p.r1 - p.r0, col_blocks = (n + kPackedCols - 1) / kPackedCols;
  const auto tile = [&](int64_t i, int64_t jb, int nb, const float* wide) {
    const int cols = static_cast<int>(std::min<int64_t>(nb * kPackedCols, n - jb * kPackedCols));
    return PackedTile{a + (i - i0) * lda,
                      lda,
                      w0 + jb * panel,
                      panel,
                      p.blocks,
                      wide,
                      p.C + i * p.ldc + jb * kPackedCols,
                      p.ldc,
                      cols,
                      p.accumulate};
  };
  if (i1 - i0 >= kWideMinRows && p.blocks <= kChunkBlocks) {
    // Column groups outer: their panels, widened once, stay in L1 while the row tiles pass.
    alignas(64) float wide[kWideNb * kChunkBlocks * kPackedDepth * kPackedCols];
    for (int64_t jb = 0; jb < col_blocks; jb += kWideNb) {
      const int nb = static_cast<int>(std::min<int64_t>(kWideNb, col_blocks - jb));
      widen_panels(w0 + jb * panel, panel, nb, p.blocks, wide);
      for (int64_t i = i0; i < i1; i += kMaxMr) {
        const int mr = static_cast<int>(std::min<int64_t>(kMaxMr, i1 - i));
        kMicro[1][mr - 1][nb - 1](tile(i, jb, nb, wide));
      }
    }
    return;
  }
  for (int64_t i = i0; i < i1; i += kMaxMr) {
    const int mr = static_cast<int>(std::min<int64_t>(kMaxMr, i1 - i));
    for (int64_t jb = 0; jb < col_blocks; jb += kNbFor[mr]) {
      const int nb = static_cast<int>(std::min<int64_t>(kNbFor[mr], col_blocks - jb));
      kMicro[0][mr - 1][nb - 1](tile(i, jb, nb, nullptr));
    }
  }
}

}  // namespace

void gemm_rows_avx512_packed(const GemmActivations& A, const PackedBf16& W, int64_t r0, int64_t r1,
                             float* C, int64_t ldc) {
  packed_passes(A, W, r0, r1, C, ldc, kMaxMr, run_rows);
}

}  // namespace evomerge::infer_detail
