// Internal to the CUDA backend: bf16 GEMMs with f32 accumulation through cuBLASLt.
#pragma once

#include <cublasLt.h>

#include <cstdint>
#include <map>
#include <tuple>

#include "infer/cuda/device.h"
#include "infer/cuda/kernels.h"

namespace evomerge::cuda {

// Y[n x out] (f32) = X[n x in] (bf16) · Wᵀ, W [out x in] bf16 row-major (nn.Linear layout), f32
// accumulation. One algorithm per shape, chosen by cuBLASLt's heuristic on first use and kept.
class Gemm {
 public:
  explicit Gemm(cudaStream_t stream);
  ~Gemm();
  Gemm(const Gemm&) = delete;
  Gemm& operator=(const Gemm&) = delete;
  void linear(const bf16_t* W, int64_t out, int64_t in, const bf16_t* X, int64_t n, float* Y);

 private:
  struct Plan {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
    cublasLtMatmulAlgo_t algo{};
  };
  Plan& plan(int64_t out, int64_t in, int64_t n);

  cudaStream_t stream_;
  cublasLtHandle_t handle_ = nullptr;
  DeviceBuffer<std::byte> workspace_;
  std::map<std::tuple<int64_t, int64_t, int64_t>, Plan> plans_;
};

}  // namespace evomerge::cuda
