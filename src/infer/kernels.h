// Internal to the inference stage: the thread pool and the matmul / vector kernels of the fast
// path. Not a public header of evomerge (engine.h is); shared by engine.cpp, the tests and the
// bench.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <span>
#include <thread>
#include <type_traits>
#include <vector>

#include "infer/gemm.h"
#include "tensor/tensor.h"

namespace evomerge::infer_detail {

// A fixed set of worker threads. parallel_for(n, f) calls f(i, thread) for every i in [0, n) with
// indices handed out dynamically (an atomic counter), `thread` in [0, size()) identifying the
// caller so it can use per-thread scratch. The calling thread works too. No allocation per call.
// Waiting threads (workers between calls, the caller for the last task) spin for up to spin()
// before they sleep on a condition variable: a decode step is tens of parallel regions a few
// microseconds apart, and a sleep + wake-up costs two futex calls and, on a VM, an interrupt to a
// halted vCPU. A thread whose last wait outlasted the spin sleeps at once next time, so idle pools
// sleep, and a thread that is being preempted (a loaded machine) does not spin at all
// (kernels.cpp: wait_for): there the CPU a spin burns is taken from the pool's own work.
class ThreadPool {
 public:
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;
  int size() const { return static_cast<int>(workers_.size()) + 1; }

  template <class F>
  void parallel_for(int64_t n, F&& f) {
    if (n <= 0) return;
    if (n == 1 || workers_.empty()) {
      for (int64_t i = 0; i < n; ++i) f(i, 0);
      return;
    }
    run(
        n,
        [](void* ctx, int64_t i, int t) { (*static_cast<std::remove_reference_t<F>*>(ctx))(i, t); },
        &f);
  }

  // How long a waiting thread spins before it sleeps: EVOMERGE_SPIN_US (0: never spin; a
  // machine shared by more threads than cores loses least that way), else kDefaultSpin, longer
  // than the gaps between the regions of a decode step (the work between two products of one
  // row: a norm, RoPE), shorter than a sleep + wake-up round trip on a VM.
  static std::chrono::microseconds spin();
  static constexpr std::chrono::microseconds kDefaultSpin{20};

  // A waiting thread's spin policy (kernels.cpp: wait_for).
  struct WaitState {
    bool spins = true;       // its last wait ended within the spin
    bool preempted = false;  // it was preempted lately
    long involuntary_switches = 0;
    std::chrono::steady_clock::time_point next_check{};
  };

 private:
  using Fn = void (*)(void*, int64_t, int);
  void run(int64_t n, Fn fn, void* ctx);
  void work(int thread);
  void worker_loop(int thread);

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable start_cv_, done_cv_;
  // Written by the caller before generation_ is bumped (release), read by workers after they see
  // it (acquire).
  Fn fn_ = nullptr;
  void* ctx_ = nullptr;
  int64_t n_ = 0;
  bool stop_ = false;  // under mutex_
  alignas(64) std::atomic<uint64_t> generation_{0};
  std::atomic<int> busy_{0};                  // workers still in the current call
  std::atomic<int> sleeping_workers_{0};      // workers blocked on start_cv_
  std::atomic<bool> caller_sleeping_{false};  // the caller blocked on done_cv_
  WaitState caller_wait_;                     // the caller's (kernels.cpp: wait_for)
  alignas(64) std::atomic<int64_t> next_{0};
};

// A weight matrix W [rows x cols] (nn.Linear layout [out, in]) in its stored dtype, with an
// optional f32 copy and, where the engine's kernel is amx, avx512 or avx2, its bf16 packed once
// into the tile layout (gemm.h: PackedBf16, gemm_kernel_packs_bf16; the kernels then read only that
// copy). f32() is the matrix as f32 when that needs no conversion (stored F32, or cached).
struct Matrix {
  const std::byte* data = nullptr;
  DType dtype = DType::F32;
  int64_t rows = 0, cols = 0;
  std::vector<float> cache;  // f32 copy (cache option, or an unaligned F32 view)
  PackedBf16 packed;         // amx, avx512, avx2 only: bf16 W packed for their kernels
  const float* f32() const {
    if (!cache.empty()) return cache.data();
    return dtype == DType::F32 ? reinterpret_cast<const float*>(data) : nullptr;
  }
  // (Re)builds `cache` and `packed` after the bytes changed; `packed` when the engine's kernel
  // (selected_gemm_kernel) packs bf16 (amx, avx512, avx2), no f32 copy is kept and `may_pack`.
  void refresh(bool keep_f32_copy, bool may_pack = true);
  // Whether refresh() would pack this matrix (given may_pack), and the bytes it would take.
  bool packs(bool keep_f32_copy) const;
  size_t packed_bytes() const { return PackedBf16::bytes_for(rows, cols); }

