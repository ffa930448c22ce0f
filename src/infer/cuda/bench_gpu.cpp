// GPU benchmark of the CUDA backend (run by scripts/gpu-check.sh; not a Google Benchmark program:
// each figure needs its own bound). On a generated Llama-3-8B-shaped bf16 model held in host
// memory (no disk):
//  - the measured cuBLASLt bf16 GEMM peak and device-to-device copy bandwidth (the bounds);
//  - prefill: 16 sequences x 512 tokens (log-likelihood of the last token), tokens/s and the share
//    of the GEMM peak (2 x matmul parameters FLOPs per token);
//  - decode: 1 and 64 sequences, tokens/s against the bandwidth bound (every weight byte read once
//    per step);
//  - PS candidates/hour: task_arithmetic over 2 models and a base merged on the host (16 threads,
//    bf16 out; the stand-in for a host merge, no device merge yet) + upload + 64 greedy answers of
//    up to 64 tokens, with the merge + upload share of the time.
// Usage: bench_gpu [--layers N] (default 32; fewer for a quick run). Prints one line per figure.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "arch/arch.h"
#include "arch/config.h"
#include "infer/backend.h"
#include "infer/engine.h"
#include "infer/random_model.h"
#ifdef EVOMERGE_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "infer/cuda/device.h"
#include "infer/cuda/gemm.h"
#endif

namespace evomerge {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Fills n bf16 values ~ U(-a, a) on all cores (xorshift per thread; fast, not statistical).
void fill_bf16(uint16_t* dst, size_t n, float a, uint64_t seed) {
  const unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < threads; ++t)
    pool.emplace_back([=] {
      uint64_t s = seed * 0x9E3779B97F4A7C15ull + t + 1;
      for (size_t i = n * t / threads; i < n * (t + 1) / threads; ++i) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        const float u = static_cast<float>(s >> 40) / 16777216.0f * 2.0f - 1.0f;
        uint32_t bits;
        const float v = u * a;
        std::memcpy(&bits, &v, 4);
        dst[i] = static_cast<uint16_t>(bits >> 16);
      }
    });
  for (auto& th : pool) th.join();
}

// A bf16 model in host memory: one buffer per tensor.
struct HostModel {
  ModelConfig config;
  std::map<std::string, std::vector<uint16_t>> data;
  std::map<std::string, TensorView> views() {
    std::map<std::string, TensorView> v;
    for (auto& [name, buf] : data) {
      const auto spec = std::find_if(specs.begin(), specs.end(),
                                     [&](const TensorSpec& s) { return s.name == name; });
      v[name] = {DType::BF16, spec->shape, reinterpret_cast<const std::byte*>(buf.data()),
                 buf.size() * 2};
    }
    return v;
  }
  std::vector<TensorSpec> specs;
};

HostModel make_model(int layers, uint64_t seed) {
  auto cfg = small_model_config("llama", 128256, 4096, 14336, layers, 32, 8);
  cfg["rope_theta"] = 500000.0;
  cfg["max_position_embeddings"] = 8192;
  cfg["rope_scaling"] = {{"rope_type", "llama3"},
                         {"factor", 8.0},
                         {"low_freq_factor", 1.0},
                         {"high_freq_factor", 4.0},
                         {"original_max_position_embeddings", 8192}};
  HostModel m;
  m.config = parse_model_config(cfg, "bench config");
  m.specs = expected_tensors(m.config, DType::BF16);
  for (const auto& s : m.specs) {
    auto& buf = m.data[s.name];
    buf.resize(static_cast<size_t>(shape_numel(s.shape)));
    const bool norm = s.name.find("norm") != std::string::npos;
    if (norm)
      std::fill(buf.begin(), buf.end(), uint16_t{0x3f80});  // 1.0
    else
      fill_bf16(buf.data(), buf.size(), 0.02f, seed + std::hash<std::string>{}(s.name));
  }
  return m;
}

double weight_bytes(const HostModel& m) {
  double b = 0;
  for (const auto& [name, buf] : m.data)
    if (name != "model.embed_tokens.weight") b += 2.0 * buf.size();  // rows are gathered, not read
  return b;
}

