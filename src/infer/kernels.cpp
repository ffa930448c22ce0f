#include "infer/kernels.h"

#include <cblas.h>
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <iterator>

#include "common/error.h"
#include "tensor/convert.h"

namespace evomerge::infer_detail {

ThreadPool::ThreadPool(int threads) {
  for (int t = 1; t < std::max(1, threads); ++t)
    workers_.emplace_back([this, t] { worker_loop(t); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  start_cv_.notify_all();
  for (auto& w : workers_) w.join();
}

void ThreadPool::work(int thread) {
  for (int64_t i; (i = next_.fetch_add(1, std::memory_order_relaxed)) < n_;) fn_(ctx_, i, thread);
}

void ThreadPool::worker_loop(int thread) {
  uint64_t seen = 0;
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      start_cv_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
    }
    work(thread);
    {
      std::lock_guard lock(mutex_);
      if (--busy_ == 0) done_cv_.notify_one();
    }
  }
}

void ThreadPool::run(int64_t n, Fn fn, void* ctx) {
  {
    std::lock_guard lock(mutex_);
    fn_ = fn;
    ctx_ = ctx;
    n_ = n;
    next_.store(0, std::memory_order_relaxed);
    busy_ = static_cast<int>(workers_.size());
    ++generation_;
  }
  start_cv_.notify_all();
  work(0);
  std::unique_lock lock(mutex_);
  done_cv_.wait(lock, [&] { return busy_ == 0; });
}

void Matrix::refresh(bool keep_f32_copy) {
  const size_t n = static_cast<size_t>(rows * cols);
  const bool unaligned_f32 =
      dtype == DType::F32 && reinterpret_cast<uintptr_t>(data) % alignof(float) != 0;
  if ((keep_f32_copy && dtype != DType::F32) || unaligned_f32) {
    cache.resize(n);
    convert_to_f32(dtype, data, cache.data(), n);
  } else {
    cache.clear();
    cache.shrink_to_fit();
  }
}

float dot(const float* a, const float* b, int64_t n) {
  // 64 independent partial sums = four 16-lane vectors: the compiler vectorises this without
  // -ffast-math, and four accumulators hide the FMA latency (one would serialise on it).
  float acc[64] = {};
  int64_t i = 0;
  for (; i + 64 <= n; i += 64)
    for (int l = 0; l < 64; ++l) acc[l] += a[i + l] * b[i + l];
  for (; i + 16 <= n; i += 16)
    for (int l = 0; l < 16; ++l) acc[l] += a[i + l] * b[i + l];
  for (int l = 16; l < 64; ++l) acc[l & 15] += acc[l];
  float s = 0;
  for (int l = 0; l < 16; ++l) s += acc[l];
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

namespace {

std::vector<float>& thread_buffer(MatmulScratch& scratch, int thread, size_t n) {
  auto& buf = scratch.per_thread[thread];
  if (buf.size() < n) buf.resize(n);
  return buf;
}

// Y[:, r0:r1] = X · W[r0:r1]ᵀ with W given as f32 rows (ldw = cols), Y with row stride ldy.
void sgemm_block(const float* X, int64_t n, const float* Wrows, int64_t r, int64_t cols, float* Y,
                 int64_t ldy) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(n), static_cast<int>(r),
              static_cast<int>(cols), 1.0f, X, static_cast<int>(cols), Wrows,
              static_cast<int>(cols), 0.0f, Y, static_cast<int>(ldy));
}

// out[r * out_stride] = dot(bf16 row w[cols], X[r][cols]) for r < N, in one pass over w: each chunk
// of the weight row is widened to f32 in registers (bf16 -> f32 is a 16-bit shift) and used for all
// N activation rows. Several independent accumulators per row hide the FMA latency.
template <int N>
void bf16_rows_dot(const uint16_t* w, const float* X, int64_t cols, float* out,
                   int64_t out_stride) {
  int64_t c = 0;
  float sums[N] = {};
#if defined(__AVX512F__)
  constexpr int C = N == 1 ? 4 : N == 2 ? 2 : 1;  // 16-float chunks per step and row
  __m512 acc[N][C];
  for (int r = 0; r < N; ++r)
    for (int k = 0; k < C; ++k) acc[r][k] = _mm512_setzero_ps();
  for (; c + 16 * C <= cols; c += 16 * C) {
    for (int k = 0; k < C; ++k) {
      const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + c + 16 * k));
      const __m512 wf = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
      for (int r = 0; r < N; ++r)
        acc[r][k] = _mm512_fmadd_ps(wf, _mm512_loadu_ps(X + r * cols + c + 16 * k), acc[r][k]);
    }
  }
  for (int r = 0; r < N; ++r) {
    __m512 t = acc[r][0];
    for (int k = 1; k < C; ++k) t = _mm512_add_ps(t, acc[r][k]);
    sums[r] = _mm512_reduce_add_ps(t);
  }
