// Internal to the inference stage: the CPU matrix products of the engine's linear layers,
//   C[m x n] = A[m x k] · Wᵀ,   A f32 activations (row-major), W [n x k] in its stored dtype
//   (bf16, f16 or f32; the nn.Linear layout), f32 accumulation, no f32 copy of W.
// Several kernels, one per instruction set; the one used is chosen at run time from what the CPU
// (and the OS) can run, so one binary runs on any x86-64 and still uses AMX where it exists:
//   amx         bf16 tiles (Sapphire Rapids and later; bf16 weights): our tile kernel on weights
//               packed once into the tile layout (PackedBf16, as the engine's are), oneDNN's
//               brgemm on weights read in place
//   avx512bf16  vdpbf16ps dot products (Cooper Lake, Zen 4 and later; bf16 weights)
//   avx512      AVX-512F f32 FMA, weights widened in registers: outer-product kernel on bf16
//               weights packed once (as the engine's are), dot products on weights in place
//   avx2        AVX2 + FMA f32, weights widened in registers: an outer-product kernel on bf16
//               weights packed once (PackedBf16, as the engine's are), a dot-product one on weights
//               read in place and on f16/f32
//   scalar      plain loops: the reference every other kernel is tested against
// The bf16 kernels split each activation into three bf16 parts (a = p0 + p1 + p2 to ~2^-27, each
// part the bf16 rounding of what the earlier ones left) and multiply all three: the products are
// then as exact as f32 ones, where one bf16 part (PyTorch's bf16 autocast) is ~2^-9 and moves the
// logits by ~1e-2. Two parts (hi + lo, products within 2^-16) were measured: 1.5-1.8x the amx
// GEMM rate, 1.2-1.3x prefill, logits 1.2e-5..3.0e-5 from the PyTorch goldens (three: <= 0.9e-5),
// but one greedy answer of the bundled tasks then differs from PyTorch's (a near-tie; eval's
// Reference.BundledModelsMatchPyTorchOnBundledTasks), so three it stays (docs/benchmarks.md).
// Products of few rows (decode) skip the split altogether: gemm_kernel_for_rows. Weights that are
// not bf16 take the f32 kernel of the same CPU (avx512 or avx2).
// Precision::Bf16 (infer/precision.h) is the one-part product instead: activations rounded to
// bf16 once (one part, GemmActivations::parts = 1) and, for the f32 kernels, the rounded values
// as f32 (round_activations_to_bf16), so every kernel multiplies the same numbers.
// EVOMERGE_GEMM=<name> forces a kernel (an error if this CPU cannot run it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "infer/precision.h"
#include "tensor/tensor.h"

