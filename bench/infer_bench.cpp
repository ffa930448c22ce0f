// Inference engine speed against the machine's own bounds, measured by this same program:
//  - prefill / scoring FLOP/s vs the bf16 GEMM peak: our best kernel (BM_GemmPeak, every kernel
//    this CPU runs) and oneDNN's own bf16 matmul (BM_OneDnnPeak); BM_SgemmPeak is OpenBLAS, kept
//    to show what a BLAS that misdetects the CPU gives;
//  - the f32 kernels (avx2, avx512) vs the f32 FMA peak of their ISA (BM_FmaPeak);
//  - batched decode tokens/s vs the memory-bandwidth bound (BM_MemoryBandwidth: bytes of weights
//    read per decode step / bandwidth).
// Models (the first argument of the model benches): 0 = ~100M parameters (hidden 768,
// intermediate 2048, 8 layers, 12 heads, 4 kv heads), 1 = ~1B (hidden 2048, intermediate 5632,
// 20 layers, 16 heads, 4 kv heads); Llama-shaped, bf16, random weights, vocab 32000, written once
// to $TMPDIR/evomerge_bench_llama{100m,1b}. Threads: EVOMERGE_BENCH_THREADS (default 2).
// EVOMERGE_GEMM=avx2 (etc.) forces the engine's GEMM kernel. The GEMM and engine benches' last
// argument is the precision (infer/precision.h): 0 exact, 1 bf16 (activations rounded once).
// Run: build/bench/bench_infer --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>
#include <cblas.h>
#if __has_include(<dnnl.hpp>)
#include <omp.h>

#include <dnnl.hpp>
#endif

#include <fmt/format.h>
#include <immintrin.h>
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>

#include "arch/arch.h"
#include "infer/engine.h"
#include "infer/kernels.h"
#include "infer/random_model.h"
#include "tensor/convert.h"
#include "tokenize/tokenizer.h"

