// The AVX2 kernel on tile-packed bf16 weights (gemm.h: PackedBf16, gemm_rows_avx2_packed): the
// engine's bf16 products on CPUs with AVX2 + FMA and no AVX-512 (Haswell to Alder Lake, Zen 1-3).
//
// An outer-product micro-kernel: one 64-byte row of a packed block holds one k pair (2r, 2r + 1) of
// 16 output columns as dwords, so for each k value MR broadcast activations (vbroadcastss from
// memory: a load, no shuffle) times the 16 columns' weights (two ymm) accumulate into MR x 2
// registers of outputs; no reduction at the end. The bf16 weights widen to f32 exactly with one
// vpshufb per ymm (even k: the low word moved into the high half, odd k: the high word kept, the
// low half zeroed): the shuffle port, not the FMA ports that a shift or mask would share with the
// FMAs. Arithmetic as gemm_avx2.cpp: f32 activations times exact f32 weights, f32 FMA.
//
// Every output accumulates its k products in order, one FMA after another, in one register; chunks
// of k continue from C, so a row's result depends neither on the other rows multiplied with it
// (batched decode = single decode) nor on the chunking.
//
// Many rows (prefill, scoring): k in chunks of kChunkBlocks packed blocks; a column block's panel
// of a chunk is widened to f32 once (16 x 256 f32 = 16 KiB, in L1) and the row tiles of a block
// of kPackedRowBlock rows (their activations [96 x 256] f32 = 96 KiB in L2) multiply it with the
// plain f32 6 x 16 kernel: two W loads and six broadcasts per 12 FMAs, no shuffle at all. Few rows
// (decode: bound by reading W): the panels widen in the loop, and a tile of fewer than 6 rows runs
// over several column blocks at once, so that at least 8 independent FMA chains hide the FMA
// latency. The last partial block of k multiplies a zero-padded copy of the activations (W is
// zero-padded in the packing, A is not).
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "infer/gemm.h"
#include "infer/gemm_packed_passes.h"

#define EM_AVX2 __attribute__((target("avx2,fma")))

namespace evomerge::infer_detail {
namespace {

constexpr int kMaxMr = 6, kMaxNb = 4;
constexpr int64_t kChunkBlocks = kPackedChunkDepth / kPackedDepth;
static_assert(kPackedRowBlock % kMaxMr == 0);
// From this many rows in a row block, a column block's panel is widened to f32 once per chunk and
// the row tiles multiply that (no shuffle in their loop); fewer rows widen in the loop.
// Measured (docs/benchmarks.md): 2-3 % faster at 512 rows, slower at 16 (widening the panel costs
// as much as the shuffles it saves).
constexpr int64_t kWideMinRows = 24;
// Column blocks per micro-kernel call for a tile of mr rows: mr x nb x 2 accumulators, >= 8 of
// them.
constexpr int kNbFor[kMaxMr + 1] = {0, 4, 2, 2, 1, 1, 1};

// Loads that the compiler must not merge with an earlier load of the same bytes: a k pair's
// weights are loaded once for its even and once for its odd k, so that no raw vector stays live
// across the FMAs of the even one (16 ymm: 12 accumulators, 2 widened weights, a broadcast).
EM_AVX2 __attribute__((always_inline)) inline __m256i load_again(const uint16_t* p) {
  __m256i v;
  asm volatile("vmovdqa %1, %0" : "=x"(v) : "m"(*reinterpret_cast<const __m256i*>(p)));
  return v;
}
EM_AVX2 __attribute__((always_inline)) inline __m256 broadcast_again(const float* p) {
  __m256 v;
  asm volatile("vbroadcastss %1, %0" : "=x"(v) : "m"(*p));
  return v;
}

// vpshufb controls: each dword (W[c][2r] low, W[c][2r + 1] high) to the f32 of its even (low word
// into the high half) or its odd (high word kept) element, the other half zero (0x80: zero byte).
EM_AVX2 inline __m256i widen_control(bool odd) {
  const char lo = odd ? 2 : 0, hi = odd ? 3 : 1, z = static_cast<char>(0x80);
  return _mm256_setr_epi8(z, z, lo, hi, z, z, lo + 4, hi + 4, z, z, lo + 8, hi + 8, z, z, lo + 12,
                          hi + 12, z, z, lo, hi, z, z, lo + 4, hi + 4, z, z, lo + 8, hi + 8, z, z,
                          lo + 12, hi + 12);
}

// acc[i][nb][h] += A[i][kk] * W[columns of block nb, half h][kk] for one k value kk (A[i][kk] at
// row[i][kk_offset]) of the k pair at w (row of block 0). Rows by pointer and constant offset: the
// broadcasts then address base + displacement, with no address arithmetic on the FMA ports. With
// three or more rows and several blocks the broadcasts are reloaded per block (MR broadcasts kept
// across blocks would not fit the registers).
template <int MR, int NB>
EM_AVX2 __attribute__((always_inline)) inline void k_step(__m256 (&acc)[MR][NB][2],
                                                          const float* const (&row)[MR],
                                                          int kk_offset, const uint16_t* w,
                                                          int64_t w_stride, __m256i control) {
#pragma GCC unroll 4
  for (int nb = 0; nb < NB; ++nb) {
    const __m256 lo =
        _mm256_castsi256_ps(_mm256_shuffle_epi8(load_again(w + nb * w_stride), control));
    const __m256 hi =
        _mm256_castsi256_ps(_mm256_shuffle_epi8(load_again(w + nb * w_stride + 16), control));
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      const float* x = row[i] + kk_offset;
      const __m256 a = MR >= 3 && NB > 1 ? broadcast_again(x) : _mm256_broadcast_ss(x);
      acc[i][nb][0] = _mm256_fmadd_ps(a, lo, acc[i][nb][0]);
      acc[i][nb][1] = _mm256_fmadd_ps(a, hi, acc[i][nb][1]);
    }
  }
}

// The tile's outputs into the accumulators (C when continuing, else zero) and back: a partial last
// column block goes through `edge` (columns past t.cols are neither read nor written).
template <int MR, int NB>
EM_AVX2 __attribute__((always_inline)) inline void load_c(__m256 (&acc)[MR][NB][2],
                                                          const PackedTile& t,
                                                          float (&edge)[MR][NB * kPackedCols]) {
  const bool full = t.cols == NB * kPackedCols;
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) {
    if (!full) {
      std::fill(edge[i], edge[i] + NB * kPackedCols, 0.0f);
      if (t.accumulate) std::copy(t.c + i * t.ldc, t.c + i * t.ldc + t.cols, edge[i]);
    }
    const float* from = full ? t.c + i * t.ldc : edge[i];
#pragma GCC unroll 4
    for (int nb = 0; nb < NB; ++nb)
      for (int h = 0; h < 2; ++h)
        acc[i][nb][h] =
            t.accumulate || !full ? _mm256_loadu_ps(from + nb * 16 + h * 8) : _mm256_setzero_ps();
  }
}
template <int MR, int NB>
EM_AVX2 __attribute__((always_inline)) inline void store_c(const __m256 (&acc)[MR][NB][2],
                                                           const PackedTile& t,
                                                           float (&edge)[MR][NB * kPackedCols]) {
  const bool full = t.cols == NB * kPackedCols;
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) {
    float* to = full ? t.c + i * t.ldc : edge[i];
#pragma GCC unroll 4
    for (int nb = 0; nb < NB; ++nb)
      for (int h = 0; h < 2; ++h) _mm256_storeu_ps(to + nb * 16 + h * 8, acc[i][nb][h]);
    if (!full) std::copy(edge[i], edge[i] + t.cols, t.c + i * t.ldc);
  }
}