#endif
  for (int r = 0; r < N; ++r) {
    float s = sums[r];
    for (int64_t t = c; t < cols; ++t) s += bf16_to_f32(w[t]) * X[r * cols + t];
    out[r * out_stride] = s;
  }
}

using Bf16RowsFn = void (*)(const uint16_t*, const float*, int64_t, float*, int64_t);
constexpr Bf16RowsFn kBf16Rows[] = {nullptr,          bf16_rows_dot<1>, bf16_rows_dot<2>,
                                    bf16_rows_dot<3>, bf16_rows_dot<4>, bf16_rows_dot<5>,
                                    bf16_rows_dot<6>, bf16_rows_dot<7>, bf16_rows_dot<8>};
static_assert(std::size(kBf16Rows) == kFusedMaxRows + 1);

}  // namespace

void linear(ThreadPool& pool, const Matrix& W, const float* X, int64_t n, float* Y,
            MatmulScratch& scratch) {
  if (n <= 0) return;
  const int64_t rows = W.rows, cols = W.cols;
  if (static_cast<int>(scratch.per_thread.size()) < pool.size())
    scratch.per_thread.resize(pool.size());
  const float* wf = W.f32();
  if (!wf && n <= kFusedMaxRows && W.dtype == DType::BF16) {
    // Few activation rows, bf16 weights: one pass over each weight row for all rows of X.
    constexpr int64_t kRowsPerTask = 16;
    const int64_t tasks = (rows + kRowsPerTask - 1) / kRowsPerTask;
    const auto* w16 = reinterpret_cast<const uint16_t*>(W.data);
    const Bf16RowsFn fn = kBf16Rows[n];
    pool.parallel_for(tasks, [&](int64_t task, int) {
      for (int64_t r = task * kRowsPerTask; r < std::min(rows, (task + 1) * kRowsPerTask); ++r)
        fn(w16 + r * cols, X, cols, Y + r, rows);
    });
    return;
  }
  if (!wf && n <= kFusedMaxRows) {
    // Few activation rows: each W row is converted into an L1 buffer once and dotted with all rows
    // of X, so W's bytes are read once in their stored width (memory-bound decode).
    constexpr int64_t kRowsPerTask = 16;
    const int64_t tasks = (rows + kRowsPerTask - 1) / kRowsPerTask;
    pool.parallel_for(tasks, [&](int64_t task, int thread) {
      auto& buf = thread_buffer(scratch, thread, cols);
      const size_t esz = dtype_size(W.dtype);
      for (int64_t r = task * kRowsPerTask; r < std::min(rows, (task + 1) * kRowsPerTask); ++r) {
        convert_to_f32(W.dtype, W.data + r * cols * esz, buf.data(), cols);
        for (int64_t i = 0; i < n; ++i) Y[i * rows + r] = dot(X + i * cols, buf.data(), cols);
      }
    });
    return;
  }
  // Blocks of W rows, one sgemm each. Every block makes OpenBLAS pack all of X again, so blocks are
  // as large as the conversion buffer allows (kBlockBytes of f32), their count a multiple of the
  // thread count so the split balances.
  const int64_t threads = pool.size();
  const int64_t per_thread =
      std::max<int64_t>(1, (rows * cols * 4 + threads * kBlockBytes - 1) / (threads * kBlockBytes));
  int64_t block = std::max<int64_t>(16, (rows + threads * per_thread - 1) / (threads * per_thread));
  block = std::min(block, rows);
  const int64_t tasks = (rows + block - 1) / block;
  pool.parallel_for(tasks, [&](int64_t task, int thread) {
    const int64_t r0 = task * block, r = std::min(block, rows - r0);
    const float* wrows;
    if (wf) {
      wrows = wf + r0 * cols;
    } else {
      auto& buf = thread_buffer(scratch, thread, static_cast<size_t>(block * cols));
      convert_to_f32(W.dtype, W.data + r0 * cols * dtype_size(W.dtype), buf.data(),
                     static_cast<size_t>(r * cols));
      wrows = buf.data();
    }
    sgemm_block(X, n, wrows, r, cols, Y + r0, rows);
  });
}

void linear_reference(const Matrix& W, const float* X, int64_t n, float* Y) {
  std::vector<float> row(W.cols);
  for (int64_t r = 0; r < W.rows; ++r) {
    convert_to_f32(W.dtype, W.data + r * W.cols * dtype_size(W.dtype), row.data(), W.cols);
    for (int64_t i = 0; i < n; ++i) {
      double acc = 0;
      for (int64_t c = 0; c < W.cols; ++c) acc += static_cast<double>(X[i * W.cols + c]) * row[c];
      Y[i * W.rows + r] = static_cast<float>(acc);
    }
  }
}

}  // namespace evomerge::infer_detail
