// Internal to src/merge: the thread pool and the per-tensor executor behind Merger.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <span>
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
  size_t threads() const override { return workers_.size() + 1; }
  // 0 for the thread that calls run(), 1.. for the workers (any thread of another pool: 0, since
  // this pool then runs its chunks serially on it).
  size_t thread_index() const override;

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
  // Called with each finished piece of the output bytes (its byte offset in the tensor), from the
  // pool's threads, while the piece is still in cache: the folder writer writes it there.
  using PartSink = std::function<void(uint64_t offset, std::span<const std::byte> bytes)>;

  // Merges `t` into dst[numel] in `dtype` (the output's bytes), with merge()'s checks and bits.
  // Elementwise methods (MethodSpec::elementwise) without a LoRA go tile by tile, each tile read
  // from the stored bytes, merged and converted while it is in cache (one pass over memory, no f32
  // copy of the tensor); the others go through merge() and one check-and-convert pass. `sink`
  // (optional) receives every piece of dst once; after an Error some pieces may have gone to it.
  void merge_out(const MergePlan& plan, const PlanTensor& t, DType dtype, std::byte* dst,
                 const PartSink* sink = nullptr);

  ThreadPool pool;

 private:
  // Per-chunk tally of the non-finite values a merge produced (combined in chunk order).
  struct NonFinite {
    size_t count = 0, first = 0;
    float value = 0;
  };
  void convert_inputs(const MergePlan& plan, const PlanTensor& t, KernelArgs& args);
  void merge_tiles(const MergePlan& plan, const PlanTensor& t, DType dtype, std::byte* dst,
                   const PartSink* sink);
  // TIES / DARE (methods_stream.h): passes over tiles read from the stored bytes, the result tile
  // checked and converted while in cache.
  void merge_stream(const MergePlan& plan, const PlanTensor& t, DType dtype, std::byte* dst,
                    const PartSink* sink);
  // Tallies the non-finite values of v[0..n) (elements offset.. of the tensor) into
  // nonfinite_[chunk], then converts them to dtype into dst (F32 or no dst: tally only).
  void check_and_convert(const float* v, size_t n, size_t offset, size_t chunk, DType dtype,
                         std::byte* dst);
  void fail_if_nonfinite(const std::string& tensor, size_t n, size_t chunks) const;
  float* out_scratch(size_t n);

  std::vector<std::vector<float>> inputs;  // one f32 buffer per input, kept between tensors
  std::vector<float> out;
  std::vector<NonFinite> nonfinite_;
};

}  // namespace evomerge