// The tile's product from the packed bf16 panels, widened in the loop (few rows: bound by reading
// W).
template <int MR, int NB>
EM_AVX2 void micro(const PackedTile& t) {
  __m256 acc[MR][NB][2];
  alignas(32) float edge[MR][NB * kPackedCols];
  load_c<MR, NB>(acc, t, edge);
  const __m256i even = widen_control(false), odd = widen_control(true);
  const float* row[MR];
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) row[i] = t.a + i * t.lda;
  for (int64_t d = 0; d < t.blocks; ++d) {
    const uint16_t* w = t.w + d * kPackedBlock;
#pragma GCC unroll 16
    for (int r = 0; r < kPackedDepth / 2; ++r) {
      k_step<MR, NB>(acc, row, 2 * r, w + r * kPackedRow, t.w_stride, even);
      k_step<MR, NB>(acc, row, 2 * r + 1, w + r * kPackedRow, t.w_stride, odd);
    }
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) row[i] += kPackedDepth;
  }
  store_c<MR, NB>(acc, t, edge);
}

// A column block's panel of `blocks` packed blocks widened to f32 once, out [blocks * 32 k][16
// columns], for the many row tiles that then multiply it: the same exact values as micro's.
EM_AVX2 void widen_panel(const uint16_t* w, int64_t blocks, float* out) {
  const __m256i even = widen_control(false), odd = widen_control(true);
  for (int64_t r = 0; r < blocks * kPackedDepth / 2; ++r) {
    const __m256i lo = _mm256_load_si256(reinterpret_cast<const __m256i*>(w + r * kPackedRow));
    const __m256i hi = _mm256_load_si256(reinterpret_cast<const __m256i*>(w + r * kPackedRow + 16));
    float* e = out + 2 * r * kPackedCols;
    _mm256_store_ps(e, _mm256_castsi256_ps(_mm256_shuffle_epi8(lo, even)));
    _mm256_store_ps(e + 8, _mm256_castsi256_ps(_mm256_shuffle_epi8(hi, even)));
    _mm256_store_ps(e + 16, _mm256_castsi256_ps(_mm256_shuffle_epi8(lo, odd)));
    _mm256_store_ps(e + 24, _mm256_castsi256_ps(_mm256_shuffle_epi8(hi, odd)));
  }
}

