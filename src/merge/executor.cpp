#include "merge/executor.h"

#include <algorithm>
#include <cmath>

#include "common/error.h"
#include "tensor/convert.h"

namespace evomerge {

namespace {
thread_local bool t_in_pool = false;
constexpr size_t kConvertChunk = size_t{1} << 16;
}  // namespace

ThreadPool::ThreadPool(int threads) {
  int n = threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 1; i < n; ++i) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  for (auto& w : workers_) w.join();
}

void ThreadPool::worker_loop() {
  t_in_pool = true;
  uint64_t seen = 0;
  for (;;) {
    const std::function<void(size_t)>* job;
    size_t n;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      // Woke after that run had ended: nothing to do (and job_ may already be gone).
      if (!job_) continue;
      job = job_;
      n = n_chunks_;
      ++active_;  // run() may not end (and destroy the job) or start the next one until we leave
    }
    size_t done = 0;
    for (size_t c; (c = next_.fetch_add(1)) < n; ++done) {
      try {
        (*job)(c);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!error_) error_ = std::current_exception();
      }
    }
    std::lock_guard<std::mutex> lock(mutex_);
    finished_ += done;
    --active_;
    done_.notify_all();
  }
}

void ThreadPool::run(size_t n_chunks, const std::function<void(size_t)>& fn) const {
  if (workers_.empty() || n_chunks <= 1 || t_in_pool) {
    for (size_t c = 0; c < n_chunks; ++c) fn(c);
    return;
  }
  {
    std::unique_lock<std::mutex> lock(mutex_);
    // A worker still inside the previous run would otherwise see next_ reset below and call the
    // previous (destroyed) job.
    done_.wait(lock, [&] { return active_ == 0; });
    job_ = &fn;
    n_chunks_ = n_chunks;
    next_ = 0;
    finished_ = 0;
    error_ = nullptr;
    ++generation_;
  }
  wake_.notify_all();
  size_t done = 0;
  t_in_pool = true;
  for (size_t c; (c = next_.fetch_add(1)) < n_chunks; ++done) {
    try {
      fn(c);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!error_) error_ = std::current_exception();
    }
  }
  t_in_pool = false;
  std::unique_lock<std::mutex> lock(mutex_);
  finished_ += done;
  done_.wait(lock, [&] { return finished_ == n_chunks && active_ == 0; });
  job_ = nullptr;
  if (error_) std::rethrow_exception(error_);
}

void Merger::Impl::merge(const MergePlan& plan, const PlanTensor& t, float* dst) {
  const size_t n = static_cast<size_t>(shape_numel(t.shape));
  if (inputs.size() < t.inputs.size()) inputs.resize(t.inputs.size());
  KernelArgs args;
  args.tensor = t.name;
  args.shape = t.shape;
  args.base = t.base;
  args.globals = &t.globals;
  args.seed = plan.random_seed;
  args.parallel = &pool;
  const size_t chunks = (n + kConvertChunk - 1) / kConvertChunk;
  std::vector<TensorView> views(t.inputs.size());
  for (size_t i = 0; i < t.inputs.size(); ++i) {
    const PlanInput& in = t.inputs[i];
    args.params.push_back(&in.params);
    if (in.rows) {  // already f32 (a permuted vocabulary): nothing to convert
      EM_ASSERT(in.rows->size() == n);
      args.inputs.push_back(in.rows->data());
      continue;
    }
    views[i] = plan.models[in.model]->stored(in.tensor);
    // Embedding rows beyond the common vocabulary are not read: the first n elements are the rows
    // kept (row-major, same columns).
    EM_ASSERT(static_cast<size_t>(views[i].numel()) >= n);
    if (inputs[i].size() < n) inputs[i].resize(n);
    args.inputs.push_back(inputs[i].data());
  }
  // One parallel region converts every input (fewer fork/join points).
  pool.run(chunks * t.inputs.size(), [&](size_t c) {
    const size_t i = c / chunks, b = (c % chunks) * kConvertChunk, e = std::min(n, b + kConvertChunk);
    if (t.inputs[i].rows) return;
    const size_t es = dtype_size(views[i].dtype);
    convert_to_f32(views[i].dtype, views[i].data + b * es, inputs[i].data() + b, e - b);
  });
  for (size_t i = 0; i < t.inputs.size(); ++i) {
    const SourceModel& m = *plan.models[t.inputs[i].model];
    if (m.has_lora() && !t.inputs[i].rows) m.add_lora_delta(t.inputs[i].tensor, inputs[i].data());
  }
  run_method(plan.method, args, dst);
  check_finite(t.name, dst, n);
}

// A merge whose result holds inf or NaN (weight: 1e308, overflowing task vectors, non-finite
// inputs) is an error naming the tensor: written out, it used to exit 0 with a useless model.
void Merger::Impl::check_finite(const std::string& tensor, const float* v, size_t n) const {
  const size_t chunks = (n + kConvertChunk - 1) / kConvertChunk;
  std::vector<size_t> first_bad(chunks, n), bad_count(chunks, 0);
  pool.run(chunks, [&](size_t c) {
    const size_t b = c * kConvertChunk, e = std::min(n, b + kConvertChunk);
    for (size_t i = b; i < e; ++i)
      if (!std::isfinite(v[i])) {
        if (first_bad[c] == n) first_bad[c] = i;
        ++bad_count[c];
      }
  });
  size_t count = 0, first = n;
  for (size_t c = 0; c < chunks; ++c) count += bad_count[c], first = std::min(first, first_bad[c]);
  if (count)
    fail("merge",
         "tensor '{}': the merge produced {} non-finite values (inf or NaN) of {}, the first at "
         "element "
         "{} ({}); check the merge weights and the input models",
         tensor, count, n, first, v[first]);
}

float* Merger::Impl::out_scratch(size_t n) {
  if (out.size() < n) out.resize(n);
  return out.data();
}

void Merger::Impl::convert_out(const float* src, DType dtype, std::byte* dst, size_t n) {
  const size_t es = dtype_size(dtype);
  pool.run((n + kConvertChunk - 1) / kConvertChunk, [&](size_t c) {
    size_t b = c * kConvertChunk, e = std::min(n, b + kConvertChunk);
    convert_from_f32(dtype, src + b, dst + b * es, e - b);
  });
}

}  // namespace evomerge
