// The AMX kernel on pre-packed bf16 weights (gemm.h: PackedBf16, gemm_rows_amx_packed), written
// with the tile intrinsics. oneDNN's matmul on W read in place re-packs every W block into the tile
// layout on every call, which at decode's 16-48 rows costs more than reading W
// (docs/benchmarks.md); here W is packed once, when the engine gets its weights, and each call only
// streams it.
//
// Tiles: 4 C (0-3: one row tile of <= 16 activation rows x 4 blocks of 16 output columns), one A
// per bf16 part of the activations (from 4: the same rows of each part) and one or two B (packed
// blocks; two alternate when there are fewer than three parts). All parts of a row tile accumulate
// into the same C tile (C += A_p · B for p < parts), so each block of W is loaded once per call and
// row tile, and the parts need no separate products or sum. Column groups are the outer loop and
// row tiles the inner one: a group's W (64 columns x k) stays in L2 while the row tiles of a block
// of rows (as many as fit in L2 beside it) pass over it; W is streamed once per block of rows.

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#include <sys/mman.h>

#include "common/error.h"
#include "infer/avx512_intrinsics.h"
#include "infer/gemm.h"

#define EM_AMX __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw")))

namespace evomerge::infer_detail {

void PackedBf16::Free::operator()(uint16_t* p) const {
  std::free(p);
}

namespace {

// One full block: out[r][c] = the 32-bit pair (W[c][2r], W[c][2r + 1]) of 16 rows of W (row
// stride k elements) from `src` on, r, c < 16: a 16 x 16 transpose of 32-bit elements.
void pack_full_block_scalar(const uint16_t* src, int64_t k, uint16_t* out) {
  for (int64_t c = 0; c < kPackedCols; ++c)
    for (int64_t r = 0; r < kPackedDepth / 2; ++r)
      std::memcpy(out + (r * kPackedCols + c) * 2, src + c * k + 2 * r, 4);
}

// The same in registers: 16 rows of 64 bytes in, four rounds of unpacks and 128-bit lane
// shuffles (the standard 16 x 16 transpose), 16 rows of 64 bytes out.
__attribute__((target("avx512f"))) void pack_full_block_avx512(const uint16_t* src, int64_t k,
                                                               uint16_t* out) {
  __m512i r[16], t[16];
  for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_si512(src + i * k);
  for (int i = 0; i < 16; i += 2) {  // 32-bit interleave of row pairs
    t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4)  // 64-bit interleave: each 128-bit lane holds 4 rows' element
    for (int j = 0; j < 2; ++j) {
      r[i + j] = _mm512_unpacklo_epi64(t[i + j], t[i + j + 2]);
      r[i + j + 2] = _mm512_unpackhi_epi64(t[i + j], t[i + j + 2]);
    }
  // Now, for group g = i / 4 (rows 4g..4g+3), r[4g + q] lane l holds element 4l + e(q) of those
  // four rows, with e = 0, 2, 1, 3 for q = 0..3 (unpacklo/hi order). Gather the lanes of the four
  // groups: output row (element) 4l + e is lane l of r[q] from groups 0..3.
  for (int q = 0; q < 4; ++q) {
    const __m512i a = _mm512_shuffle_i32x4(r[q], r[4 + q], 0x44);       // g0 l0 l1, g1 l0 l1
    const __m512i b = _mm512_shuffle_i32x4(r[8 + q], r[12 + q], 0x44);  // g2 l0 l1, g3 l0 l1
    const __m512i c = _mm512_shuffle_i32x4(r[q], r[4 + q], 0xee);       // l2 l3
    const __m512i d = _mm512_shuffle_i32x4(r[8 + q], r[12 + q], 0xee);
    const int e = q == 1 ? 2 : q == 2 ? 1 : q;
    t[0 + e] = _mm512_shuffle_i32x4(a, b, 0x88);   // lane 0 of g0..g3: element e
    t[4 + e] = _mm512_shuffle_i32x4(a, b, 0xdd);   // lane 1: element 4 + e
    t[8 + e] = _mm512_shuffle_i32x4(c, d, 0x88);   // lane 2
    t[12 + e] = _mm512_shuffle_i32x4(c, d, 0xdd);  // lane 3
  }
  for (int i = 0; i < 16; ++i) _mm512_store_si512(out + i * 32, t[i]);
}

// The same with AVX2 (CPUs without AVX-512, whose avx2 kernel reads the packed weights): four 8 x 8
// transposes of 32-bit elements (unpacks, in-lane shuffles, 128-bit lane permutes), quadrant
// (columns 8q.., k pairs 8h..) to output rows 8h.. at column offset 8q.
__attribute__((target("avx2"))) void pack_full_block_avx2(const uint16_t* src, int64_t k,
                                                          uint16_t* out) {
  for (int q = 0; q < 2; ++q)
    for (int h = 0; h < 2; ++h) {
      __m256 r[8], t[8];
      for (int i = 0; i < 8; ++i)
        r[i] = _mm256_loadu_ps(reinterpret_cast<const float*>(src + (8 * q + i) * k + 16 * h));
      for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);  // rows i, i+1 interleaved: elements 0,1 | 4,5
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);  // elements 2,3 | 6,7
      }
      for (int i = 0; i < 8; i += 4)
        for (int j = 0; j < 2; ++j) {
          r[i + 2 * j] = _mm256_shuffle_ps(t[i + j], t[i + j + 2], 0x44);  // element 2j (and +4)
          r[i + 2 * j + 1] = _mm256_shuffle_ps(t[i + j], t[i + j + 2], 0xee);  // 2j + 1 (and +4)
        }
      // r[e] (e < 4) holds element e of rows 0-3 (low lane) and element e + 4 (high lane); r[4 + e]
      // the same for rows 4-7.
      for (int e = 0; e < 4; ++e) {
        float* row = reinterpret_cast<float*>(out + (8 * h + e) * 2 * kPackedCols) + 8 * q;
        _mm256_store_ps(row, _mm256_permute2f128_ps(r[e], r[4 + e], 0x20));
        _mm256_store_ps(row + 4 * kPackedCols, _mm256_permute2f128_ps(r[e], r[4 + e], 0x31));
      }
    }
}