#ifdef EVOMERGE_HAVE_CUDA
// cuBLASLt bf16 GEMM FLOP/s on a prefill-sized MLP matmul, and device-to-device bytes/s.
std::pair<double, double> device_bounds() {
  using cuda::DeviceBuffer;
  const int64_t n = 8192, in = 4096, out = 14336;
  DeviceBuffer<uint16_t> W(out * in), X(n * in);
  DeviceBuffer<float> Y(n * out);
  cudaMemset(W.get(), 0, out * in * 2), cudaMemset(X.get(), 0, n * in * 2);
  cuda::Gemm gemm(nullptr);
  for (int i = 0; i < 3; ++i) gemm.linear(W.get(), out, in, X.get(), n, Y.get());
  cudaDeviceSynchronize();
  auto t0 = Clock::now();
  constexpr int kReps = 20;
  for (int i = 0; i < kReps; ++i) gemm.linear(W.get(), out, in, X.get(), n, Y.get());
  cudaDeviceSynchronize();
  const double flops = 2.0 * n * in * out * kReps / seconds_since(t0);
  const size_t bytes = size_t{4} << 30;
  DeviceBuffer<std::byte> a(bytes), b(bytes);
  cudaMemcpy(b.get(), a.get(), bytes, cudaMemcpyDeviceToDevice);
  cudaDeviceSynchronize();
  t0 = Clock::now();
  for (int i = 0; i < 5; ++i) cudaMemcpy(b.get(), a.get(), bytes, cudaMemcpyDeviceToDevice);
  cudaDeviceSynchronize();
  const double bw = 2.0 * bytes * 5 / seconds_since(t0);  // read + write
  return {flops, bw};
}
#endif

std::vector<int32_t> tokens(int n, uint32_t seed) {
  std::vector<int32_t> t(n);
  for (int i = 0; i < n; ++i) t[i] = static_cast<int32_t>((seed * 7919u + i * 104729u) % 128000u);
  return t;
}

// Best of `reps` wall times of f().
template <class F>
double best_of(int reps, F&& f) {
  double best = 1e30;
  for (int i = 0; i < reps; ++i) {
    auto t0 = Clock::now();
    f();
    best = std::min(best, seconds_since(t0));
  }
  return best;
}

// Prefill: 16 sequences of 512 tokens (contexts of 511 and one scored token each).
void bench_prefill(Engine& engine, double matmul_params, double peak) {
  std::vector<Engine::LoglikRequest> pre;
  for (int s = 0; s < 16; ++s) {
    auto t = tokens(512, s);
    pre.push_back({std::vector<int32_t>(t.begin(), t.end() - 1), {t.back()}});
  }
  engine.loglikelihood(pre);  // warm-up (GEMM plans, buffers)
  const double tp = best_of(3, [&] { engine.loglikelihood(pre); });
  const double ptps = 16 * 511 / tp;
  fmt::print("prefill 16x512: {:.0f} tokens/s, {:.1f}% of the GEMM peak\n", ptps,
             100.0 * ptps * 2 * matmul_params / peak);
}

// Decode: b sequences, 64 new tokens after a 16-token prompt (EOS never stops them); the prompt's
// time (a 1-token generation) is subtracted. Bound: every weight byte read once per step.
void bench_decode(Engine& engine, int b, double weight_bytes, double bw) {
  std::vector<Engine::GenerateRequest> reqs;
  for (int s = 0; s < b; ++s) reqs.push_back({tokens(16, 100 + s), 64, {}});
  auto prompt_only = reqs;
  for (auto& r : prompt_only) r.max_new_tokens = 1;
  engine.generate_with(reqs, {}, {-1});
  const double t_all = best_of(2, [&] { engine.generate_with(reqs, {}, {-1}); });
  const double t_pre = best_of(2, [&] { engine.generate_with(prompt_only, {}, {-1}); });
  const double dtps = b * 63 / std::max(1e-9, t_all - t_pre);
  const double bound = b * bw / weight_bytes;
  fmt::print("decode {} seq: {:.0f} tokens/s, {:.1f}% of the bandwidth bound ({:.0f} tokens/s)\n",
             b, dtps, 100.0 * dtps / bound, bound);
}

