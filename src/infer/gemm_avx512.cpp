// AVX-512F f32 GEMM kernel (gemm.h). Compiled for AVX-512 with a target attribute on each function
// (the file builds under any -march; gemm_dispatch.cpp calls it only where the CPU has AVX-512).
//
// Dot-product form, matching W's [n x k] layout: a micro-kernel takes MR rows of A and NR rows of W
// and keeps MR x NR vector accumulators over a k-chunk, each weight vector widened to f32 in a
// register (bf16: a 16-bit shift; f16: vcvtph2ps) and used for all MR rows. One accumulator per
// output, so a row's result does not depend on how many rows are multiplied with it.

#include <array>
#include <utility>

#include "infer/avx512_intrinsics.h"
#include "infer/gemm.h"
#include "infer/gemm_tiling.h"

#define EM_AVX512 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,fma,f16c")))

namespace evomerge::infer_detail {
namespace {

constexpr int kMaxMr = 4, kMaxNr = 8;

template <DType T>
EM_AVX512 inline __m512 load_w(const std::byte* p, __mmask16 mask) {
  if constexpr (T == DType::F32) {
    return _mm512_maskz_loadu_ps(mask, p);
  } else {
    const __m256i h = _mm256_maskz_loadu_epi16(mask, p);
    if constexpr (T == DType::BF16)
      return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    else
      return _mm512_cvtph_ps(h);
  }
}

// One 16-column step of the micro-kernel: acc[i][j] += A[i][0:16] * W[j][0:16] (masked lanes 0).
template <DType T, int MR, int NR>
EM_AVX512 __attribute__((always_inline)) inline void micro_step(__m512 (&acc)[MR][NR],
                                                                const float* A, int64_t lda,
                                                                const std::byte* W,
                                                                int64_t ldw_bytes, __mmask16 mask) {
  __m512 a[MR];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) a[i] = _mm512_maskz_loadu_ps(mask, A + i * lda);
#pragma GCC unroll 8
  for (int j = 0; j < NR; ++j) {
    const __m512 w = load_w<T>(W + j * ldw_bytes, mask);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) acc[i][j] = _mm512_fmadd_ps(a[i], w, acc[i][j]);
  }
}

using MicroFn = void (*)(const float* A, int64_t lda, const std::byte* W, int64_t ldw, int64_t k0,
                         int64_t kc, float* C, int64_t ldc, bool accumulate);

// C[MR x NR] (+)= A[MR rows, k0 : k0+kc] · W[NR rows, same columns]ᵀ; ldw in elements.
template <DType T, int MR, int NR>
EM_AVX512 void micro(const float* A, int64_t lda, const std::byte* W, int64_t ldw, int64_t k0,
                     int64_t kc, float* C, int64_t ldc, bool accumulate) {
  constexpr int64_t esz = T == DType::F32 ? 4 : 2;
  __m512 acc[MR][NR];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_setzero_ps();
  const int64_t end = k0 + kc;
  int64_t c = k0;
  for (; c + 16 <= end; c += 16)
    micro_step<T, MR, NR>(acc, A + c, lda, W + c * esz, ldw * esz, 0xffff);
  if (c < end)
    micro_step<T, MR, NR>(acc, A + c, lda, W + c * esz, ldw * esz,
                          static_cast<__mmask16>((1u << (end - c)) - 1));
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) {
      const float s = _mm512_reduce_add_ps(acc[i][j]);
      C[i * ldc + j] = accumulate ? C[i * ldc + j] + s : s;
    }
}

template <DType T, int MR, int... J>
constexpr std::array<MicroFn, kMaxNr> micro_row(std::integer_sequence<int, J...>) {
  return {&micro<T, MR, J + 1>...};
}
template <DType T>
constexpr std::array<std::array<MicroFn, kMaxNr>, kMaxMr> kMicro = {
    micro_row<T, 1>(std::make_integer_sequence<int, kMaxNr>{}),
    micro_row<T, 2>(std::make_integer_sequence<int, kMaxNr>{}),
    micro_row<T, 3>(std::make_integer_sequence<int, kMaxNr>{}),
    micro_row<T, 4>(std::make_integer_sequence<int, kMaxNr>{})};
// W rows per micro-kernel for a block of MR activation rows: enough accumulators (MR x NR) to hide
// the FMA latency, few enough to leave registers for the A rows and the widened weight vector.
constexpr int kNrFor[kMaxMr + 1] = {0, 8, 6, 5, 4};

template <DType T>
void rows_t(const GemmActivations& A, const GemmWeights& W, int64_t r0, int64_t r1, float* C,
            int64_t ldc) {
  const int64_t k = A.k, esz = T == DType::F32 ? 4 : 2;
  const std::byte* w0 = W.data + r0 * k * esz;
  gemm_tiles(A.m, r1 - r0, k, 16, kMaxMr, kNrFor,
             [&](int64_t i0, int mr, int64_t j0, int nr, int64_t k0, int64_t kc, bool acc) {
               kMicro<T>[mr - 1][nr - 1](A.f32 + i0 * A.lda, A.lda, w0 + j0 * k * esz, k, k0, kc,
                                         C + i0 * ldc + j0, ldc, acc);
             });
}

}  // namespace

void gemm_rows_avx512(const GemmActivations& A, const GemmWeights& W, int64_t r0, int64_t r1,
                      float* C, int64_t ldc) {
  switch (W.dtype) {
    case DType::BF16:
      return rows_t<DType::BF16>(A, W, r0, r1, C, ldc);
    case DType::F16:
      return rows_t<DType::F16>(A, W, r0, r1, C, ldc);
    default:
      return rows_t<DType::F32>(A, W, r0, r1, C, ldc);
  }
}

}  // namespace evomerge::infer_detail