// Buffers of a 2 MiB page or more are 2 MiB-aligned and asked for transparent huge pages: packing
// is the first touch of every page, and 4 KiB faults were most of its time for big matrices.
uint16_t* allocate_packed(size_t bytes) {
  constexpr size_t kHuge = size_t{2} << 20;
  const size_t align = bytes >= kHuge ? kHuge : 64;
  const size_t size = (bytes + align - 1) / align * align;
  void* p = std::aligned_alloc(align, size);
  if (!p) throw std::bad_alloc();
  if (align == kHuge) ::madvise(p, size, MADV_HUGEPAGE);  // advice: ignored where THP is off
  return static_cast<uint16_t*>(p);
}

}  // namespace

size_t PackedBf16::bytes_for(int64_t n, int64_t k) {
  const int64_t nb = (n + kPackedCols - 1) / kPackedCols,
                kb = (k + kPackedDepth - 1) / kPackedDepth;
  return static_cast<size_t>(nb * kb * kPackedBlock) * sizeof(uint16_t);
}

uint16_t* PackedBf16::resize(int64_t n, int64_t k) {
  EM_ASSERT(n > 0 && k > 0);
  const size_t elements = bytes_for(n, k) / sizeof(uint16_t);
  if (elements > capacity_) {
    data_.reset(allocate_packed(elements * sizeof(uint16_t)));
    capacity_ = elements;
  }
  elements_ = elements;
  rows_ = n, cols_ = k, depth_blocks_ = (k + kPackedDepth - 1) / kPackedDepth;
  return data_.get();
}

void PackedBf16::pack(const uint16_t* w, int64_t n, int64_t k, GemmKernel widest) {
  resize(n, k);
  const int64_t nb = (n + kPackedCols - 1) / kPackedCols, kb = depth_blocks_;
  static const bool cpu_avx512 = __builtin_cpu_supports("avx512f"),
                    cpu_avx2 = __builtin_cpu_supports("avx2");
  const bool avx512 = cpu_avx512 && widest >= GemmKernel::Avx512,
             avx2 = cpu_avx2 && widest >= GemmKernel::Avx2;
  // Block (jb, kb) at (jb * kb_count + kb) * 512: 16 rows of k pairs, each row the 16 columns'
  // pairs (W[col][2r], W[col][2r + 1]): the B operand of _tile_dpbf16ps. Zero beyond n and k.
  for (int64_t jb = 0; jb < nb; ++jb)
    for (int64_t b = 0; b < kb; ++b) {
      uint16_t* out = data_.get() + (jb * kb + b) * kPackedBlock;
      if ((jb + 1) * kPackedCols <= n && (b + 1) * kPackedDepth <= k) {
        const uint16_t* src = w + jb * kPackedCols * k + b * kPackedDepth;
        if (avx512)
          pack_full_block_avx512(src, k, out);
        else if (avx2)
          pack_full_block_avx2(src, k, out);
        else
          pack_full_block_scalar(src, k, out);
        continue;
      }
      for (int64_t r = 0; r < kPackedDepth / 2; ++r)
        for (int64_t c = 0; c < kPackedCols; ++c)
          for (int64_t e = 0; e < 2; ++e) {
            const int64_t col = jb * kPackedCols + c, depth = b * kPackedDepth + 2 * r + e;
            out[(r * kPackedCols + c) * 2 + e] = col < n && depth < k ? w[col * k + depth] : 0;
          }
    }
}