namespace evomerge::infer_detail {

// In order of the instruction sets they need (each a superset of the one before).
enum class GemmKernel : uint8_t { Scalar, Avx2, Avx512, Avx512Bf16, Amx };
inline constexpr GemmKernel kAllGemmKernels[] = {GemmKernel::Scalar, GemmKernel::Avx2,
                                                 GemmKernel::Avx512, GemmKernel::Avx512Bf16,
                                                 GemmKernel::Amx};

std::string_view gemm_kernel_name(GemmKernel kernel);
std::optional<GemmKernel> parse_gemm_kernel(std::string_view name);

// Why this CPU, OS or build cannot run `kernel` ("" when it can). For AMX this also asks Linux for
// the tile-data state (arch_prctl ARCH_REQ_XCOMP_PERM), once.
std::string gemm_kernel_unavailable(GemmKernel kernel);

// The kernel the engine uses: EVOMERGE_GEMM when set (fails when unknown or not runnable here),
// else the fastest runnable one.
GemmKernel selected_gemm_kernel();

// The kernel that actually runs for weights of `dtype` when `kernel` is asked for: the bf16
// kernels take bf16 weights only; others fall back to the f32 kernel of the same CPU.
GemmKernel gemm_kernel_for(GemmKernel kernel, DType dtype);

// Whether EVOMERGE_GEMM chose the kernel (then linear() runs it at every m, for tests and benches).
bool gemm_kernel_forced();

// At most this many activation rows, a product is bound by reading W on any current CPU (m
// multiply-adds per 2-byte bf16 weight, ~m FLOP/byte, where CPUs have 10-40 FLOP per byte of
// memory bandwidth), so the bf16 kernels' activation split, oneDNN's per-call cost and its
// padding of a few rows to a tile buy nothing. Measured (docs/benchmarks.md): oneDNN's amx on W
// in place < avx512 at m = 1..8, 1.7x avx512 at m = 16. (amx on packed weights: kPackedAmxMinRows.)
inline constexpr int64_t kBandwidthBoundRows = 8;

// amx on weights packed for the tiles (our tile kernel, no per-call re-packing) is faster than
// avx512 from this many rows on (measured, docs/benchmarks.md: 2.9x at m = 8, 1.9x at m = 16).
inline constexpr int64_t kPackedAmxMinRows = 2;

// The kernel linear() runs for m activation rows and weights of `dtype` when the engine's kernel
// is `selected`: gemm_kernel_for(selected, dtype), except that the bf16 kernels (amx, avx512bf16)
// hand m <= kBandwidthBoundRows to the exact f32-FMA kernel of the same CPU (avx512: both bf16
// kernels need AVX-512 F/DQ/BW/VL), and amx on `packed` weights (PackedBf16) only
// m < kPackedAmxMinRows.
GemmKernel gemm_kernel_for_rows(GemmKernel selected, DType dtype, int64_t m, bool packed = false);

// bf16 W [n x k] packed once into the AMX B-tile layout: blocks of 16 output columns x 32 k (1 KiB,
// contiguous), each 16 rows of k pairs holding the 16 columns' pairs (W[c][2r], W[c][2r+1]) (the
// VNNI layout _tile_dpbf16ps multiplies), a column block's blocks consecutive over k; n padded to
// 16 and k to 32 with zeros. Column block jb, depth block kb at (jb * depth_blocks + kb) * 512.
// The same bytes are oneDNN's BA16a16b2a format of the [k x n] matrix.
inline constexpr int64_t kPackedCols = 16, kPackedDepth = 32, kPackedBlock = 512;
class PackedBf16 {
 public:
  // (Re)packs W [n x k] (bf16 bit patterns). Full blocks are transposed in registers: AVX-512 where
  // the CPU has it, else AVX2, else plain moves; `widest` caps that (tests hold each to the
  // layout).
  void pack(const uint16_t* w, int64_t n, int64_t k, GemmKernel widest = GemmKernel::Amx);
  // Sizes the buffer for W [n x k] (bytes_for; reused when it is large enough, so a per-thread
  // copy refilled for each attention block does not allocate) and returns it, for a caller that
  // writes the tile layout itself (attention_amx.cpp packs Vᵀ straight from f32 rows).
  uint16_t* resize(int64_t n, int64_t k);
  void clear();
  bool empty() const { return !data_; }
  const uint16_t* data() const { return data_.get(); }
  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  int64_t depth_blocks() const { return depth_blocks_; }
  size_t bytes() const { return elements_ * sizeof(uint16_t); }
  // What pack() of W [n x k] takes: whole 16 x 32 blocks, n and k padded up.
  static size_t bytes_for(int64_t n, int64_t k);