 private:
  // Whether refresh() keeps an f32 copy (asked for, or an unaligned F32 view).
  bool keeps_f32_copy(bool keep_f32_copy) const;
};

// Scratch of linear(), sized on first use and reused: the activations' bf16 split (bf16 GEMM
// kernels), their bf16-rounded f32 copy (f32 kernels under Precision::Bf16) and each thread's
// kernel buffers.
struct MatmulScratch {
  std::vector<uint16_t> split;
  std::vector<float> rounded;
  std::vector<GemmScratch> per_thread;
};

// Y[n x W.rows] = X[n x W.cols] · Wᵀ, row-major, f32. The GEMM kernel chosen for this CPU
// (gemm.h: AMX, AVX512-BF16, AVX-512, AVX2 or scalar; EVOMERGE_GEMM forces one) multiplies W in
// its stored dtype, or its f32 copy when one is kept; threads split W's rows. Unless forced, a
// product of few rows (decode) runs on the f32-FMA kernel (gemm_kernel_for_rows).
// Precision::Bf16 (infer/precision.h): X is rounded to bf16 once per call, for every kernel.
void linear(ThreadPool& pool, const Matrix& W, const float* X, int64_t n, float* Y,
            MatmulScratch& scratch, Precision precision = Precision::Exact);
// linear() through a given kernel (runnable here; the benches compare kernels with it).
void linear_with(GemmKernel kernel, ThreadPool& pool, const Matrix& W, const float* X, int64_t n,
                 float* Y, MatmulScratch& scratch, Precision precision = Precision::Exact);

// One product of a fused region: Y [n x W->rows] = X · W->ᵀ.
struct LinearOut {
  const Matrix* W = nullptr;
  float* Y = nullptr;
};
inline constexpr size_t kMaxFusedProducts = 4;

// linear() of one X [n x cols] with up to kMaxFusedProducts matrices of `cols` columns (the
// attention's q, k, v) in one parallel region: one fork/join instead of one per matrix, the X split
// (bf16 kernels) done once. Each Y as linear() computes it.
void linear_many(ThreadPool& pool, std::span<const LinearOut> outs, const float* X, int64_t n,
                 MatmulScratch& scratch, Precision precision = Precision::Exact);

// The MLP's gated pair in one region: G [n x gate.rows] = X · gateᵀ and U = X · upᵀ (gate, up of
// one shape, both as linear() computes them), each task computing the same W rows [c0, c1) of both
// and then calling epilogue(c0, c1) (the activation on those columns of every row), so the
// activation needs no region of its own.
template <class Epilogue>
void linear_gated(ThreadPool& pool, const Matrix& gate, const Matrix& up, const float* X, int64_t n,
                  float* G, float* U, MatmulScratch& scratch, Precision precision,
                  Epilogue&& epilogue) {
  linear_gated_fn(
      pool, gate, up, X, n, G, U, scratch,
      [](void* ctx, int64_t c0, int64_t c1) {
        (*static_cast<std::remove_reference_t<Epilogue>*>(ctx))(c0, c1);
      },
      &epilogue, precision);
}
void linear_gated_fn(ThreadPool& pool, const Matrix& gate, const Matrix& up, const float* X,
                     int64_t n, float* G, float* U, MatmulScratch& scratch,
                     void (*epilogue)(void*, int64_t, int64_t), void* ctx, Precision precision);

// The plain version of linear(): scalar loops, double accumulation. For tests.
void linear_reference(const Matrix& W, const float* X, int64_t n, float* Y);

float dot(const float* a, const float* b, int64_t n);

// The first index of the largest of x[0, n), as `if (x[i] > x[best]) best = i` finds it (NaNs
// never win; 0 when x[0] is NaN), in two vectorised passes: the head's greedy pick over the vocab.
int64_t argmax(const float* x, int64_t n);

}  // namespace evomerge::infer_detail
