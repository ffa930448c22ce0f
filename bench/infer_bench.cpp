// Inference engine speed against the machine's own bounds, measured by this same program:
//  - prefill / scoring FLOP/s vs the OpenBLAS sgemm peak (BM_SgemmPeak),
//  - batched decode tokens/s vs the memory-bandwidth bound (BM_MemoryBandwidth: bytes of weights
//    read per decode step / bandwidth).
// The model is a generated ~100M-parameter Llama-shaped bf16 model with random weights (hidden 768,
// intermediate 2048, 8 layers, 12 heads, 4 kv heads, vocab 32000), written once to
// $TMPDIR/evomerge_bench_llama100m. Threads: EVOMERGE_BENCH_THREADS (default 2).
// Run: build/bench/bench_infer --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>

#include "arch/arch.h"
#include "infer/engine.h"
#include "infer/kernels.h"
#include "infer/random_model.h"
#include "tokenize/tokenizer.h"

namespace evomerge {
namespace {

namespace fs = std::filesystem;

int bench_threads() {
  const char* t = std::getenv("EVOMERGE_BENCH_THREADS");
  return t ? std::max(1, std::atoi(t)) : 2;
}

nlohmann::json bench_config() {
  auto c = small_model_config("llama", 32000, 768, 2048, 8, 12, 4);
  c["max_position_embeddings"] = 2048;
  c["rope_theta"] = 10000.0;
  return c;
}

const fs::path& bench_model() {
  static const fs::path dir = [] {
    fs::path d = fs::temp_directory_path() / "evomerge_bench_llama100m";
    if (!fs::exists(d / "model.safetensors")) {
      RandomModelSpec spec;
      spec.config = bench_config();
      spec.seed = 42;
      spec.stddev = 0.02f;
      write_random_model(d, spec);
    }
    return d;
  }();
  return dir;
}

std::shared_ptr<WeightSource> weights() {
  static auto w = open_folder_weights(bench_model().string());
  return w;
}

// FLOPs of the layer matmuls per token (2 per multiply-add), and bytes of weights one decode step
// reads.
struct ModelCost {
  double layer_flops_per_token = 0, head_flops_per_row = 0, weight_bytes_per_step = 0;
  double attn_flops_per_key = 0;  // per (token, visible key) over all layers: QK^T and PV
};
ModelCost cost() {
  ModelConfig c = weights()->config();
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
// (loglikelihood of a 1-token continuation), i.e. pure layer compute.
void BM_Prefill(benchmark::State& state) {
  const int len = static_cast<int>(state.range(0)), batch = static_cast<int>(state.range(1));
  EngineOptions opt;
  opt.threads = bench_threads();
  opt.max_batch_tokens = static_cast<int>(state.range(2));
  Engine engine(weights(), opt);
  std::vector<Engine::LoglikRequest> reqs;
  for (int b = 0; b < batch; ++b) reqs.push_back({tokens(len, 100 + b), {7}});
  ModelCost c = cost();
  for (auto _ : state) benchmark::DoNotOptimize(engine.loglikelihood(reqs));
  const double toks = double(len) * batch;
  const double flops = toks * c.layer_flops_per_token + batch * c.head_flops_per_row +
                       batch * c.attn_flops_per_key * (double(len) * (len + 1) / 2);
  state.counters["tokens/s"] =
      benchmark::Counter(toks * state.iterations(), benchmark::Counter::kIsRate);
  state.counters["GFLOPs"] =
      benchmark::Counter(flops * state.iterations() / 1e9, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Prefill)
    ->Args({512, 4, 4096})
    ->Args({512, 4, 512})
    ->Args({128, 16, 4096})
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
// per step with EVOMERGE_BENCH_BW_GBPS (the BM_MemoryBandwidth result; default 10).
void BM_Decode(benchmark::State& state) {
  const int B = static_cast<int>(state.range(0));
  const bool cache = state.range(1) != 0;
  EngineOptions opt;
  opt.threads = bench_threads();
  opt.cache_f32_weights = cache;
  Engine engine(weights(), opt);
  std::vector<Engine::GenerateRequest> one, many;
  for (int b = 0; b < B; ++b) {
    one.push_back({tokens(8, 300 + b), 1, {}});
    many.push_back({tokens(8, 300 + b), 33, {}});
  }
  for (auto _ : state) {
    auto t0 = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(engine.generate_with(one, {}, {-1}));
    auto t1 = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(engine.generate_with(many, {}, {-1}));
    auto t2 = std::chrono::steady_clock::now();
    state.SetIterationTime(std::chrono::duration<double>((t2 - t1) - (t1 - t0)).count());
  }
  ModelCost c = cost();
  const char* bw = std::getenv("EVOMERGE_BENCH_BW_GBPS");
  const double gbps = bw ? std::atof(bw) : 10.0;
  const double bytes = cache ? 2 * c.weight_bytes_per_step : c.weight_bytes_per_step;
  state.counters["tokens/s"] =
      benchmark::Counter(32.0 * B * state.iterations(), benchmark::Counter::kIsRate);
  state.counters["bound_tokens/s"] = B * gbps * 1e9 / bytes;
}
BENCHMARK(BM_Decode)
    ->Args({1, 0})
    ->Args({4, 0})
    ->Args({16, 0})
    ->Args({64, 0})
    ->Unit(benchmark::kMillisecond)
    ->UseManualTime()
    ->Iterations(2);

// Questions per second on a bundled tiny model (examples/models/large/math_en, 6.7M params): 100
// arithmetic questions in the fixtures' prompt format, batched.
//  - generative: greedy until EOS or "\n", at most 16 new tokens (as the fixtures' task scoring);
//  - choice: 4 candidate answers per question scored by loglikelihood (shared context).
const fs::path kTinyModel = fs::path(EVOMERGE_SOURCE_DIR) / "examples/models/large/math_en";

std::vector<std::pair<std::string, int>> questions() {
  std::vector<std::pair<std::string, int>> q;  // (prompt, a + b); a and b kept in the prompt text
  uint32_t s = 5;
  for (int i = 0; i < 100; ++i) {
    int a = static_cast<int>((s = s * 1664525u + 1013904223u) >> 24) % 90 + 10;
    int b = static_cast<int>((s = s * 1664525u + 1013904223u) >> 24) % 90 + 10;
    q.emplace_back("Question: What is " + std::to_string(a) + " plus " + std::to_string(b) + "?\nAnswer:", a + b);
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
    for (size_t i = 0; i < res.size(); ++i) correct += res[i].text.find(std::to_string(qs[i].second)) != std::string::npos;
  }
  state.counters["questions/s"] = benchmark::Counter(100.0 * state.iterations(), benchmark::Counter::kIsRate);
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
    const std::string sum = " " + text.substr(at, plus - at) + " + " + text.substr(plus + 6, end - plus - 6) + " = ";
    for (int d : {0, 1, -1, 10}) reqs.push_back({ctx, tok.encode(sum + std::to_string(answer + d), false)});
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
  state.counters["questions/s"] = benchmark::Counter(100.0 * state.iterations(), benchmark::Counter::kIsRate);
  state.counters["correct"] = correct;
}
BENCHMARK(BM_TinyQuestionsChoice)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace evomerge

BENCHMARK_MAIN();