// The tile's product from a widened panel (t.wide, one column block): the plain f32 6 x 16 kernel,
// two W loads and MR broadcasts per k value, no shuffle. Same FMAs in the same order as micro.
template <int MR>
EM_AVX2 void micro_wide(const PackedTile& t) {
  __m256 acc[MR][1][2];
  alignas(32) float edge[MR][kPackedCols];
  load_c<MR, 1>(acc, t, edge);
  const float* row[MR];  // by pointer and constant offset, as in micro
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) row[i] = t.a + i * t.lda;
  const float* w = t.wide;
  for (int64_t d = 0; d < t.blocks * (kPackedDepth / 8); ++d) {
#pragma GCC unroll 8
    for (int kk = 0; kk < 8; ++kk) {
      const __m256 lo = _mm256_load_ps(w + kk * kPackedCols);
      const __m256 hi = _mm256_load_ps(w + kk * kPackedCols + 8);
#pragma GCC unroll 6
      for (int i = 0; i < MR; ++i) {
        const __m256 a = _mm256_broadcast_ss(row[i] + kk);
        acc[i][0][0] = _mm256_fmadd_ps(a, lo, acc[i][0][0]);
        acc[i][0][1] = _mm256_fmadd_ps(a, hi, acc[i][0][1]);
      }
    }
    w += 8 * kPackedCols;
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) row[i] += 8;
  }
  store_c<MR, 1>(acc, t, edge);
}

using MicroFn = void (*)(const PackedTile&);
template <int MR>
constexpr std::array<MicroFn, kMaxNb> micro_row() {
  std::array<MicroFn, kMaxNb> row{};
  row[0] = &micro<MR, 1>;
  if constexpr (kNbFor[MR] >= 2) row[1] = &micro<MR, 2>;
  if constexpr (kNbFor[MR] >= 3) row[2] = &micro<MR, 3>;
  if constexpr (kNbFor[MR] >= 4) row[3] = &micro<MR, 4>;
  return row;
}
// kMicro[mr - 1][nb - 1], nb <= kNbFor[mr]; kMicroWide[mr - 1].
constexpr std::array<std::array<MicroFn, kMaxNb>, kMaxMr> kMicro = {
    micro_row<1>(), micro_row<2>(), micro_row<3>(), micro_row<4>(), micro_row<5>(), micro_row<6>()};
constexpr std::array<MicroFn, kMaxMr> kMicroWide = {&micro_wide<1>, &micro_wide<2>, &micro_wide<3>,
                                                    &micro_wide<4>, &micro_wide<5>, &micro_wide<6>};

// Rows [i0, i1) of one pass (gemm_packed_passes.h), at a with row stride lda.
void run_rows(const PackedPass& p, const float* a, int64_t lda, int64_t i0, int64_t i1) {
  const int64_t panel = p.W.depth_blocks() * kPackedBlock;  // elements per column block
  const uint16_t* w0 = p.W.data() + (p.r0 / kPackedCols) * panel + p.b0 * kPackedBlock;
  const int64_t n = p.r1 - p.r0, col_blocks = (n + kPackedCols - 1) / kPackedCols;
  const auto tile = [&](int64_t i, int64_t j0, int nb, const float* wide) {
    const int cols = static_cast<int>(std::min<int64_t>(nb * kPackedCols, n - j0));
    return PackedTile{a + (i - i0) * lda,
                      lda,
                      w0 + (j0 / kPackedCols) * panel,
                      panel,
                      p.blocks,
                      wide,
                      p.C + i * p.ldc + j0,
                      p.ldc,
                      cols,
                      p.accumulate};
  };
  if (i1 - i0 >= kWideMinRows && p.blocks <= kChunkBlocks) {
    // Column block outer: its panel, widened once, stays in L1 while the row tiles pass.
    alignas(32) float wide[kChunkBlocks * kPackedDepth * kPackedCols];
    for (int64_t jb = 0; jb < col_blocks; ++jb) {
      widen_panel(w0 + jb * panel, p.blocks, wide);
      for (int64_t i = i0; i < i1; i += kMaxMr) {
        const int mr = static_cast<int>(std::min<int64_t>(kMaxMr, i1 - i));
        kMicroWide[mr - 1](tile(i, jb * kPackedCols, 1, wide));
      }
    }
    return;
  }
  for (int64_t i = i0; i < i1; i += kMaxMr) {
    const int mr = static_cast<int>(std::min<int64_t>(kMaxMr, i1 - i));
    for (int64_t jb = 0; jb < col_blocks; jb += kNbFor[mr]) {
      const int nb = static_cast<int>(std::min<int64_t>(kNbFor[mr], col_blocks - jb));
      kMicro[mr - 1][nb - 1](tile(i, jb * kPackedCols, nb, nullptr));
    }
  }
}

}  // namespace

void gemm_rows_avx2_packed(const GemmActivations& A, const PackedBf16& W, int64_t r0, int64_t r1,
                           float* C, int64_t ldc) {
  packed_passes(A, W, r0, r1, C, ldc, kMaxMr, run_rows);
}

}  // namespace evomerge::infer_detail
