#include "merge/executor.h"

#include <algorithm>
#include <cmath>

#include "common/error.h"
#include "merge/methods_stream.h"
#include "tensor/convert.h"

namespace evomerge {

namespace {
thread_local bool t_in_pool = false;
thread_local const ThreadPool* t_pool = nullptr;  // the pool this worker thread belongs to
thread_local size_t t_worker = 0;                 // its index there (1..)
constexpr size_t kConvertChunk = size_t{1} << 16;
constexpr size_t kTile = size_t{1} << 14;  // elements per tile of the elementwise path
}  // namespace

ThreadPool::ThreadPool(int threads) {
  int n = threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 1; i < n; ++i)
    workers_.emplace_back([this, i] {
      t_pool = this;
      t_worker = static_cast<size_t>(i);
      worker_loop();
    });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  for (auto& w : workers_) w.join();
}

size_t ThreadPool::thread_index() const {
  return t_pool == this ? t_worker : 0;
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

namespace {

KernelArgs tensor_args(const MergePlan& plan, const PlanTensor& t) {
  KernelArgs args;
  args.tensor = t.name;
  args.shape = t.shape;
  args.base = t.base;
  args.globals = &t.globals;
  args.seed = plan.random_seed;
  for (const PlanInput& in : t.inputs) args.params.push_back(&in.params);
  return args;
}

// The stored view of an input that is read from its model (not a permuted f32 vocabulary):
// embedding rows beyond the common vocabulary are not read, the first n elements are the rows kept
// (row-major, same columns).
TensorView stored_input(const MergePlan& plan, const PlanInput& in, size_t n) {
  TensorView v = plan.models[in.model]->stored(in.tensor);
  EM_ASSERT(static_cast<size_t>(v.numel()) >= n);
  return v;
}

// inf and NaN have every exponent bit set; a bit test vectorises where std::isfinite does not.
inline bool nonfinite_bits(float x) {
  return (f32_to_bits(x) & 0x7f800000u) == 0x7f800000u;
}

}  // namespace

void Merger::Impl::convert_inputs(const MergePlan& plan, const PlanTensor& t, KernelArgs& args) {
  const size_t n = static_cast<size_t>(shape_numel(t.shape));
  if (inputs.size() < t.inputs.size()) inputs.resize(t.inputs.size());
  const size_t chunks = (n + kConvertChunk - 1) / kConvertChunk;
  std::vector<TensorView> views(t.inputs.size());
  for (size_t i = 0; i < t.inputs.size(); ++i) {
    const PlanInput& in = t.inputs[i];
    if (in.rows) {  // already f32 (a permuted vocabulary): nothing to convert
      EM_ASSERT(in.rows->size() == n);
      args.inputs.push_back(in.rows->data());
      continue;
    }
    views[i] = stored_input(plan, in, n);
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
}

void Merger::Impl::merge(const MergePlan& plan, const PlanTensor& t, float* dst) {
  const size_t n = static_cast<size_t>(shape_numel(t.shape));
  KernelArgs args = tensor_args(plan, t);
  args.parallel = &pool;
  convert_inputs(plan, t, args);
  run_method(plan.method, args, dst);
  const size_t chunks = (n + kConvertChunk - 1) / kConvertChunk;
  nonfinite_.assign(chunks, {});
  pool.run(chunks, [&](size_t c) {
    const size_t b = c * kConvertChunk, e = std::min(n, b + kConvertChunk);
    check_and_convert(dst + b, e - b, b, c, DType::F32, nullptr);
  });
  fail_if_nonfinite(t.name, n, chunks);
}

void Merger::Impl::merge_out(const MergePlan& plan, const PlanTensor& t, DType dtype,
                             std::byte* dst, const PartSink* sink) {
  const MethodSpec* spec = find_method(plan.method);
  bool tiles = spec && spec->elementwise;
  for (const PlanInput& in : t.inputs)
    if (plan.models[in.model]->has_lora() && !in.rows) tiles = false;  // the delta is per tensor
  if (tiles) return merge_tiles(plan, t, dtype, dst, sink);
  bool lora = false;
  for (const PlanInput& in : t.inputs)
    lora = lora || (plan.models[in.model]->has_lora() && !in.rows);
  if (!lora && gta_streams(plan.method, tensor_args(plan, t), t.inputs.size()))
    return merge_stream(plan, t, dtype, dst, sink);
  const size_t n = static_cast<size_t>(shape_numel(t.shape));
  float* f32 = dtype == DType::F32 ? reinterpret_cast<float*>(dst) : out_scratch(n);
  KernelArgs args = tensor_args(plan, t);
  args.parallel = &pool;
  convert_inputs(plan, t, args);
  run_method(plan.method, args, f32);
  const size_t chunks = (n + kConvertChunk - 1) / kConvertChunk, es = dtype_size(dtype);
  nonfinite_.assign(chunks, {});
  pool.run(chunks, [&](size_t c) {
    const size_t b = c * kConvertChunk, e = std::min(n, b + kConvertChunk);
    check_and_convert(f32 + b, e - b, b, c, dtype, dst + b * es);
    if (sink) (*sink)(b * es, {dst + b * es, (e - b) * es});
  });
  fail_if_nonfinite(t.name, n, chunks);
}

void Merger::Impl::merge_tiles(const MergePlan& plan, const PlanTensor& t, DType dtype,
                               std::byte* dst, const PartSink* sink) {
  const size_t n = static_cast<size_t>(shape_numel(t.shape)), m = t.inputs.size();
  const size_t tiles = (n + kTile - 1) / kTile, out_es = dtype_size(dtype);
  std::vector<TensorView> views(m);
  for (size_t i = 0; i < m; ++i)
    if (!t.inputs[i].rows) views[i] = stored_input(plan, t.inputs[i], n);
  const KernelArgs whole = tensor_args(plan, t);
  nonfinite_.assign(tiles, {});
  pool.run(tiles, [&](size_t c) {
    const size_t b = c * kTile, len = std::min(n, b + kTile) - b;
    // m input tiles as f32, then the result tile: ~(m + 1) x 64 KB, cache-resident.
    thread_local std::vector<float> buf;
    if (buf.size() < (m + 1) * kTile) buf.resize((m + 1) * kTile);
    KernelArgs args = whole;  // serial inside the tile: the tiles are the parallel work
    args.shape = {static_cast<int64_t>(len)};
    for (size_t i = 0; i < m; ++i) {
      if (t.inputs[i].rows) {
        args.inputs.push_back(t.inputs[i].rows->data() + b);
        continue;
      }
      float* x = buf.data() + i * kTile;
      convert_to_f32(views[i].dtype, views[i].data + b * dtype_size(views[i].dtype), x, len);
      args.inputs.push_back(x);
    }
    float* res = dtype == DType::F32 ? reinterpret_cast<float*>(dst) + b : buf.data() + m * kTile;
    run_method(plan.method, args, res);
    check_and_convert(res, len, b, c, dtype, dst + b * out_es);
    if (sink) (*sink)(b * out_es, {dst + b * out_es, len * out_es});
  });
  fail_if_nonfinite(t.name, n, tiles);
}

void Merger::Impl::merge_stream(const MergePlan& plan, const PlanTensor& t, DType dtype,
                                std::byte* dst, const PartSink* sink) {
  const size_t n = static_cast<size_t>(shape_numel(t.shape)), m = t.inputs.size();
  const size_t tile = stream_tile_elements(), tiles = (n + tile - 1) / tile,
               out_es = dtype_size(dtype);
  std::vector<TensorView> views(m);
  for (size_t i = 0; i < m; ++i)
    if (!t.inputs[i].rows) views[i] = stored_input(plan, t.inputs[i], n);
  KernelArgs args = tensor_args(plan, t);
  args.parallel = &pool;
  TileIo io;
  io.read = [&](size_t i, size_t b, size_t len, float* x) {
    if (t.inputs[i].rows)
      std::copy_n(t.inputs[i].rows->data() + b, len, x);
    else
      convert_to_f32(views[i].dtype, views[i].data + b * dtype_size(views[i].dtype), x, len);
  };
  io.bf16 = [&](size_t i) -> const uint16_t* {
    const std::byte* p = views[i].data;
    const bool stored = !t.inputs[i].rows && views[i].dtype == DType::BF16 &&
                        reinterpret_cast<uintptr_t>(p) % alignof(uint16_t) == 0;
    return stored ? reinterpret_cast<const uint16_t*>(p) : nullptr;
  };
  io.emit = [&](size_t c, size_t b, size_t len, const float* merged) {
    if (dtype == DType::F32) std::copy_n(merged, len, reinterpret_cast<float*>(dst) + b);
    check_and_convert(merged, len, b, c, dtype, dst + b * out_es);
    if (sink) (*sink)(b * out_es, {dst + b * out_es, len * out_es});
  };
  nonfinite_.assign(tiles, {});
  run_gta_stream(plan.method, args, m, io);
  fail_if_nonfinite(t.name, n, tiles);
}

void Merger::Impl::check_and_convert(const float* v, size_t n, size_t offset, size_t chunk,
                                     DType dtype, std::byte* dst) {
  uint32_t bad = 0;  // 32-bit lanes (a piece is far under 2^32 values): twice the width of size_t
  for (size_t i = 0; i < n; ++i) bad += nonfinite_bits(v[i]);
  if (bad) {
    NonFinite& nf = nonfinite_[chunk];
    nf.count = bad;
    for (size_t i = 0; i < n; ++i)
      if (nonfinite_bits(v[i])) {
        nf.first = offset + i;
        nf.value = v[i];
        break;
      }
  }
  if (dst && dtype != DType::F32) convert_from_f32(dtype, v, dst, n);
}

// A merge whose result holds inf or NaN (weight: 1e308, overflowing task vectors, non-finite
// inputs) is an error naming the tensor: written out, it used to exit 0 with a useless model.
void Merger::Impl::fail_if_nonfinite(const std::string& tensor, size_t n, size_t chunks) const {
  size_t count = 0;
  const NonFinite* first = nullptr;
  for (size_t c = 0; c < chunks; ++c)
    if (nonfinite_[c].count) {
      count += nonfinite_[c].count;
      if (!first) first = &nonfinite_[c];
    }
  if (count)
    fail("merge",
         "tensor '{}': the merge produced {} non-finite values (inf or NaN) of {}, the first at "
         "element "
         "{} ({}); check the merge weights and the input models",
         tensor, count, n, first->first, first->value);
}

float* Merger::Impl::out_scratch(size_t n) {
  if (out.size() < n) out.resize(n);
  return out.data();
}

}  // namespace evomerge
