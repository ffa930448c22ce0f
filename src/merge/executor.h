// Internal to src/merge: the thread pool and the per-tensor executor behind Merger.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "merge/merge.h"
#include "merge/methods.h"

namespace evomerge {

// A fixed pool: run() hands chunks to the workers and the calling thread, and returns when all are
// done. A run() from inside a chunk executes serially (no nested parallelism, no deadlock).
class ThreadPool : public ParallelFor {
 public:
  explicit ThreadPool(int threads);
  ~ThreadPool() override;
  void run(size_t n_chunks, const std::function<void(size_t)>& fn) const override;
  int size() const { return static_cast<int>(workers_.size()) + 1; }

 private:
  void worker_loop();
  std::vector<std::thread> workers_;
  mutable std::mutex mutex_;
  mutable std::condition_variable wake_, done_;
  mutable const std::function<void(size_t)>* job_ = nullptr;
  mutable size_t n_chunks_ = 0;
  mutable std::atomic<size_t> next_{0};
  mutable size_t finished_ = 0;
  mutable size_t active_ = 0;  // workers holding the current job (see worker_loop)
  mutable uint64_t generation_ = 0;
  mutable std::exception_ptr error_;
  bool stop_ = false;
};

struct Merger::Impl {
  explicit Impl(int threads) : pool(threads) {}

  // Reads the inputs of `t` as f32 (parallel chunks), then runs the method into dst[numel]; an
  // Error naming the tensor when the result holds inf or NaN.
  void merge(const MergePlan& plan, const PlanTensor& t, float* dst);
  void check_finite(const std::string& tensor, const float* v, size_t n) const;
  float* out_scratch(size_t n);
  // Parallel f32 -> dtype conversion of n values.
  void convert_out(const float* src, DType dtype, std::byte* dst, size_t n);

  ThreadPool pool;
  std::vector<std::vector<float>> inputs;  // one f32 buffer per input, kept between tensors
  std::vector<float> out;
};

}  // namespace evomerge
