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
// Blocking: k in chunks of kChunkBlocks packed blocks (a column block's panel, 16 x 256 bf16 =
// 8 KiB, stays in L1 while the row tiles of a block of kRowBlock rows pass over it; that block's
// activations, [96 x 256] f32 = 96 KiB, stay in L2). Rows in tiles of up to 6 (12 accumulators);
// a tile of fewer rows (decode) runs over several column blocks at once, so that at least 8
// independent FMA chains hide the FMA latency. The last partial block of k multiplies a
// zero-padded copy of the activations (W is zero-padded in the packing, A is not).
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "infer/gemm.h"

#define EM_AVX2 __attribute__((target("avx2,fma")))

namespace evomerge::infer_detail {
namespace {

constexpr int kMaxMr = 6, kMaxNb = 4;
constexpr int64_t kChunkBlocks = 8, kRowBlock = 96;  // kRowBlock: a multiple of kMaxMr
// Column blocks per micro-kernel call for a tile of mr rows: mr x nb x 2 accumulators, >= 8 of
// them.
constexpr int kNbFor[kMaxMr + 1] = {0, 4, 2, 2, 1, 1, 1};
constexpr int64_t kPackedRow = 2 * kPackedCols;  // uint16 per row of a block (one k pair)

// One tile's operands: activation rows A [mr x lda] from the chunk's first k on, the packed panels
// of its column blocks (the first at w, the next ones `w_stride` elements apart) from the chunk's
// first block on, `blocks` packed blocks of k, C [mr x ldc] at the tile's first column.
struct Tile {
  const float* a;
  int64_t lda;
  const uint16_t* w;
  int64_t w_stride, blocks;
  float* c;
  int64_t ldc;
  int cols;         // valid output columns of the tile (< nb * 16 only in the last column block)
  bool accumulate;  // continue from C (chunks after the first)
};

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

// acc[i][nb][h] += A[i][kk] * W[columns of block nb, half h][kk] for one k value kk (x = &A[0][kk])
// of the k pair at w (row of block 0). With three or more rows and several blocks the broadcasts
// are reloaded per block (MR broadcasts kept across blocks would not fit the registers).
template <int MR, int NB>
EM_AVX2 __attribute__((always_inline)) inline void k_step(__m256 (&acc)[MR][NB][2], const float* x,
                                                          int64_t lda, const uint16_t* w,
                                                          int64_t w_stride, __m256i control) {
#pragma GCC unroll 4
  for (int nb = 0; nb < NB; ++nb) {
    const __m256 lo =
        _mm256_castsi256_ps(_mm256_shuffle_epi8(load_again(w + nb * w_stride), control));
    const __m256 hi =
        _mm256_castsi256_ps(_mm256_shuffle_epi8(load_again(w + nb * w_stride + 16), control));
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      const __m256 a =
          MR >= 3 && NB > 1 ? broadcast_again(x + i * lda) : _mm256_broadcast_ss(x + i * lda);
      acc[i][nb][0] = _mm256_fmadd_ps(a, lo, acc[i][nb][0]);
      acc[i][nb][1] = _mm256_fmadd_ps(a, hi, acc[i][nb][1]);
    }
  }
}

template <int MR, int NB>
EM_AVX2 void micro(const Tile& t) {
  __m256 acc[MR][NB][2];
  const bool full = t.cols == NB * kPackedCols;
  alignas(32) float edge[MR][NB * kPackedCols];  // C of a partial last column block
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
  const __m256i even = widen_control(false), odd = widen_control(true);
  for (int64_t d = 0; d < t.blocks; ++d) {
    const float* x = t.a + d * kPackedDepth;
    const uint16_t* w = t.w + d * kPackedBlock;
#pragma GCC unroll 16
    for (int r = 0; r < kPackedDepth / 2; ++r) {
      k_step<MR, NB>(acc, x + 2 * r, t.lda, w + r * kPackedRow, t.w_stride, even);
      k_step<MR, NB>(acc, x + 2 * r + 1, t.lda, w + r * kPackedRow, t.w_stride, odd);
    }
  }
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) {
    float* to = full ? t.c + i * t.ldc : edge[i];
#pragma GCC unroll 4
    for (int nb = 0; nb < NB; ++nb)
      for (int h = 0; h < 2; ++h) _mm256_storeu_ps(to + nb * 16 + h * 8, acc[i][nb][h]);
    if (!full) std::copy(edge[i], edge[i] + t.cols, t.c + i * t.ldc);
  }
}

