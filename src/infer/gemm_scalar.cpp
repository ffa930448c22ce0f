// The plain GEMM kernel: one f32 accumulator per output, weights widened element by element. The
// portable fallback and the reference the SIMD kernels are tested against.
#include "infer/gemm.h"
#include "tensor/convert.h"

namespace evomerge::infer_detail {

namespace {
float weight_at(const GemmWeights& W, int64_t index) {
  const auto* p = W.data;
  switch (W.dtype) {
    case DType::BF16:
      return bf16_to_f32(reinterpret_cast<const uint16_t*>(p)[index]);
    case DType::F16:
      return f16_to_f32(reinterpret_cast<const uint16_t*>(p)[index]);
    default: {
      float f;
      std::memcpy(&f, p + index * 4, 4);  // an F32 view need not be aligned
      return f;
    }
  }
}
}  // namespace

void gemm_rows_scalar(const GemmActivations& A, const GemmWeights& W, int64_t r0, int64_t r1,
                      float* C, int64_t ldc) {
  const int64_t k = A.k;
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t i = 0; i < A.m; ++i) {
      const float* a = A.f32 + i * A.lda;
      float acc = 0;
      for (int64_t c = 0; c < k; ++c) acc += a[c] * weight_at(W, r * W.cols + c);
      C[i * ldc + (r - r0)] = acc;
    }
}

}  // namespace evomerge::infer_detail
