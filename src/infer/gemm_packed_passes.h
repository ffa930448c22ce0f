// Internal to the f32 kernels on tile-packed bf16 weights (gemm_avx2_packed.cpp,
// gemm_avx512_packed.cpp): the passes both cut a product into, and a micro-kernel call's operands.
// A's rows go in blocks of kPackedRowBlock (their activations of one k chunk stay in L2), k in
// chunks of kPackedChunkDepth (a column block's panel stays in L1 while a row block's tiles pass
// over it; later chunks continue from C), except that a product of at most max_mr rows (decode: one
// tile) runs over all of k at once. W is zero-padded to whole 32-deep blocks in the packing but A
// is not, so the last partial block multiplies a zero-padded copy of those activations.
#pragma once

#include <algorithm>
#include <cstdint>

#include "infer/gemm.h"

namespace evomerge::infer_detail {

inline constexpr int64_t kPackedRowBlock = 96;  // a multiple of each kernel's tile rows (6, 8)

inline constexpr int64_t kPackedRow = 2 * kPackedCols;  // uint16 per row of a block (one k pair)

// One micro-kernel call's operands: activation rows A [mr x lda] from the chunk's first k on; the
// packed panels of its column blocks (the first at w, the next `w_stride` elements apart) from the
// chunk's first block on, or, on the widened path, their f32 copy `wide` [nb][blocks * 32][16];
// `blocks` packed blocks of k; C [mr x ldc] at the tile's first column.
struct PackedTile {
  const float* a;
  int64_t lda;
  const uint16_t* w;
  int64_t w_stride, blocks;
  const float* wide;
  float* c;
  int64_t ldc;
  int cols;         // valid output columns of the tile (< nb * 16 only in the last column block)
  bool accumulate;  // continue from C (chunks after the first)
};

// One pass over k blocks [b0, b0 + blocks) and W columns [r0, r1) of C (C's column 0 = W row r0).
struct PackedPass {
  const PackedBf16& W;
  int64_t r0, r1, b0, blocks;
  float* C;
  int64_t ldc;
  bool accumulate;  // continue from C (chunks after the first)
};

// Calls run_rows(pass, a, lda, i0, i1) for every pass of C[:, r0:r1] = A · W[r0:r1]ᵀ: rows
// [i0, i1) of A at a (row stride lda, from the pass's first k on).
template <class RunRows>
void packed_passes(const GemmActivations& A, const PackedBf16& W, int64_t r0, int64_t r1, float* C,
                   int64_t ldc, int max_mr, RunRows&& run_rows) {
  constexpr int64_t kChunkBlocks = kPackedChunkDepth / kPackedDepth;
  const int64_t k = A.k, full = k / kPackedDepth;
  const int64_t chunk = A.m <= max_mr ? std::max<int64_t>(full, 1) : kChunkBlocks;
  alignas(64) float tail[kPackedRowBlock][kPackedDepth];  // the last partial block's rows
  for (int64_t i0 = 0; i0 < A.m; i0 += kPackedRowBlock) {
    const int64_t i1 = std::min(A.m, i0 + kPackedRowBlock);
    for (int64_t b0 = 0; b0 < full; b0 += chunk) {
      const PackedPass p{W, r0, r1, b0, std::min(chunk, full - b0), C, ldc, b0 > 0};
      run_rows(p, A.f32 + i0 * A.lda + b0 * kPackedDepth, A.lda, i0, i1);
    }
    if (full * kPackedDepth < k) {
      for (int64_t i = i0; i < i1; ++i) {
        float* row = tail[i - i0];
        std::fill(row, row + kPackedDepth, 0.0f);
        std::copy(A.f32 + i * A.lda + full * kPackedDepth, A.f32 + i * A.lda + k, row);
      }
      run_rows(PackedPass{W, r0, r1, full, 1, C, ldc, full > 0}, &tail[0][0], kPackedDepth, i0, i1);
    }
  }
}

}  // namespace evomerge::infer_detail
