// AVX2 + FMA f32 GEMM kernel (gemm.h), for x86-64 CPUs without AVX-512 (Haswell to Alder Lake,
// Zen 1-3). Same dot-product form as gemm_avx512.cpp with 8-lane vectors and 16 registers; the last
// partial vector of a row goes through zero-padded copies (AVX2 has no masked 16-bit loads).
#include <immintrin.h>

#include <array>
#include <cstring>
#include <utility>

#include "infer/gemm.h"
#include "infer/gemm_tiling.h"

#define EM_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace evomerge::infer_detail {
namespace {

constexpr int kMaxMr = 3, kMaxNr = 8;

template <DType T>
EM_AVX2 inline __m256 load_w(const std::byte* p) {
  if constexpr (T == DType::F32) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(p));
  } else {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    if constexpr (T == DType::BF16)
      return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    else
      return _mm256_cvtph_ps(h);
  }
}

EM_AVX2 inline float reduce_add(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// acc[i][j] += A[i][0:8] * W[j][0:8]; lda in floats, ldw in bytes.
template <DType T, int MR, int NR>
EM_AVX2 __attribute__((always_inline)) inline void micro_step(__m256 (&acc)[MR][NR], const float* A,
                                                              int64_t lda, const std::byte* W,
                                                              int64_t ldw_bytes) {
  __m256 a[MR];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) a[i] = _mm256_loadu_ps(A + i * lda);
#pragma GCC unroll 8
  for (int j = 0; j < NR; ++j) {
    const __m256 w = load_w<T>(W + j * ldw_bytes);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) acc[i][j] = _mm256_fmadd_ps(a[i], w, acc[i][j]);
  }
}

using MicroFn = void (*)(const float* A, int64_t lda, const std::byte* W, int64_t ldw, int64_t k0,
                         int64_t kc, float* C, int64_t ldc, bool accumulate);

template <DType T, int MR, int NR>
EM_AVX2 void micro(const float* A, int64_t lda, const std::byte* W, int64_t ldw, int64_t k0,
                   int64_t kc, float* C, int64_t ldc, bool accumulate) {
  constexpr int64_t esz = T == DType::F32 ? 4 : 2;
  __m256 acc[MR][NR];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm256_setzero_ps();
  const int64_t end = k0 + kc;
  int64_t c = k0;
  for (; c + 8 <= end; c += 8) micro_step<T, MR, NR>(acc, A + c, lda, W + c * esz, ldw * esz);
  if (c < end) {
    // The tail (< 8 columns), zero-padded to a full vector.
    const int64_t t = end - c;
    alignas(32) float ta[MR][8] = {};
    alignas(32) std::byte tw[NR][8 * esz] = {};
    for (int i = 0; i < MR; ++i) std::memcpy(ta[i], A + i * lda + c, t * 4);
    for (int j = 0; j < NR; ++j) std::memcpy(tw[j], W + (j * ldw + c) * esz, t * esz);
    micro_step<T, MR, NR>(acc, &ta[0][0], 8, &tw[0][0], 8 * esz);
  }
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) {
      const float s = reduce_add(acc[i][j]);
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
    micro_row<T, 3>(std::make_integer_sequence<int, kMaxNr>{})};
// W rows per micro-kernel for MR activation rows: MR x NR accumulators + MR + 1 within 16 ymm.
constexpr int kNrFor[kMaxMr + 1] = {0, 8, 5, 4};

template <DType T>
void rows_t(const GemmActivations& A, const GemmWeights& W, int64_t r0, int64_t r1, float* C,
            int64_t ldc) {
  const int64_t k = A.k, esz = T == DType::F32 ? 4 : 2;
  const std::byte* w0 = W.data + r0 * k * esz;
  gemm_tiles(A.m, r1 - r0, k, 8, kMaxMr, kNrFor,
             [&](int64_t i0, int mr, int64_t j0, int nr, int64_t k0, int64_t kc, bool acc) {
               kMicro<T>[mr - 1][nr - 1](A.f32 + i0 * A.lda, A.lda, w0 + j0 * k * esz, k, k0, kc,
                                         C + i0 * ldc + j0, ldc, acc);
             });
}

}  // namespace

void gemm_rows_avx2(const GemmActivations& A, const GemmWeights& W, int64_t r0, int64_t r1,
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