namespace evomerge {
namespace {

namespace fs = std::filesystem;

int bench_threads() {
  const char* t = std::getenv("EVOMERGE_BENCH_THREADS");
  return t ? std::max(1, std::atoi(t)) : 2;
}

nlohmann::json bench_config(int model) {
  auto c = model == 0 ? small_model_config("llama", 32000, 768, 2048, 8, 12, 4)
                      : small_model_config("llama", 32000, 2048, 5632, 20, 16, 4);
  c["max_position_embeddings"] = 2048;
  c["rope_theta"] = 10000.0;
  return c;
}

fs::path bench_model(int model) {
  fs::path d = fs::temp_directory_path() /
               (model == 0 ? "evomerge_bench_llama100m" : "evomerge_bench_llama1b");
  if (!fs::exists(d / "model.safetensors")) {
    RandomModelSpec spec;
    spec.config = bench_config(model);
    spec.seed = 42;
    spec.stddev = 0.02f;
    write_random_model(d, spec);
  }
  return d;
}

std::shared_ptr<WeightSource> weights(int model = 0) {
  static std::shared_ptr<WeightSource> w[2];
  if (!w[model]) w[model] = open_folder_weights(bench_model(model).string());
  return w[model];
}

// FLOPs of the layer matmuls per token (2 per multiply-add), and bytes of weights one decode step
// reads.
struct ModelCost {
  double layer_flops_per_token = 0, head_flops_per_row = 0, weight_bytes_per_step = 0;
  double attn_flops_per_key = 0;  // per (token, visible key) over all layers: QK^T and PV
};
ModelCost cost(int model = 0) {
  ModelConfig c = weights(model)->config();
  ModelCost m;
  double layer_params = 0;
  for (const auto& s : expected_tensors(c, DType::BF16)) {
    auto loc = classify_tensor(s.name);
    if (loc && loc->place == TensorPlace::Layer && s.shape.size() == 2)
      layer_params += shape_numel(s.shape);
  }
  m.layer_flops_per_token = 2 * layer_params;
  m.head_flops_per_row = 2.0 * c.vocab_size * c.hidden_size;
  m.weight_bytes_per_step = 2.0 * (layer_params + c.vocab_size * c.hidden_size);
  m.attn_flops_per_key = 4.0 * c.num_attention_heads * c.head_dim * c.num_hidden_layers;
  return m;
}

// CPU seconds of this whole process (every thread). On a shared machine wall time measures the
// other tenants as much as the code; work per CPU-second does not (waiting threads sleep on a
// condition variable and cost nothing), so the "per_cpu_s" counters compare kernels under load.
double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// Sets counter `name` to total / (CPU seconds since `cpu0`).
void per_cpu_second(benchmark::State& state, const char* name, double total, double cpu0) {
  state.counters[name] = total / std::max(1e-9, process_cpu_seconds() - cpu0);
}

std::vector<int32_t> tokens(int n, uint32_t seed) {
  std::vector<int32_t> t(n);
  for (auto& x : t) x = static_cast<int32_t>((seed = seed * 1664525u + 1013904223u) >> 17) % 32000;
  return t;
}

// OpenBLAS's own threaded sgemm on square matrices: the compute roof prefill is compared with.
void BM_SgemmPeak(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  openblas_set_num_threads(bench_threads());
  std::vector<float> a(size_t(n) * n, 0.5f), b(size_t(n) * n, 0.25f), c(size_t(n) * n);
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, a.data(), n, b.data(), n,
                0.0f, c.data(), n);
    benchmark::DoNotOptimize(c.data());
  }
  state.counters["GFLOPs"] =
      benchmark::Counter(2.0 * n * n * n * state.iterations() / 1e9, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_SgemmPeak)->Arg(1024)->Arg(2048)->Unit(benchmark::kMillisecond)->UseRealTime();

// One bench product Y [m x n] = X [m x k] · Wᵀ with what it runs on: fixed pseudo-random X
// (values in [0, 1)) and bf16 W (in [0, 0.01)), W held as the engine holds it (refresh: packed
// where the engine's kernel packs bf16 weights), the bench's threads and the kernels' scratch.
struct BenchProduct {
  BenchProduct(int64_t m, int64_t n, int64_t k)
      : x(m * k), y(m * n), w(n * k), pool(bench_threads()) {
    std::vector<float> wf(n * k);
    uint32_t s = 1;
    for (float& v : x)
      v = static_cast<float>(((s = s * 1664525u + 1013904223u) >> 9) % 1000) * 1e-3f;
    for (float& v : wf)
      v = static_cast<float>(((s = s * 1664525u + 1013904223u) >> 9) % 1000) * 1e-5f;
    f32_to_bf16(wf.data(), w.data(), w.size());
    W.data = reinterpret_cast<const std::byte*>(w.data());
    W.dtype = DType::BF16;
    W.rows = n;
    W.cols = k;
    W.refresh(false);
  }
  std::vector<float> x, y;
  std::vector<uint16_t> w;
  infer_detail::Matrix W;  // points into w
  infer_detail::ThreadPool pool;
  infer_detail::MatmulScratch scratch;
};

// Our GEMM (linear_with: the engine's threading, activation split included) on a bf16 weight
// matrix [2048 x 2048] and 512 activation rows, for each kernel the CPU runs (range(0) indexes
// kAllGemmKernels; range(2) the precision). FLOPs: 2 m n k, whatever the kernel does internally.
void BM_GemmPeak(benchmark::State& state) {
  const auto kernel = infer_detail::kAllGemmKernels[state.range(0)];
  if (std::string why = infer_detail::gemm_kernel_unavailable(kernel); !why.empty()) {
    state.SkipWithError(why.c_str());
    return;
  }
  const int64_t m = state.range(1), n = 2048, k = 2048;
  BenchProduct p(m, n, k);
  const Precision precision = state.range(2) ? Precision::Bf16 : Precision::Exact;
  // warm: JIT, scratch
  infer_detail::linear_with(kernel, p.pool, p.W, p.x.data(), m, p.y.data(), p.scratch, precision);
  const double cpu0 = process_cpu_seconds();
  for (auto _ : state) {
    infer_detail::linear_with(kernel, p.pool, p.W, p.x.data(), m, p.y.data(), p.scratch, precision);
    benchmark::DoNotOptimize(p.y.data());
  }
  state.SetLabel(
      fmt::format("{} {}", infer_detail::gemm_kernel_name(kernel), precision_name(precision)));
  const double gflop = 2.0 * m * n * k * state.iterations() / 1e9;
  state.counters["GFLOPs"] = benchmark::Counter(gflop, benchmark::Counter::kIsRate);
  per_cpu_second(state, "GFLOP_per_cpu_s", gflop, cpu0);
}
// The engine's own routing (linear(): the kernel it picks for m rows, amx on packed bf16 W here) on
// the shapes of the bench models' products: Y [m x n] = X [m x k] · Wᵀ. Args: m, n, k, precision.
// 100M: q/o 768x768, k/v 256x768, gate/up 2048x768, down 768x2048; 1B: q/o 2048x2048, k/v
// 512x2048, gate/up 5632x2048, down 2048x5632; the head 32000 x hidden at the one row a scoring
// prefill needs.
void BM_GemmShape(benchmark::State& state) {
  const int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  BenchProduct p(m, n, k);
  const Precision precision = state.range(3) ? Precision::Bf16 : Precision::Exact;
  infer_detail::linear(p.pool, p.W, p.x.data(), m, p.y.data(), p.scratch, precision);  // warm
  const double cpu0 = process_cpu_seconds();
  for (auto _ : state) {
    infer_detail::linear(p.pool, p.W, p.x.data(), m, p.y.data(), p.scratch, precision);
    benchmark::DoNotOptimize(p.y.data());
  }
  state.SetLabel(std::string(precision_name(precision)));
  const double gflop = 2.0 * m * n * k * state.iterations() / 1e9;
  state.counters["GFLOPs"] = benchmark::Counter(gflop, benchmark::Counter::kIsRate);
  per_cpu_second(state, "GFLOP_per_cpu_s", gflop, cpu0);
}
BENCHMARK(BM_GemmShape)
    ->ArgsProduct({{512}, {768}, {768}, {0, 1}})
    ->ArgsProduct({{512}, {256}, {768}, {0, 1}})
    ->ArgsProduct({{512}, {2048}, {768}, {0, 1}})
    ->ArgsProduct({{512}, {768}, {2048}, {0, 1}})
    ->ArgsProduct({{512}, {2048}, {2048}, {0, 1}})
    ->ArgsProduct({{512}, {512}, {2048}, {0, 1}})
    ->ArgsProduct({{512}, {5632}, {2048}, {0, 1}})
    ->ArgsProduct({{512}, {2048}, {5632}, {0, 1}})
    ->ArgsProduct({{1}, {32000}, {768, 2048}, {0, 1}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// m = 512 for every kernel (the compute roof); m = 1..64 for the fast kernels (the decode range:
// where our own kernels and oneDNN's amx cross over, see linear()'s routing in kernels.cpp).
BENCHMARK(BM_GemmPeak)
    ->ArgsProduct({{0, 1, 2, 3, 4}, {512}, {0, 1}})
    ->ArgsProduct({{1, 2, 3, 4}, {1, 2, 4, 8, 16, 64}, {0, 1}})
    ->ArgsProduct({{4}, {2048}, {0, 1}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

#if __has_include(<dnnl.hpp>)
// oneDNN's own bf16 matmul (one bf16 part of the activations, bf16 W in place, f32 out) on its
// OpenMP threads: the bf16 peak of this machine as the library PyTorch uses measures it.
void BM_OneDnnPeak(benchmark::State& state) {
  using dnnl::memory;
  const int64_t m = state.range(0), n = 2048, k = 2048;
  omp_set_num_threads(bench_threads());
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream stream(eng);
  const memory::desc a_md({m, k}, memory::data_type::bf16, memory::format_tag::ab);
  const memory::desc w_md({k, n}, memory::data_type::bf16, memory::format_tag::ba);
  const memory::desc c_md({m, n}, memory::data_type::f32, memory::format_tag::ab);
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_md, w_md, c_md), eng);
  memory A(a_md, eng), W(w_md, eng), C(c_md, eng);
  std::fill_n(static_cast<uint16_t*>(A.get_data_handle()), m * k, uint16_t{0x3f00});
  std::fill_n(static_cast<uint16_t*>(W.get_data_handle()), n * k, uint16_t{0x3c00});
  dnnl::matmul mm(pd);
  mm.execute(stream, {{DNNL_ARG_SRC, A}, {DNNL_ARG_WEIGHTS, W}, {DNNL_ARG_DST, C}});  // warm
  stream.wait();
  const double cpu0 = process_cpu_seconds();
  for (auto _ : state) {
    mm.execute(stream, {{DNNL_ARG_SRC, A}, {DNNL_ARG_WEIGHTS, W}, {DNNL_ARG_DST, C}});
    stream.wait();
  }
  state.SetLabel(pd.impl_info_str());
  const double gflop = 2.0 * m * n * k * state.iterations() / 1e9;
  state.counters["GFLOPs"] = benchmark::Counter(gflop, benchmark::Counter::kIsRate);
  // OpenMP's waiting threads spin, so this undercounts oneDNN's per-core rate when they wait.
  per_cpu_second(state, "GFLOP_per_cpu_s", gflop, cpu0);
}
BENCHMARK(BM_OneDnnPeak)
    ->Arg(16)
    ->Arg(64)
    ->Arg(512)
    ->Arg(2048)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
#endif

// The machine's f32 FMA peak per ISA: a register-only loop of independent FMA chains (16, more
// than the 2 FMA ports x 4 cycles of latency of current cores), no memory traffic, on `threads`
// threads (range(0)). The bound an f32 kernel of that ISA can reach (the AVX2 class's roof).
#define EM_BENCH_AVX2 __attribute__((target("avx2,fma")))
#define EM_BENCH_AVX512 __attribute__((target("avx512f")))
constexpr int kFmaChains = 16;
EM_BENCH_AVX2 float fma_chains_avx2(int64_t iters) {
  __m256 acc[kFmaChains];
  for (int k = 0; k < kFmaChains; ++k) acc[k] = _mm256_set1_ps(1e-3f * k);
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  for (int64_t i = 0; i < iters; ++i)
#pragma GCC unroll 16
    for (int k = 0; k < kFmaChains; ++k) acc[k] = _mm256_fmadd_ps(acc[k], a, b);
  __m256 s = acc[0];
  for (int k = 1; k < kFmaChains; ++k) s = _mm256_add_ps(s, acc[k]);
  return _mm256_cvtss_f32(s);
}
EM_BENCH_AVX512 float fma_chains_avx512(int64_t iters) {
  __m512 acc[kFmaChains];
  for (int k = 0; k < kFmaChains; ++k) acc[k] = _mm512_set1_ps(1e-3f * k);
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  for (int64_t i = 0; i < iters; ++i)
#pragma GCC unroll 16
    for (int k = 0; k < kFmaChains; ++k) acc[k] = _mm512_fmadd_ps(acc[k], a, b);
  __m512 s = acc[0];
  for (int k = 1; k < kFmaChains; ++k) s = _mm512_add_ps(s, acc[k]);
  return _mm512_cvtss_f32(s);
}

template <infer_detail::GemmKernel Isa>
void BM_FmaPeak(benchmark::State& state) {
  if (std::string why = infer_detail::gemm_kernel_unavailable(Isa); !why.empty()) {
    state.SkipWithError(why.c_str());
    return;
  }
  const int threads = static_cast<int>(state.range(0));
  constexpr bool wide = Isa == infer_detail::GemmKernel::Avx512;
  constexpr int64_t kIters = 1 << 22;
  infer_detail::ThreadPool pool(threads);
  std::vector<float> sink(threads);
  const double cpu0 = process_cpu_seconds();
  for (auto _ : state) {
    pool.parallel_for(threads, [&](int64_t t, int) {
      sink[t] = wide ? fma_chains_avx512(kIters) : fma_chains_avx2(kIters);
    });
    benchmark::DoNotOptimize(sink.data());
  }
  const double gflop =
      2.0 * kFmaChains * (wide ? 16 : 8) * kIters * threads * state.iterations() / 1e9;
  state.counters["GFLOPs"] = benchmark::Counter(gflop, benchmark::Counter::kIsRate);
  per_cpu_second(state, "GFLOP_per_cpu_s", gflop, cpu0);
}
BENCHMARK(BM_FmaPeak<infer_detail::GemmKernel::Avx2>)
    ->Name("BM_FmaPeak/avx2")
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_FmaPeak<infer_detail::GemmKernel::Avx512>)
    ->Name("BM_FmaPeak/avx512")
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// Packing one bf16 matrix for the amx tiles (gemm.h: PackedBf16), as the engine does once per
// candidate for every matrix (7 per layer, on its threads): a 1B model's gate/up [5632 x 2048],
// a fresh buffer each time (the first touch of its pages is part of the cost). One thread.
// range(0) indexes kAllGemmKernels: the widest registers the full blocks are transposed with
// (scalar: plain moves, avx2: the path of CPUs without AVX-512, amx: the best this CPU has).
void BM_PackBf16(benchmark::State& state) {
  const auto widest = infer_detail::kAllGemmKernels[state.range(0)];
  if (std::string why = infer_detail::gemm_kernel_unavailable(widest); !why.empty()) {
    state.SkipWithError(why.c_str());
    return;
  }
  const int64_t n = 5632, k = 2048;
  std::vector<uint16_t> w(n * k);
  for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<uint16_t>(i * 2654435761u >> 16);
  for (auto _ : state) {
    infer_detail::PackedBf16 packed;
    packed.pack(w.data(), n, k, widest);
    benchmark::DoNotOptimize(packed.data());
  }
  state.counters["GBps"] =
      benchmark::Counter(double(n * k) * 2 * state.iterations() / 1e9, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_PackBf16)->Arg(0)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

// Streaming read of a 512 MiB buffer with the bench's thread count: the decode roof.
void BM_MemoryBandwidth(benchmark::State& state) {
  const size_t n = (512u << 20) / sizeof(float);
  std::vector<float> buf(n, 1.0f);
  infer_detail::ThreadPool pool(bench_threads());
  const int64_t chunks = 256;
  std::vector<double> sums(chunks);
  for (auto _ : state) {
    pool.parallel_for(chunks, [&](int64_t i, int) {
      const float* p = buf.data() + i * (n / chunks);
      float acc[16] = {};
      for (size_t j = 0; j < n / chunks; j += 16)
        for (int l = 0; l < 16; ++l) acc[l] += p[j + l];
      sums[i] = std::accumulate(acc, acc + 16, 0.0);
    });
    benchmark::DoNotOptimize(sums.data());
  }
  state.counters["GBps"] = benchmark::Counter(double(n) * sizeof(float) * state.iterations() / 1e9,
                                              benchmark::Counter::kIsRate);
}
BENCHMARK(BM_MemoryBandwidth)->Unit(benchmark::kMillisecond)->UseRealTime();

// Scoring-style prefill: `batch` contexts of `len` tokens, logits only at the last position
// (loglikelihood of a 1-token continuation), i.e. pure layer compute. Args: model, len, batch,
// max_batch_tokens, precision.
void BM_Prefill(benchmark::State& state) {
  const int model = static_cast<int>(state.range(0));
  const int len = static_cast<int>(state.range(1)), batch = static_cast<int>(state.range(2));
  EngineOptions opt;
  opt.threads = bench_threads();
  opt.max_batch_tokens = static_cast<int>(state.range(3));
  opt.precision = state.range(4) ? Precision::Bf16 : Precision::Exact;
  Engine engine(weights(model), opt);
  std::vector<Engine::LoglikRequest> reqs;
  for (int b = 0; b < batch; ++b) reqs.push_back({tokens(len, 100 + b), {7}});
  ModelCost c = cost(model);
  benchmark::DoNotOptimize(engine.loglikelihood(reqs));  // warm: buffers, oneDNN's JIT
  const double cpu0 = process_cpu_seconds();
  for (auto _ : state) benchmark::DoNotOptimize(engine.loglikelihood(reqs));
  const double toks = double(len) * batch;
  const double flops = toks * c.layer_flops_per_token + batch * c.head_flops_per_row +
                       batch * c.attn_flops_per_key * (double(len) * (len + 1) / 2);
  state.counters["tokens/s"] =
      benchmark::Counter(toks * state.iterations(), benchmark::Counter::kIsRate);
  state.counters["GFLOPs"] =
      benchmark::Counter(flops * state.iterations() / 1e9, benchmark::Counter::kIsRate);
  per_cpu_second(state, "GFLOP_per_cpu_s", flops * state.iterations() / 1e9, cpu0);
}
// The range: contexts of 64-2048 tokens, batches of 1-64 contexts (64 x 64 is one
// micro-batch of 4096 rows).
BENCHMARK(BM_Prefill)
    ->ArgsProduct({{0, 1}, {512}, {1}, {4096}, {0, 1}})
    ->ArgsProduct({{0}, {512}, {4}, {4096}, {0, 1}})
    ->ArgsProduct({{0}, {128}, {16}, {4096}, {0, 1}})
    ->ArgsProduct({{0, 1}, {64, 2048}, {1}, {4096}, {0, 1}})
    ->ArgsProduct({{0, 1}, {64}, {64}, {4096}, {0, 1}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// Logits at every position (forward_logits), the head GEMM included.
void BM_ForwardLogits(benchmark::State& state) {
  const int len = static_cast<int>(state.range(0));
  EngineOptions opt;
  opt.threads = bench_threads();
  Engine engine(weights(), opt);
  std::vector<std::vector<int32_t>> seqs = {tokens(len, 1), tokens(len, 2)};
  ModelCost c = cost();
  for (auto _ : state) benchmark::DoNotOptimize(engine.forward_logits(seqs));
  const double toks = 2.0 * len;
  const double flops = toks * (c.layer_flops_per_token + c.head_flops_per_row) +
                       2 * c.attn_flops_per_key * (double(len) * (len + 1) / 2);
  state.counters["tokens/s"] =
      benchmark::Counter(toks * state.iterations(), benchmark::Counter::kIsRate);
  state.counters["GFLOPs"] =
      benchmark::Counter(flops * state.iterations() / 1e9, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_ForwardLogits)->Arg(256)->Unit(benchmark::kMillisecond)->UseRealTime();

// Batched greedy decode: B sequences, 32 decode steps. Time of generate(33 new) minus generate(1
// new) (same prompts), so prompt prefill is excluded. bound_tokens/s = B * bandwidth / weight bytes
// per step with EVOMERGE_BENCH_BW_GBPS (the BM_MemoryBandwidth result; default 10). Args: model,
// B, precision.
void BM_Decode(benchmark::State& state) {
  const int model = static_cast<int>(state.range(0));
  const int B = static_cast<int>(state.range(1));
  const bool cache = false;
  EngineOptions opt;
  opt.threads = bench_threads();
  opt.cache_f32_weights = cache;
  opt.precision = state.range(2) ? Precision::Bf16 : Precision::Exact;
  Engine engine(weights(model), opt);
  std::vector<Engine::GenerateRequest> one, many;
  for (int b = 0; b < B; ++b) {
    one.push_back({tokens(8, 300 + b), 1, {}});
    many.push_back({tokens(8, 300 + b), 33, {}});
  }
  // Warm, untimed: the engine packs a layer's weights and faults in its mapped pages on the
  // layer's first use, which the first generate(one) would pay and the subtraction below would
  // then credit to decoding (it inflated the 1B figures past the memory-bandwidth bound).
  benchmark::DoNotOptimize(engine.generate_with(many, {}, {-1}));
  double decode_cpu = 0;
  for (auto _ : state) {
    auto t0 = std::chrono::steady_clock::now();
    const double c0 = process_cpu_seconds();
    benchmark::DoNotOptimize(engine.generate_with(one, {}, {-1}));
    auto t1 = std::chrono::steady_clock::now();
    const double c1 = process_cpu_seconds();
    benchmark::DoNotOptimize(engine.generate_with(many, {}, {-1}));
    auto t2 = std::chrono::steady_clock::now();
    decode_cpu += (process_cpu_seconds() - c1) - (c1 - c0);
    state.SetIterationTime(std::chrono::duration<double>((t2 - t1) - (t1 - t0)).count());
  }
  state.counters["tokens_per_cpu_s"] = 32.0 * B * state.iterations() / std::max(1e-9, decode_cpu);
  ModelCost c = cost(model);
  const char* bw = std::getenv("EVOMERGE_BENCH_BW_GBPS");
  const double gbps = bw ? std::atof(bw) : 10.0;
  const double bytes = cache ? 2 * c.weight_bytes_per_step : c.weight_bytes_per_step;
  state.counters["tokens/s"] =
      benchmark::Counter(32.0 * B * state.iterations(), benchmark::Counter::kIsRate);
  state.counters["bound_tokens/s"] = B * gbps * 1e9 / bytes;
}
BENCHMARK(BM_Decode)
    ->ArgsProduct({{0, 1}, {1, 16}, {0, 1}})
    ->ArgsProduct({{0}, {64}, {0, 1}})
    ->Unit(benchmark::kMillisecond)
    ->UseManualTime()
    ->Iterations(2);

// Questions per second on a bundled tiny model (examples/models/large/math_en, 6.7M params): 100
// arithmetic questions in the fixtures' prompt format, batched.
//  - generative: greedy until EOS or "\n", at most 16 new tokens (as the fixtures' task scoring);
//  - choice: 4 candidate answers per question scored by loglikelihood (shared context).
const fs::path kTinyModel = fs::path(EVOMERGE_SOURCE_DIR) / "examples/models/large/math_en";

// One sequence's decode steps, each timed (wall clock, between streamed tokens): the fastest step
// is what the step costs when neither thread was descheduled, so on a loaded machine it still
// shows the per-step overheads (parallel-region wake-ups) that tokens_per_cpu_s does not. Models 0
// and 1 as above; 2 = the bundled 6.7M model, whose weights stay in L2 and whose ~0.3 ms steps are
// mostly those overheads.
void BM_DecodeStepFloor(benchmark::State& state) {
  const int model = static_cast<int>(state.range(0));
  if (model == 2 && !fs::exists(kTinyModel / "model.safetensors")) {
    state.SkipWithError("examples/models/large/math_en is missing");
    return;
  }
  EngineOptions opt;
  opt.threads = bench_threads();
  Engine engine(model == 2 ? open_folder_weights(kTinyModel.string()) : weights(model), opt);
  std::vector<int32_t> prompt = tokens(8, 300);
  for (int32_t& t : prompt) t %= model == 2 ? 768 : 32000;  // the bundled model's vocab
  std::vector<Engine::GenerateRequest> req = {{prompt, 65, {}}};
  std::vector<double> steps;
  steps.reserve(64 * 1024);
  for (auto _ : state) {
    auto last = std::chrono::steady_clock::now();
    int seen = 0;
    benchmark::DoNotOptimize(engine.generate_with(req, {}, {-1}, [&](size_t, int32_t) {
      const auto now = std::chrono::steady_clock::now();
      if (seen++ > 0)
        steps.push_back(std::chrono::duration<double, std::milli>(now - last).count());
      last = now;
    }));
  }
  std::sort(steps.begin(), steps.end());
  state.counters["min_step_ms"] = steps.empty() ? 0 : steps.front();
  state.counters["p10_step_ms"] = steps.empty() ? 0 : steps[steps.size() / 10];
  state.counters["median_step_ms"] = steps.empty() ? 0 : steps[steps.size() / 2];
}
BENCHMARK(BM_DecodeStepFloor)->Arg(0)->Arg(2)->Unit(benchmark::kMillisecond)->Iterations(8);

std::vector<std::pair<std::string, int>> questions() {
  std::vector<std::pair<std::string, int>> q;  // (prompt, a + b); a and b kept in the prompt text
  uint32_t s = 5;
  for (int i = 0; i < 100; ++i) {
    int a = static_cast<int>((s = s * 1664525u + 1013904223u) >> 24) % 90 + 10;
    int b = static_cast<int>((s = s * 1664525u + 1013904223u) >> 24) % 90 + 10;
    q.emplace_back(
        "Question: What is " + std::to_string(a) + " plus " + std::to_string(b) + "?\nAnswer:",
        a + b);
  }
  return q;
}

// The bundled model on the bench's threads; state.range(0) != 0 keeps f32 copies of the weights.
Engine tiny_engine(const benchmark::State& state) {
  EngineOptions opt;
  opt.threads = bench_threads();
  opt.cache_f32_weights = state.range(0) != 0;
  return Engine(open_folder_weights(kTinyModel.string()), opt);
}

void BM_TinyQuestionsGenerate(benchmark::State& state) {
  if (!fs::exists(kTinyModel / "model.safetensors")) {
    state.SkipWithError("examples/models/large/math_en is missing");
    return;
  }
  Tokenizer tok = Tokenizer::load(kTinyModel);
  Engine engine = tiny_engine(state);
  const auto qs = questions();
  std::vector<Engine::GenerateRequest> reqs;
  for (const auto& [text, answer] : qs) reqs.push_back({tok.encode(text), 16, {"\n"}});
  int correct = 0;
  for (auto _ : state) {
    auto res = engine.generate(reqs, &tok);
    correct = 0;
    for (size_t i = 0; i < res.size(); ++i)
      correct += res[i].text.find(std::to_string(qs[i].second)) != std::string::npos;
  }
  state.counters["questions/s"] =
      benchmark::Counter(100.0 * state.iterations(), benchmark::Counter::kIsRate);
  state.counters["correct"] = correct;
}
BENCHMARK(BM_TinyQuestionsGenerate)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_TinyQuestionsChoice(benchmark::State& state) {
  if (!fs::exists(kTinyModel / "model.safetensors")) {
    state.SkipWithError("examples/models/large/math_en is missing");
    return;
  }
  Tokenizer tok = Tokenizer::load(kTinyModel);
  Engine engine = tiny_engine(state);
  std::vector<Engine::LoglikRequest> reqs;
  for (const auto& [text, answer] : questions()) {
    auto ctx = tok.encode(text);
    // The fixtures answer " a + b = c": candidates differ only in c.
    const size_t at = text.find("is ") + 3, plus = text.find(" plus "), end = text.find('?');
    const std::string sum =
        " " + text.substr(at, plus - at) + " + " + text.substr(plus + 6, end - plus - 6) + " = ";
    for (int d : {0, 1, -1, 10})
      reqs.push_back({ctx, tok.encode(sum + std::to_string(answer + d), false)});
  }
  int correct = 0;
  for (auto _ : state) {
    auto res = engine.loglikelihood(reqs);
    correct = 0;
    for (size_t i = 0; i < res.size(); i += 4) {
      size_t best = i;
      for (size_t j = i + 1; j < i + 4; ++j)
        if (res[j].logprob > res[best].logprob) best = j;
      correct += best == i;
    }
  }
  state.counters["questions/s"] =
      benchmark::Counter(100.0 * state.iterations(), benchmark::Counter::kIsRate);
  state.counters["correct"] = correct;
}
BENCHMARK(BM_TinyQuestionsChoice)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace evomerge

BENCHMARK_MAIN();