 private:
  struct Free {
    void operator()(uint16_t* p) const;
  };
  std::unique_ptr<uint16_t[], Free> data_;  // 64-byte aligned
  size_t elements_ = 0, capacity_ = 0;
  int64_t rows_ = 0, cols_ = 0, depth_blocks_ = 0;
};

// Whether the engine packs bf16 weights (PackedBf16) when its kernel is `kernel`: amx (the tile
// kernel, and avx512 for its few rows), avx512 and avx2 (their outer-product kernels) read only the
// packed copy.
bool gemm_kernel_packs_bf16(GemmKernel kernel);

// A weight matrix W [rows x cols], row-major, in its stored dtype (bf16 / f16 / f32 bit patterns),
// and optionally its packed copy: then the only bytes the amx, avx512 and avx2 kernels read (the
// others read `data`).
struct GemmWeights {
  const std::byte* data = nullptr;
  DType dtype = DType::F32;
  int64_t rows = 0, cols = 0;
  const PackedBf16* packed = nullptr;
};

// Parts of the activations' bf16 split.
inline constexpr int kSplitParts = 3;

// The activations of one product, prepared for a kernel: f32 rows (Precision::Bf16: already
// rounded to bf16 values), and for the bf16 kernels their bf16 split ([parts*m x k]: rows
// p*m .. p*m+m-1 hold part p).
struct GemmActivations {
  const float* f32 = nullptr;
  int64_t m = 0, k = 0, lda = 0;
  const uint16_t* split = nullptr;  // bf16 kernels only
  int parts = kSplitParts;          // parts in `split`: kSplitParts (exact) or 1 (bf16)
};

// Does `kernel` need the bf16 split of the activations (then fill it with split_activations)?
bool gemm_needs_split(GemmKernel kernel);
// Rows [i0, i1) of the split of A [m x k] (row stride lda) into out [parts*m x k]: part 0 is
// bf16(a) (round to nearest even), part p the bf16 rounding of a minus parts 0..p-1.
void split_activations(const float* A, int64_t m, int64_t k, int64_t lda, int64_t i0, int64_t i1,
                       int parts, uint16_t* out);
// The same bits from plain loops over f32_to_bf16 (the reference split_activations is tested
// against: it runs an AVX-512 pass where the CPU has one).
void split_activations_reference(const float* A, int64_t m, int64_t k, int64_t lda, int64_t i0,
                                 int64_t i1, int parts, uint16_t* out);
// Rows [i0, i1) of A [m x k] (row stride lda) rounded to bf16 (nearest even) and widened back,
// into out [m x k]: what the f32 kernels multiply under Precision::Bf16.
void round_activations_to_bf16(const float* A, int64_t k, int64_t lda, int64_t i0, int64_t i1,
                               float* out);

// Reusable per-thread buffers of the kernels (grown on first use, never shrunk).
struct GemmScratch {
  std::vector<float> wide;         // f32 staging (the amx kernel's [kSplitParts*m x n] product)
  std::vector<std::byte> library;  // oneDNN's scratchpad
  std::vector<uint16_t> padded;    // the packed amx kernel's activations, k padded to 32
};

// C[:, r0:r1] = A · W[r0:r1]ᵀ: C is [m x (r1 - r0)] with row stride ldc. Single-threaded; callers
// split W's rows across threads. `kernel` must be runnable here and already resolved with
// gemm_kernel_for(kernel, W.dtype).
void gemm_rows(GemmKernel kernel, const GemmActivations& A, const GemmWeights& W, int64_t r0,
               int64_t r1, float* C, int64_t ldc, GemmScratch& scratch);

// Per-ISA entry points behind gemm_rows (one file each; same contract, W rows [r0, r1)).
void gemm_rows_scalar(const GemmActivations& A, const GemmWeights& W, int64_t r0, int64_t r1,
                      float* C, int64_t ldc);
void gemm_rows_avx2(const GemmActivations& A, const GemmWeights& W, int64_t r0, int64_t r1,
                    float* C, int64_t ldc);
void gemm_rows_avx512(const GemmActivations& A, const GemmWeights& W, int64_t r0, int64_t r1,
                      float* C, int64_t ldc);
void gemm_rows_avx512bf16(const GemmActivations& A, const GemmWeights& W, int64_t r0, int64_t r1,
                          float* C, int64_t ldc);
void gemm_rows_amx(const GemmActivations& A, const GemmWeights& W, int64_t r0, int64_t r1, float* C,
                   int64_t ldc, GemmScratch& scratch);
bool gemm_amx_built();  // built with oneDNN
// The avx512 kernel on packed weights (the engine's bf16 products where its kernel is avx512, and
// the few rows amx hands to avx512): same contract as gemm_rows_avx512, r0 a multiple of
// kPackedCols.
void gemm_rows_avx512_packed(const GemmActivations& A, const PackedBf16& W, int64_t r0, int64_t r1,
                             float* C, int64_t ldc);
// k per chunk of the avx2 and avx512 kernels on packed weights (for more rows than one tile): a
// task's W panels of a chunk stay in cache while its rows pass (kernels.cpp sizes tasks by them).
inline constexpr int64_t kPackedChunkDepth = 256;
// The avx2 kernel on packed weights (the engine's bf16 products on AVX2 CPUs): same contract as
// gemm_rows_avx2, r0 a multiple of kPackedCols.
void gemm_rows_avx2_packed(const GemmActivations& A, const PackedBf16& W, int64_t r0, int64_t r1,
                           float* C, int64_t ldc);
// The tile kernel on packed weights: C[:, r0:r1] for W rows [r0, r1), r0 a multiple of kPackedCols;
// A.split holds A.parts (1..3) bf16 parts. Only on a CPU where amx is available.
void gemm_rows_amx_packed(const GemmActivations& A, const PackedBf16& W, int64_t r0, int64_t r1,
                          float* C, int64_t ldc, GemmScratch& scratch);

}  // namespace evomerge::infer_detail