using MicroFn = void (*)(const Tile&);
template <int MR>
constexpr std::array<MicroFn, kMaxNb> micro_row() {
  std::array<MicroFn, kMaxNb> row{};
  row[0] = &micro<MR, 1>;
  if constexpr (kNbFor[MR] >= 2) row[1] = &micro<MR, 2>;
  if constexpr (kNbFor[MR] >= 3) row[2] = &micro<MR, 3>;
  if constexpr (kNbFor[MR] >= 4) row[3] = &micro<MR, 4>;
  return row;
}
// kMicro[mr - 1][nb - 1], nb <= kNbFor[mr].
constexpr std::array<std::array<MicroFn, kMaxNb>, kMaxMr> kMicro = {
    micro_row<1>(), micro_row<2>(), micro_row<3>(), micro_row<4>(), micro_row<5>(), micro_row<6>()};

// One pass over k blocks [b0, b0 + blocks) for activation rows [i0, i1) (rows at a, stride lda,
// from block b0's first k on) and W columns [r0, r1) of C (C's column 0 = W row r0).
struct Pass {
  const PackedBf16& W;
  int64_t r0, r1, b0, blocks;
  float* C;
  int64_t ldc;
  bool accumulate;
};

void run_rows(const Pass& p, const float* a, int64_t lda, int64_t i0, int64_t i1) {
  const int64_t panel = p.W.depth_blocks() * kPackedBlock;  // elements per column block
  const uint16_t* w0 = p.W.data() + (p.r0 / kPackedCols) * panel + p.b0 * kPackedBlock;
  const auto tile = [&](int64_t i, int mr, int64_t j0, int nb) {
    const int cols = static_cast<int>(std::min<int64_t>(nb * kPackedCols, p.r1 - p.r0 - j0));
    const Tile t{a + (i - i0) * lda,
                 lda,
                 w0 + (j0 / kPackedCols) * panel,
                 panel,
                 p.blocks,
                 p.C + i * p.ldc + j0,
                 p.ldc,
                 cols,
                 p.accumulate};
    kMicro[mr - 1][nb - 1](t);
  };
  const int64_t n = p.r1 - p.r0, col_blocks = (n + kPackedCols - 1) / kPackedCols;
  const int64_t full_end = i0 + (i1 - i0) / kMaxMr * kMaxMr;
  // Full tiles: column block outer, so its panel stays in L1 while the row tiles pass.
  for (int64_t jb = 0; jb < col_blocks && full_end > i0; ++jb)
    for (int64_t i = i0; i < full_end; i += kMaxMr) tile(i, kMaxMr, jb * kPackedCols, 1);
  if (full_end < i1) {
    const int mr = static_cast<int>(i1 - full_end);
    for (int64_t jb = 0; jb < col_blocks; jb += kNbFor[mr])
      tile(full_end, mr, jb * kPackedCols,
           static_cast<int>(std::min<int64_t>(kNbFor[mr], col_blocks - jb)));
  }
}

}  // namespace

void gemm_rows_avx2_packed(const GemmActivations& A, const PackedBf16& W, int64_t r0, int64_t r1,
                           float* C, int64_t ldc) {
  const int64_t k = A.k, full = k / kPackedDepth;
  // A tile of one pass of rows (decode) runs over all of k at once; more rows go in chunks.
  const int64_t chunk = A.m <= kMaxMr ? std::max<int64_t>(full, 1) : kChunkBlocks;
  alignas(32) float tail[kRowBlock][kPackedDepth];  // the last partial block's rows, zero-padded
  for (int64_t i0 = 0; i0 < A.m; i0 += kRowBlock) {
    const int64_t i1 = std::min(A.m, i0 + kRowBlock);
    for (int64_t b0 = 0; b0 < full; b0 += chunk) {
      const Pass p{W, r0, r1, b0, std::min(chunk, full - b0), C, ldc, b0 > 0};
      run_rows(p, A.f32 + i0 * A.lda + b0 * kPackedDepth, A.lda, i0, i1);
    }
    if (full * kPackedDepth < k) {
      for (int64_t i = i0; i < i1; ++i) {
        float* row = tail[i - i0];
        std::fill(row, row + kPackedDepth, 0.0f);
        std::copy(A.f32 + i * A.lda + full * kPackedDepth, A.f32 + i * A.lda + k, row);
      }
      run_rows({W, r0, r1, full, 1, C, ldc, full > 0}, &tail[0][0], kPackedDepth, i0, i1);
    }
  }
}

}  // namespace evomerge::infer_detail