void PackedBf16::clear() {
  data_.reset();
  elements_ = capacity_ = 0;
  rows_ = cols_ = depth_blocks_ = 0;
}

namespace {

// The tile configuration (palette 1): C and A tiles have the row tile's rows, B tiles 16 rows of k
// pairs; all rows 64 bytes. Tile 6 is an A tile with three parts, a B tile with fewer.
struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

EM_AMX void configure_tiles(int rows, int parts) {
  TileConfig cfg;
  const int first_b = parts == 3 ? 7 : 6;
  for (int t = 0; t < 8; ++t) {
    cfg.rows[t] = static_cast<uint8_t>(t < first_b ? rows : kPackedDepth / 2);
    cfg.colsb[t] = 64;
  }
  _tile_loadconfig(&cfg);
}

// The tile instructions with the tile number a template argument (GCC's intrinsics paste it into
// the instruction text, so they take only literals); %c prints the bare number.
template <int T>
EM_AMX __attribute__((always_inline)) inline void tile_load(const void* p, int64_t stride) {
  asm volatile("tileloadd (%0,%1,1), %%tmm%c2" ::"r"(p), "r"(stride), "n"(T) : "memory");
}
template <int T>
EM_AMX __attribute__((always_inline)) inline void tile_store(void* p, int64_t stride) {
  asm volatile("tilestored %%tmm%c0, (%1,%2,1)" ::"n"(T), "r"(p), "r"(stride) : "memory");
}
template <int T>
EM_AMX __attribute__((always_inline)) inline void tile_zero() {
  asm volatile("tilezero %%tmm%c0" ::"n"(T));
}
template <int C, int A, int B>
EM_AMX __attribute__((always_inline)) inline void tile_dot() {  // C += A · B (bf16 pairs, f32)
  asm volatile("tdpbf16ps %%tmm%c2, %%tmm%c1, %%tmm%c0" ::"n"(C), "n"(A), "n"(B));
}

// Tiles: C 0-3 (a group of 4 blocks, 64 output columns), A from 4 (one per part). Three parts
// leave one B tile (7); fewer leave two, and B alternates between 6 and 7 so that the next block
// loads while the last one's products run. Measured (load 7, per CPU-second, against one B tile
// for all): bf16 prefill 1.12-1.17x; three parts with 3 C tiles and two B tiles lost 10-20 %.
constexpr int kFirstA = 4;
template <int PARTS, int J>
inline constexpr int kBTile = PARTS == 3 ? 7 : 6 + J % 2;

// C tile J += sum over parts of A_p · B, B the packed block at b.
template <int PARTS, int J>
EM_AMX __attribute__((always_inline)) inline void multiply_block(const uint16_t* b) {
  constexpr int A = kFirstA, B = kBTile<PARTS, J>;
  tile_load<B>(b, 64);
  tile_dot<J, A, B>();
  if constexpr (PARTS > 1) tile_dot<J, A + 1, B>();
  if constexpr (PARTS > 2) tile_dot<J, A + 2, B>();
}

// Stores C tile J ([rows x 16] f32) into c (row stride ldc) when all 16 columns are wanted, else
// through a staging tile, only the first `cols` columns.
template <int J>
EM_AMX __attribute__((always_inline)) inline void store_block(float* c, int64_t ldc, int rows,
                                                              int cols) {
  if (cols >= kPackedCols) {
    tile_store<J>(c, ldc * static_cast<int64_t>(sizeof(float)));
    return;
  }
  alignas(64) float stage[16 * kPackedCols];
  tile_store<J>(stage, kPackedCols * sizeof(float));
  for (int i = 0; i < rows; ++i) std::memcpy(c + i * ldc, stage + i * kPackedCols, cols * 4);
}

// One row tile (rows <= 16, configured) times NB packed column blocks over all of k:
// c[rows x cols] = sum over parts p of a_p[rows x k] · B. a: part 0's first row, lda its row stride
// (elements, k padded to 32), part p at a + p * part_stride; b: the first column block's first
// block, blocks of one column block consecutive over k (depth_blocks of them).
template <int PARTS, int NB>
EM_AMX void row_tile_times_group(const uint16_t* a, int64_t lda, int64_t part_stride,
                                 const uint16_t* b, int64_t depth_blocks, float* c, int64_t ldc,
                                 int rows, int cols) {
  constexpr int A = kFirstA;
  tile_zero<0>();
  if constexpr (NB > 1) tile_zero<1>();
  if constexpr (NB > 2) tile_zero<2>();
  if constexpr (NB > 3) tile_zero<3>();
  const int64_t a_stride = lda * static_cast<int64_t>(sizeof(uint16_t));
  const int64_t column_block = depth_blocks * kPackedBlock;
  for (int64_t kb = 0; kb < depth_blocks; ++kb) {
    const uint16_t* ak = a + kb * kPackedDepth;
    tile_load<A>(ak, a_stride);
    if constexpr (PARTS > 1) tile_load<A + 1>(ak + part_stride, a_stride);
    if constexpr (PARTS > 2) tile_load<A + 2>(ak + 2 * part_stride, a_stride);
    const uint16_t* bk = b + kb * kPackedBlock;
    multiply_block<PARTS, 0>(bk);
    if constexpr (NB > 1) multiply_block<PARTS, 1>(bk + column_block);
    if constexpr (NB > 2) multiply_block<PARTS, 2>(bk + 2 * column_block);
    if constexpr (NB > 3) multiply_block<PARTS, 3>(bk + 3 * column_block);
  }
  store_block<0>(c, ldc, rows, cols);
  if constexpr (NB > 1) store_block<1>(c + 16, ldc, rows, cols - 16);
  if constexpr (NB > 2) store_block<2>(c + 32, ldc, rows, cols - 32);
  if constexpr (NB > 3) store_block<3>(c + 48, ldc, rows, cols - 48);
}

using GroupFn = void (*)(const uint16_t*, int64_t, int64_t, const uint16_t*, int64_t, float*,
                         int64_t, int, int);

template <int PARTS>
GroupFn group_fn(int blocks) {
  switch (blocks) {
    case 1:
      return row_tile_times_group<PARTS, 1>;
    case 2:
      return row_tile_times_group<PARTS, 2>;
    case 3:
      return row_tile_times_group<PARTS, 3>;
    default:
      return row_tile_times_group<PARTS, 4>;
  }
}

GroupFn group_fn(int parts, int blocks) {
  switch (parts) {
    case 1:
      return group_fn<1>(blocks);
    case 2:
      return group_fn<2>(blocks);
    default:
      return group_fn<3>(blocks);
  }
}

// Activation rows per pass over W's column groups: their parts (parts x rows x k bf16) stay in
// L2 (2 MiB a core on current server CPUs) beside one group's W while the group's row tiles run.
constexpr int64_t kActivationBlockBytes = 768 << 10;

}  // namespace