// merged = base + w1 (a - base) + w2 (b - base), bf16 in and out (f32 math), on all cores.
void host_task_arithmetic(HostModel& base, HostModel& a, HostModel& b, HostModel& merged, float w1,
                          float w2) {
  const unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  auto f = [](uint16_t h) {
    const uint32_t u = static_cast<uint32_t>(h) << 16;
    float v;
    std::memcpy(&v, &u, 4);
    return v;
  };
  for (auto& [name, out] : merged.data) {
    const auto &x = base.data[name], &xa = a.data[name], &xb = b.data[name];
    std::vector<std::thread> pool;
    for (unsigned t = 0; t < threads; ++t)
      pool.emplace_back([&, t] {
        for (size_t i = out.size() * t / threads; i < out.size() * (t + 1) / threads; ++i) {
          const float v = f(x[i]) + w1 * (f(xa[i]) - f(x[i])) + w2 * (f(xb[i]) - f(x[i]));
          uint32_t u;
          std::memcpy(&u, &v, 4);
          out[i] = static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
        }
      });
    for (auto& th : pool) th.join();
  }
}

// PS candidates/hour: each candidate merged on the host, uploaded (weights_changed), then 64
// greedy answers of up to 64 tokens.
void bench_ps(HostModel& base, int layers, const EngineOptions& eo) {
  HostModel ma = make_model(layers, 2), mb = make_model(layers, 3);
  HostModel merged = make_model(layers, 4);
  Engine cand(make_memory_weights(merged.config, merged.views()), eo);
  std::vector<Engine::GenerateRequest> answers;
  for (int s = 0; s < 64; ++s) answers.push_back({tokens(48, 200 + s), 64, {}});
  double merge_s = 0, total_s = 0;
  constexpr int kCandidates = 3;
  for (int c = 0; c < kCandidates; ++c) {
    auto t_c = Clock::now();
    host_task_arithmetic(base, ma, mb, merged, 0.3f + 0.1f * c, 0.9f - 0.1f * c);
    cand.weights_changed();
    merge_s += seconds_since(t_c);
    cand.generate_with(answers, {}, {-1});
    total_s += seconds_since(t_c);
  }
  fmt::print(
      "ps     task_arithmetic (2 models + base, host merge + upload) + 64 answers x 64 tokens: "
      "{:.0f} candidates/hour, merge+upload {:.1f}% of the time\n",
      3600.0 * kCandidates / total_s, 100.0 * merge_s / total_s);
}

int run(int layers) {
  if (infer_detail::cuda_devices() == 0) {
    fmt::print("SKIP: no CUDA device (built with CUDA: {})\n", infer_detail::cuda_built());
    return 0;
  }
  double peak = 0, bw = 0;
#ifdef EVOMERGE_HAVE_CUDA
  std::tie(peak, bw) = device_bounds();
#endif
  fmt::print("bound  bf16 GEMM (8192x4096x14336, cuBLASLt): {:.1f} TFLOP/s\n", peak / 1e12);
  fmt::print("bound  device copy bandwidth (read + write): {:.0f} GB/s\n", bw / 1e9);

  auto t0 = Clock::now();
  HostModel base = make_model(layers, 1);
  const double wbytes = weight_bytes(base);
  fmt::print("model  Llama-3-8B shape, {} layers, bf16: {:.1f} GB weights, generated in {:.1f} s\n",
             layers, wbytes / 1e9, seconds_since(t0));
  const double matmul_params = wbytes / 2 - 128256.0 * 4096;  // the head runs for 16 rows only
  EngineOptions eo;
  eo.device = "cuda";
  eo.max_batch_tokens = 8192;
  eo.max_context = 1024;
  {
    t0 = Clock::now();
    Engine engine(make_memory_weights(base.config, base.views()), eo);
    fmt::print("upload {:.1f} s\n", seconds_since(t0));
    bench_prefill(engine, matmul_params, peak);
    for (int b : {1, 64}) bench_decode(engine, b, wbytes, bw);
  }  // frees its device memory
  eo.max_batch_tokens = 4096;
  bench_ps(base, layers, eo);
  return 0;
}

}  // namespace
}  // namespace evomerge

int main(int argc, char** argv) {
  int layers = 32;
  for (int i = 1; i + 1 < argc; ++i)
    if (std::string(argv[i]) == "--layers") layers = std::max(1, std::atoi(argv[i + 1]));
  try {
    return evomerge::run(layers);
  } catch (const std::exception& e) {
    fmt::print(stderr, "{}\n", e.what());
    return 1;
  }
}
