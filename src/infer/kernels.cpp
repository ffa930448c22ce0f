#include "infer/kernels.h"

#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <limits>

#include "common/error.h"
#include "tensor/convert.h"

namespace evomerge::infer_detail {

namespace {

using Clock = std::chrono::steady_clock;

// Spins until done() holds or `budget` has passed; whether done() held.
template <class Done>
bool spin_until(Done&& done, std::chrono::microseconds budget) {
  const auto end = Clock::now() + budget;
  for (int i = 0;; ++i) {
    if (done()) return true;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
    if ((i & 15) == 15 && Clock::now() > end) return false;
  }
}

// Whether this thread was preempted (an involuntary context switch) since the last look: then the
// machine has no free core for it, and a spin would spend the CPU share its work needs (measured,
// load 10 on 2 cores: the bundled model's decode steps took 2.2x as long spinning 20 us as never
// spinning). Looked up at most once per kContentionCheck (getrusage is a system call).
bool preempted_lately(ThreadPool::WaitState& w) {
  constexpr auto kContentionCheck = std::chrono::milliseconds(2);
  const auto now = Clock::now();
  if (now < w.next_check) return w.preempted;
  rusage u{};
  getrusage(RUSAGE_THREAD, &u);
  w.preempted = u.ru_nivcsw != w.involuntary_switches;
  w.involuntary_switches = u.ru_nivcsw;
  w.next_check = now + kContentionCheck;
  return w.preempted;
}

// Waits for done(): spins first, then sleep() (which blocks until done()). A waiter spins only
// while its waits end within the spin (after one that did not, the thread it waits for is
// descheduled or idle: it sleeps at once, and spins again once a sleep has ended within the spin),
// and only while it is not being preempted itself.
template <class Done, class Sleep>
void wait_for(Done&& done, ThreadPool::WaitState& w, Sleep&& sleep) {
  const std::chrono::microseconds spin = ThreadPool::spin();
  if (w.spins && spin.count() > 0 && !preempted_lately(w) && spin_until(done, spin)) return;
  if (done()) return;
  const auto t0 = Clock::now();
  sleep();
  w.spins = Clock::now() - t0 < spin;
}

}  // namespace

std::chrono::microseconds ThreadPool::spin() {
  static const std::chrono::microseconds us = [] {
    const char* env = std::getenv("EVOMERGE_SPIN_US");
    if (!env || !*env) return kDefaultSpin;
    char* end = nullptr;
    const long v = std::strtol(env, &end, 10);
    if (*end != '\0' || v < 0 || v > 100000)
      fail("infer", "EVOMERGE_SPIN_US='{}' is not a number of microseconds in [0, 100000]", env);
    return std::chrono::microseconds(v);
  }();
  return us;
}

ThreadPool::ThreadPool(int threads) {
  spin();  // a bad EVOMERGE_SPIN_US fails here, on the caller's thread, not in a worker
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

// Sleeping and waking pair seq_cst operations (a Dekker handshake): a worker counts itself in
// sleeping_workers_ before it reads generation_ under the mutex, the caller bumps generation_
// before it reads sleeping_workers_, so either the worker sees the new call or the caller sees the
// sleeper and notifies it (after taking the mutex, which the worker holds until it waits; the
// notify itself comes after releasing it). The same for busy_ and caller_sleeping_ at the end of a
// call.
void ThreadPool::worker_loop(int thread) {
  uint64_t seen = 0;
  WaitState wait;
  for (;;) {
    auto started = [&] { return generation_.load() != seen; };
    bool stop = false;
    wait_for(started, wait, [&] {
      std::unique_lock lock(mutex_);
      sleeping_workers_.fetch_add(1);
      start_cv_.wait(lock, [&] { return stop_ || started(); });
      sleeping_workers_.fetch_sub(1);
      stop = stop_;
    });
    if (stop) return;
    seen = generation_.load();
    work(thread);
    if (busy_.fetch_sub(1) == 1 && caller_sleeping_.load()) {
      { std::lock_guard lock(mutex_); }  // the caller is inside its wait once we hold the mutex
      done_cv_.notify_one();             // outside it: the woken thread need not block on it
    }
  }
}

void ThreadPool::run(int64_t n, Fn fn, void* ctx) {
  fn_ = fn;
  ctx_ = ctx;
  n_ = n;
  next_.store(0, std::memory_order_relaxed);
  busy_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
  generation_.fetch_add(1);  // publishes the fields above
  if (sleeping_workers_.load() > 0) {
    { std::lock_guard lock(mutex_); }  // as in worker_loop
    start_cv_.notify_all();
  }
  work(0);
  auto done = [&] { return busy_.load() == 0; };
  wait_for(done, caller_wait_, [&] {
    std::unique_lock lock(mutex_);
    caller_sleeping_.store(true);
    done_cv_.wait(lock, done);
    caller_sleeping_.store(false);
  });
}

bool Matrix::keeps_f32_copy(bool keep_f32_copy) const {
  const bool unaligned_f32 =
      dtype == DType::F32 && reinterpret_cast<uintptr_t>(data) % alignof(float) != 0;
  return (keep_f32_copy && dtype != DType::F32) || unaligned_f32;
}

bool Matrix::packs(bool keep_f32_copy) const {
  return !keeps_f32_copy(keep_f32_copy) && rows > 0 && cols > 0 && dtype == DType::BF16 &&
         gemm_kernel_packs_bf16(selected_gemm_kernel());
}

void Matrix::refresh(bool keep_f32_copy, bool may_pack) {
  const size_t n = static_cast<size_t>(rows * cols);
  if (keeps_f32_copy(keep_f32_copy)) {
    cache.resize(n);
    convert_to_f32(dtype, data, cache.data(), n);
  } else {
    cache.clear();
    cache.shrink_to_fit();
  }
  if (may_pack && packs(keep_f32_copy))
    packed.pack(reinterpret_cast<const uint16_t*>(data), rows, cols);
  else
    packed.clear();
}

float dot(const float* a, const float* b, int64_t n) {
  // 64 independent partial sums = four 16-lane vectors: the compiler vectorises this without
  // -ffast-math, and four accumulators hide the FMA latency (one would serialise on it). Then a
  // pairwise tree over the lanes (halves added as vectors), not 16 dependent scalar adds: for
  // attention's head_dim of 64-128 that tail was most of the call.
  float acc[64] = {};
  int64_t i = 0;
  for (; i + 64 <= n; i += 64)
    for (int l = 0; l < 64; ++l) acc[l] += a[i + l] * b[i + l];
  for (; i + 16 <= n; i += 16)
    for (int l = 0; l < 16; ++l) acc[l] += a[i + l] * b[i + l];
  for (int l = 0; l < 16; ++l) acc[l] += acc[l + 16] + (acc[l + 32] + acc[l + 48]);
  for (int w = 8; w >= 1; w /= 2)
    for (int l = 0; l < w; ++l) acc[l] += acc[l + w];
  float s = acc[0];
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

int64_t argmax(const float* x, int64_t n) {
  if (n <= 0 || std::isnan(x[0])) return 0;
  // The maximum in 16 partial maxima (std::max(a, b) is a < b ? b : a: vmaxps, NaNs skipped).
  constexpr int kLanes = 16;
  float part[kLanes];
  std::fill(part, part + kLanes, -std::numeric_limits<float>::infinity());
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int l = 0; l < kLanes; ++l) part[l] = std::max(part[l], x[i + l]);
  float mx = part[0];
  for (int l = 1; l < kLanes; ++l) mx = std::max(mx, part[l]);
  for (; i < n; ++i) mx = std::max(mx, x[i]);
  // Its first index: blocks compared as vectors, then the block that holds it.
  for (i = 0; i + kLanes <= n; i += kLanes) {
    bool any = false;
    for (int l = 0; l < kLanes; ++l) any |= x[i + l] == mx;
    if (any) break;
  }
  for (; i < n; ++i)
    if (x[i] == mx) return i;
  return 0;  // every value NaN
}

namespace {
// W bytes per task of our own kernels: a block stays in L2 (2 MiB on current server cores) while
// every row of X passes over it.
constexpr int64_t kBlockBytes = 256 << 10;
}  // namespace

namespace {

// The kernel linear() runs for W at n rows.
GemmKernel kernel_for(const Matrix& W, int64_t n) {
  const GemmKernel selected = selected_gemm_kernel();
  const DType dtype = W.f32() ? DType::F32 : W.dtype;
  return gemm_kernel_forced() ? selected
                              : gemm_kernel_for_rows(selected, dtype, n, !W.packed.empty());
}

// One product of a parallel region, cut into tasks of `block` W rows.
struct Product {
  GemmWeights weights;
  GemmKernel kernel = GemmKernel::Scalar;
  float* Y = nullptr;
  int64_t block = 0, tasks = 0;
};

// Tasks of W rows, handed out dynamically. Our kernels: blocks of about kBlockBytes of W (they
// stay in L2 while every row of X passes; a few tasks per thread balance the load); the packed
// avx2/avx512 kernels take k in chunks of kPackedChunkDepth, so there a block's W per chunk counts
// (wider blocks: every task streams all of X once, which for 512 rows of 2048 is 4 MiB from L3).
// oneDNN (amx): two tasks per thread of equal size (each call has a fixed cost; equal shapes reuse
// one compiled kernel).
Product plan(GemmKernel asked, const Matrix& W, float* Y, int64_t threads) {
  Product p;
  const float* wf = W.f32();
  p.weights = {wf ? reinterpret_cast<const std::byte*>(wf) : W.data, wf ? DType::F32 : W.dtype,
               W.rows, W.cols, W.packed.empty() || wf ? nullptr : &W.packed};
  p.kernel = gemm_kernel_for(asked, p.weights.dtype);
  p.Y = Y;
  const int64_t rows = W.rows;
  int64_t block;
  if (p.kernel == GemmKernel::Amx) {
    block = (rows + 2 * threads - 1) / (2 * threads);
    block = (block + 31) / 32 * 32;
  } else {
    const int64_t depth = p.weights.packed ? std::min(W.cols, kPackedChunkDepth) : W.cols;
    const int64_t row_bytes = depth * static_cast<int64_t>(dtype_size(p.weights.dtype));
    block = std::max<int64_t>(8, kBlockBytes / std::max<int64_t>(1, row_bytes));
    block = std::min(block, std::max<int64_t>(8, (rows + 4 * threads - 1) / (4 * threads)));
  }
  if (p.weights.packed) block = (block + kPackedCols - 1) / kPackedCols * kPackedCols;
  p.block = std::max<int64_t>(1, std::min(block, rows));
  p.tasks = rows > 0 ? (rows + p.block - 1) / p.block : 0;
  return p;
}

// The activations of X [n x cols] for the products (once per region, shared by every task): the
// bf16 split (parts [parts*n x cols]; one part under Precision::Bf16) when a product's kernel
// needs it, and under Precision::Bf16 X rounded to bf16 values [n x cols] when one does not.
GemmActivations activations(ThreadPool& pool, std::span<const Product> products, const float* X,
                            int64_t n, int64_t cols, MatmulScratch& scratch, Precision precision) {
  if (static_cast<int64_t>(scratch.per_thread.size()) < pool.size())
    scratch.per_thread.resize(pool.size());
  const int parts = precision == Precision::Bf16 ? 1 : kSplitParts;
  GemmActivations A{X, n, cols, cols, nullptr, parts};
  const auto needs_split = [](const Product& p) { return gemm_needs_split(p.kernel); };
  const bool split = std::any_of(products.begin(), products.end(), needs_split);
  const bool rounded =
      precision == Precision::Bf16 && !std::all_of(products.begin(), products.end(), needs_split);
  constexpr int64_t kPrepRows = 16;
  const int64_t prep_tasks = (n + kPrepRows - 1) / kPrepRows;
  if (split) {
    const auto need = static_cast<size_t>(parts * n * cols);
    if (scratch.split.size() < need) scratch.split.resize(need);
    pool.parallel_for(prep_tasks, [&](int64_t t, int) {
      split_activations(X, n, cols, cols, t * kPrepRows, std::min(n, (t + 1) * kPrepRows), parts,
                        scratch.split.data());
    });
    A.split = scratch.split.data();
  }
  if (rounded) {
    const auto need = static_cast<size_t>(n * cols);
    if (scratch.rounded.size() < need) scratch.rounded.resize(need);
    pool.parallel_for(prep_tasks, [&](int64_t t, int) {
      round_activations_to_bf16(X, cols, cols, t * kPrepRows, std::min(n, (t + 1) * kPrepRows),
                                scratch.rounded.data());
    });
    A.f32 = scratch.rounded.data();
  }
  return A;
}

void run_task(const Product& p, const GemmActivations& A, int64_t task, GemmScratch& scratch) {
  const int64_t r0 = task * p.block, r1 = std::min(p.weights.rows, r0 + p.block);
  gemm_rows(p.kernel, A, p.weights, r0, r1, p.Y + r0, p.weights.rows, scratch);
}

}  // namespace

void linear(ThreadPool& pool, const Matrix& W, const float* X, int64_t n, float* Y,
            MatmulScratch& scratch, Precision precision) {
  linear_with(kernel_for(W, n), pool, W, X, n, Y, scratch, precision);
}

void linear_with(GemmKernel asked, ThreadPool& pool, const Matrix& W, const float* X, int64_t n,
                 float* Y, MatmulScratch& scratch, Precision precision) {
  if (n <= 0) return;
  const Product p = plan(asked, W, Y, pool.size());
  const GemmActivations A = activations(pool, {&p, 1}, X, n, W.cols, scratch, precision);
  pool.parallel_for(
      p.tasks, [&](int64_t task, int thread) { run_task(p, A, task, scratch.per_thread[thread]); });
}

void linear_many(ThreadPool& pool, std::span<const LinearOut> outs, const float* X, int64_t n,
                 MatmulScratch& scratch, Precision precision) {
  EM_ASSERT(!outs.empty() && outs.size() <= kMaxFusedProducts);
  if (n <= 0) return;
  std::array<Product, kMaxFusedProducts> products;
  std::array<int64_t, kMaxFusedProducts + 1> first_task{};  // prefix sums of the tasks
  for (size_t i = 0; i < outs.size(); ++i) {
    EM_ASSERT(outs[i].W->cols == outs[0].W->cols);
    products[i] = plan(kernel_for(*outs[i].W, n), *outs[i].W, outs[i].Y, pool.size());
    first_task[i + 1] = first_task[i] + products[i].tasks;
  }
  const std::span<const Product> planned(products.data(), outs.size());
  const GemmActivations A = activations(pool, planned, X, n, outs[0].W->cols, scratch, precision);
  pool.parallel_for(first_task[outs.size()], [&](int64_t task, int thread) {
    size_t i = 0;
    while (task >= first_task[i + 1]) ++i;
    run_task(products[i], A, task - first_task[i], scratch.per_thread[thread]);
  });
}

void linear_gated_fn(ThreadPool& pool, const Matrix& gate, const Matrix& up, const float* X,
                     int64_t n, float* G, float* U, MatmulScratch& scratch,
                     void (*epilogue)(void*, int64_t, int64_t), void* ctx, Precision precision) {
  EM_ASSERT(gate.rows == up.rows && gate.cols == up.cols);
  if (n <= 0) return;
  std::array<Product, 2> p = {plan(kernel_for(gate, n), gate, G, pool.size()),
                              plan(kernel_for(up, n), up, U, pool.size())};
  p[1].block = p[0].block, p[1].tasks = p[0].tasks;  // the same rows of both (dtypes may differ)
  const GemmActivations A = activations(pool, p, X, n, gate.cols, scratch, precision);
  pool.parallel_for(p[0].tasks, [&](int64_t task, int thread) {
    run_task(p[0], A, task, scratch.per_thread[thread]);
    run_task(p[1], A, task, scratch.per_thread[thread]);
    epilogue(ctx, task * p[0].block, std::min(gate.rows, (task + 1) * p[0].block));
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