EM_AMX void gemm_rows_amx_packed(const GemmActivations& A, const PackedBf16& W, int64_t r0,
                                 int64_t r1, float* C, int64_t ldc, GemmScratch& scratch) {
  EM_ASSERT(r0 % kPackedCols == 0 && r1 <= W.rows() && A.k == W.cols());
  EM_ASSERT(A.parts >= 1 && A.parts <= 3);
  const int64_t m = A.m, k = A.k, parts = A.parts, kb = W.depth_blocks();
  // The A tiles read 32 k per block: rows of k not a multiple of 32 are copied, zero-padded.
  const uint16_t* a = A.split;
  int64_t lda = k;
  if (k % kPackedDepth != 0) {
    lda = kb * kPackedDepth;
    scratch.padded.assign(static_cast<size_t>(parts * m * lda), 0);
    for (int64_t row = 0; row < parts * m; ++row)
      std::copy(A.split + row * k, A.split + (row + 1) * k, scratch.padded.data() + row * lda);
    a = scratch.padded.data();
  }
  const int64_t group_cols = 4 * kPackedCols;
  const GroupFn full = group_fn(static_cast<int>(parts), 4);
  const int64_t row_bytes = parts * lda * static_cast<int64_t>(sizeof(uint16_t));
  const int64_t block_rows = std::max<int64_t>(16, kActivationBlockBytes / row_bytes / 16 * 16);
  int configured = 0;
  for (int64_t i_block = 0; i_block < m; i_block += block_rows) {
    const int64_t i_end = std::min(m, i_block + block_rows);
    for (int64_t j0 = r0; j0 < r1; j0 += group_cols) {
      const int cols = static_cast<int>(std::min(group_cols, r1 - j0));
      const GroupFn fn = cols == group_cols ? full
                                            : group_fn(static_cast<int>(parts),
                                                       (cols + kPackedCols - 1) / kPackedCols);
      const uint16_t* b = W.data() + (j0 / kPackedCols) * kb * kPackedBlock;
      for (int64_t i0 = i_block; i0 < i_end; i0 += 16) {
        const int rows = static_cast<int>(std::min<int64_t>(16, m - i0));
        if (rows != configured) configure_tiles(rows, static_cast<int>(parts)), configured = rows;
        fn(a + i0 * lda, lda, m * lda, b, kb, C + i0 * ldc + (j0 - r0), ldc, rows, cols);
      }
    }
  }
  _tile_release();
}

}  // namespace evomerge::infer_detail
