// Internal to the inference stage: the CPU attention of one block of consecutive query rows of one
// head against its kv head's cache, and the vocab log-sum-exp of scoring. Our own kernels, one per
// instruction set like the GEMMs (gemm.h), so nothing here depends on a BLAS guessing the CPU:
//   scalar   plain loops and std::exp: the reference the others are tested against
//   avx2     AVX2 + FMA, 8 lanes
//   avx512   AVX-512F, 16 lanes (also under the avx512bf16 and amx GEMM kernels)
// chosen from the GEMM kernel (selected_gemm_kernel(): the same CPU detection and EVOMERGE_GEMM
// override), attention_kernel_for(). Under Precision::Bf16 with the amx GEMM kernel, prefill blocks
// run on the AMX tiles instead (attend_group_amx, attention_amx.cpp; avx512's softmax).
//
// The block (rows p0 .. p0+m-1 of one sequence, causal, optional sliding window and soft-cap):
//   S = scale · Q Kᵀ   computed only for keys a row or its tile can see (causal skip by tiles),
//                      through a packed Kᵀ panel of kPanelKeys keys for m >= kPanelMinRows, dot
//                      products for fewer rows (decode);
//   P = exp(S - max)   in place, the sum in the same pass; rows never normalised in place:
//   O = (P V) / sum    the 1/sum folded into the P·V kernel's store.
// The vectorised exp (Cody-Waite reduction and a degree-6 polynomial, Cephes' expf) is within 1 ulp
// of exp (in double, rounded to f32) on [-87.33, 88.37]: every one of its 2.24e9 floats checked
// once, on avx2 and avx512 (attention_kernels_test.cpp checks every 61st); it returns 0 below
// -87.33, where std::exp's results are subnormal (< 2^-126): softmax arguments are x - max <= 0, so
// the largest term is 1 and those terms are below f32's resolution of the sum.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "infer/gemm.h"

