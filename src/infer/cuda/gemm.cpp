#include "infer/cuda/gemm.h"

namespace evomerge::cuda {
namespace {

constexpr size_t kWorkspaceBytes = 32u << 20;

void check_lt(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS)
    fail("cuda", "{}: cuBLASLt status {}", what, static_cast<int>(status));
}

}  // namespace

Gemm::Gemm(cudaStream_t stream) : stream_(stream), workspace_(kWorkspaceBytes) {
  check_lt(cublasLtCreate(&handle_), "cublasLtCreate");
}

Gemm::~Gemm() {
  for (auto& [shape, p] : plans_) {
    cublasLtMatrixLayoutDestroy(p.a);
    cublasLtMatrixLayoutDestroy(p.b);
    cublasLtMatrixLayoutDestroy(p.d);
    cublasLtMatmulDescDestroy(p.desc);
  }
  if (handle_) cublasLtDestroy(handle_);
}

// Column-major view (cuBLAS's): D [out x n] = op(A) · B with A = W seen as [in x out] (lda = in),
// op = transpose, and B = X seen as [in x n] (ldb = in); D is Y seen as [out x n] (ldd = out).
Gemm::Plan& Gemm::plan(int64_t out, int64_t in, int64_t n) {
  const auto key = std::make_tuple(out, in, n);
  if (auto it = plans_.find(key); it != plans_.end()) return it->second;
  Plan p;
  check_lt(cublasLtMatmulDescCreate(&p.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), "matmul desc");
  const cublasOperation_t trans = CUBLAS_OP_T, none = CUBLAS_OP_N;
  check_lt(
      cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &trans, sizeof(trans)),
      "transa");
  check_lt(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &none, sizeof(none)),
           "transb");
  check_lt(cublasLtMatrixLayoutCreate(&p.a, CUDA_R_16BF, in, out, in), "layout A");
  check_lt(cublasLtMatrixLayoutCreate(&p.b, CUDA_R_16BF, in, n, in), "layout B");
  check_lt(cublasLtMatrixLayoutCreate(&p.d, CUDA_R_32F, out, n, out), "layout D");
  cublasLtMatmulPreference_t pref = nullptr;
  check_lt(cublasLtMatmulPreferenceCreate(&pref), "preference");
  const size_t ws = workspace_.size();
  check_lt(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws,
                                                sizeof(ws)),
           "workspace preference");
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  const cublasStatus_t st =
      cublasLtMatmulAlgoGetHeuristic(handle_, p.desc, p.a, p.b, p.d, p.d, pref, 1, &result, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  if (st != CUBLAS_STATUS_SUCCESS || found == 0)
    fail("cuda", "cuBLASLt has no bf16 GEMM algorithm for [{} x {}] x [{} x {}]ᵀ", n, in, out, in);
  p.algo = result.algo;
  return plans_.emplace(key, p).first->second;
}

void Gemm::linear(const bf16_t* W, int64_t out, int64_t in, const bf16_t* X, int64_t n, float* Y) {
  if (n <= 0) return;
  Plan& p = plan(out, in, n);
  const float alpha = 1.0f, beta = 0.0f;
  check_lt(cublasLtMatmul(handle_, p.desc, &alpha, W, p.a, X, p.b, &beta, Y, p.d, Y, p.d, &p.algo,
                          workspace_.get(), workspace_.size(), stream_),
           "cublasLtMatmul");
}

}  // namespace evomerge::cuda