namespace evomerge::infer_detail {

enum class AttentionKernel : uint8_t { Scalar, Avx2, Avx512 };
inline constexpr AttentionKernel kAllAttentionKernels[] = {
    AttentionKernel::Scalar, AttentionKernel::Avx2, AttentionKernel::Avx512};

std::string_view attention_kernel_name(AttentionKernel kernel);
// The attention kernel of the CPU a GEMM kernel runs on (amx and avx512bf16 imply AVX-512F).
AttentionKernel attention_kernel_for(GemmKernel gemm);
// The one the engine uses: attention_kernel_for(selected_gemm_kernel()).
AttentionKernel selected_attention_kernel();
// Why this CPU or OS cannot run it ("" when it can): the GEMM kernel of the same ISA's answer.
std::string attention_kernel_unavailable(AttentionKernel kernel);

// Keys per packed Kᵀ panel, and the fewest block rows that use the panel (fewer: dot products,
// as packing a key costs as much as one row's products with it).
inline constexpr int64_t kPanelKeys = 32;
inline constexpr int64_t kPanelMinRows = 4;

// Cache positions [j0, j1) of one kv head: K of position j at k + (j - j0) * ld, V at v + ...
// (ld: AttentionBlock::ldkv). A block reads up to two: the parent's cache and its own.
struct KvSegment {
  const float* k = nullptr;
  const float* v = nullptr;
  int64_t j0 = 0, j1 = 0;
};

// One block: query rows i = 0..m-1 at positions p0 + i (Q [m x hd], row stride ldq), each attending
// to keys j with max(0, pos - window + 1) <= j <= pos; out [m x hd] (row stride ldo).
struct AttentionBlock {
  const float* q = nullptr;
  int64_t ldq = 0;
  float* out = nullptr;
  int64_t ldo = 0;
  int64_t m = 0, hd = 0, p0 = 0;
  int64_t window = INT64_MAX;
  float scale = 1.0f;
  float softcap = 0.0f;  // > 0: scores become cap * tanh(s / cap) (Gemma 2)
  const KvSegment* segments = nullptr;
  int nsegments = 0;
  int64_t ldkv = 0;  // floats between consecutive positions' K (and V) rows
  // Precision::Bf16: the probabilities exp(S - max) are rounded to bf16 (nearest even) before
  // P·V, their sum (the softmax's normaliser) is the unrounded one's. The caller rounds q, k and
  // v (the engine where it writes them), so QKᵀ and P·V multiply bf16 values, f32 accumulation:
  // PyTorch's bf16 attention, and what the AMX tiles multiply (attend_group_amx).
  bool bf16 = false;
};

// The first key row i of a block sees: max(0, pos - window + 1), pos = p0 + i.
inline int64_t first_key(const AttentionBlock& b, int64_t i) {
  const int64_t pos = b.p0 + i;
  return b.window >= pos + 1 ? 0 : pos - b.window + 1;  // pos - j < window
}

// K (value: V) of position j, from the segment that holds it.
const float* kv_row(const AttentionBlock& b, int64_t j, bool value);

// Per-thread buffers of attend_block, grown by reserve() and never shrunk (a decode step reserves
// nothing new: decode_alloc_test.cpp).
struct AttentionScratch {
  std::vector<float> scores;    // [m x (p0 + m)]
  std::vector<float> panel;     // [hd x kPanelKeys]
  std::vector<float> rowscale;  // [m]: 1 / sum of each row's exp
  void reserve(int64_t rows, int64_t keys, int64_t hd);
  // attend_group_amx only (prefill blocks; decode steps never touch them): one head's q
  // [m x hd], the keys [keys x hd] and probabilities [m x keys padded to 32] in bf16, K and Vᵀ
  // packed for the tiles, the GEMM kernel's own scratch.
  std::vector<uint16_t> q16, k16, p16;
  PackedBf16 k_tiles, v_tiles;
  GemmScratch gemm;
};

// Attention of one block (single-threaded; callers split blocks and heads across threads).
void attend_block(AttentionKernel kernel, const AttentionBlock& block, AttentionScratch& scratch);

// Precision::Bf16's attention of a prefill block on the AMX tiles, for `heads` query heads that
// share one kv head (GQA): head h's q rows at b.q + h * b.hd, its output at b.out + h * b.hd (same
// ldq / ldo). K and V are converted and packed for the tiles once for all of them. Per head:
// S = Q Kᵀ (tiles) over keys [first_key(b, 0), p0 + m) (the keys a row may not see are computed
// and masked: at most one row tile's triangle), then scale, soft-cap, the softmax of attend_block
// with the avx512 kernel's exp and b.bf16's rounding of P, O = P V (tiles) / sum. The same numbers
// as attend_block(Avx512, b with bf16 = true, per head) up to the products' summation order
// (attention_kernels_test.cpp: Bf16MatchesRoundedReferenceOnEveryKernel). Only where
// amx_attention_unavailable() is "".
void attend_group_amx(const AttentionBlock& b, int64_t heads, AttentionScratch& scratch);
// Why attend_group_amx cannot run here ("" when it can): the amx GEMM kernel's answer, and the
// AVX512-BF16 conversions it packs V with.
std::string amx_attention_unavailable();
// Fewest rows of a block that attend_group_amx is used for (the engine's rule, with the
// kernel available, Precision::Bf16 and the amx GEMM kernel selected): as the Kᵀ panel's.
inline constexpr int64_t kAmxAttentionMinRows = kPanelMinRows;
// Most rows of one attend_group_amx block (the engine's prefill blocks on it): K and V are packed
// once per block, so longer blocks pack a long context's keys fewer times (64 rows: packing was
// ~1/5 of the attention at 2048 tokens), and S [rows x keys] f32 still fits L2 at 2048 keys.
inline constexpr int64_t kAmxAttentionRows = 128;

// log Σ_i exp(x_i - mx) over x [0, n), mx the maximum of x: the log-softmax's normaliser over the
// vocab. Scalar: std::exp and the sum in double (the reference). SIMD: the vectorised exp, sums
// of 256 terms in f32 lanes added in double (relative error of the sum ~1e-6 at worst).
double log_sum_exp(AttentionKernel kernel, const float* x, int64_t n, float mx);

// y[i] = exp(x[i]) for i in [0, n) with the kernel's exp (for tests).
void exp_with(AttentionKernel kernel, const float* x, float* y, int64_t n);

// The same exp's other user, the SwiGLU activation: g[i] = silu(g[i]) * u[i] for i in [0, n),
// silu(x) = x / (1 + exp(-x)) (scalar: std::exp, as reference_forward).
void silu_mul(AttentionKernel kernel, float* g, const float* u, int64_t n);

// The per-ISA operations attend_block is built from (attention_kernels*.cpp; same contracts).
struct AttentionOps {
  int score_rows = 1;  // rows per call of `scores` (its register tile)
  int pv_rows = 1;     // rows per call of `pv`
  // S[i][jj] = scale * Σ_d q[i][d] * panel[d][jj] for i < rows, jj < nkeys (<= kPanelKeys);
  // S has row stride lds; panel [hd x kPanelKeys].
  void (*scores)(const float* q, int64_t ldq, int64_t rows, const float* panel, int64_t nkeys,
                 int64_t hd, float scale, float* S, int64_t lds);
  // S[jj] = scale * q · K[jj] for jj < nkeys, K rows at stride ldk.
  void (*scores_dot)(const float* q, const float* k, int64_t ldk, int64_t nkeys, int64_t hd,
                     float scale, float* S);
  float (*row_max)(const float* x, int64_t n);
  // x <- exp(x - mx); returns Σ of the new x.
  float (*exp_sum)(float* x, int64_t n, float mx);
  double (*log_sum_exp)(const float* x, int64_t n, float mx);
  void (*exp)(const float* x, float* y, int64_t n);
  void (*silu_mul)(float* g, const float* u, int64_t n);
  // O[i][:hd] = rowscale[i] * Σ_{j in [j0, j1)} P[i][j] * V_j for i < rows, V_j read from the
  // segments (V of position j at seg.v + (j - seg.j0) * ldv); P indexed by position (row stride
  // ldp).
  void (*pv)(const float* P, int64_t ldp, int64_t rows, const KvSegment* segments, int nsegments,
             int64_t ldv, int64_t j0, int64_t j1, int64_t hd, const float* rowscale, float* O,
             int64_t ldo);
};
const AttentionOps& attention_ops_scalar();
const AttentionOps& attention_ops_avx2();
const AttentionOps& attention_ops_avx512();
const AttentionOps& attention_ops(AttentionKernel kernel);

}  // namespace evomerge::infer_detail
