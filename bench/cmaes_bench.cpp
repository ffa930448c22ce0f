// The optimiser's own cost, and the cost of materialising a PS candidate in memory versus writing
// it to disk and reloading it (what tools that shell out to a merge CLI do). docs/benchmarks.md,
// section "evolve".
//
//   ./build/bench/bench_cmaes --benchmark_filter=Cmaes      # ask+tell per generation
//   ./build/bench/bench_cmaes --benchmark_filter=Candidate  # in-memory vs disk round trip
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <filesystem>

#include "common/progress.h"
#include "evolve/cmaes.h"
#include "evolve/genome.h"
#include "evolve/rng.h"
#include "infer/engine.h"
#include "infer/random_model.h"
#include "merge/merge.h"

namespace fs = std::filesystem;
using namespace evomerge;

// One generation (ask + tell). The fitness is noise (random ranks), so the distribution neither
// converges nor diverges however many generations the benchmark runs; the cost does not depend
// on the values.
static void BM_CmaesGeneration(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  CmaesOptions opt;
  opt.separable = state.range(1) != 0;
  opt.seed = 1;
  opt.tolfun = 0;
  opt.tolx = 0;
  opt.tol_flat_fitness = -1;
  opt.tol_stagnation = 0;
  opt.max_iter = 0;
  opt.check_no_effect = false;
  auto fresh = [&] { return Cmaes(Eigen::VectorXd::Constant(n, 1.0), 0.3, opt); };
  Cmaes es = fresh();
  Rng noise(7);
  auto generation = [&] {
    const auto& X = es.ask();
    std::vector<double> f(X.size());
    for (size_t k = 0; k < X.size(); ++k) f[k] = noise.uniform();
    es.tell(f);
  };
  for (int i = 0; i < 3; ++i) generation();
  int restarts = 0;
  for (auto _ : state) {
    generation();
    if (es.stopped()) {  // a random walk of C eventually trips conditioncov / tolupsigma
      state.PauseTiming();
      es = fresh();
      ++restarts;
      state.ResumeTiming();
    }
  }
  state.counters["restarts"] = restarts;
  state.counters["lambda"] = es.params().lambda;
  state.counters["eigen_gap"] = es.params().eigen_gap;
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_CmaesGeneration)
    ->Args({6, 0})   // the paper's PS: 3 models x (weight, density)
    ->Args({48, 0})  // 3 models x 8 layer groups x 2
    ->Args({200, 0})
    ->Args({4288, 1})  // the paper's DFS: T = 192 plus a full 64 x 64 W, sep-CMA
    ->Unit(benchmark::kMicrosecond);

namespace {

// Three models shaped like the bundled fixtures (Llama, 8 layers, hidden 256, vocab 768), f32.
struct Models {
  fs::path dir = fs::temp_directory_path() / ("evomerge_cmaes_bench_" + std::to_string(::getpid()));
  Models() {
    for (auto [name, seed] : {std::pair{"base", 1}, {"a", 2}, {"b", 3}}) {
      RandomModelSpec spec;
      spec.config = small_model_config("llama", 768, 256, 768, 8, 4, 2);
      spec.dtype = DType::BF16;
      spec.seed = seed;
      write_random_model(dir / name, spec);
    }
  }
  ~Models() { fs::remove_all(dir); }
  PsGenome genome() const {
    PsSpaceOptions o;
    o.models = {(dir / "a").string(), (dir / "b").string()};
    o.base_model = (dir / "base").string();
    o.num_layers = 8;
    o.layer_groups = 4;
    return PsGenome(o);
  }
};
Models& models() {
  static Models m;
  return m;
}

std::vector<double> candidate(const PsGenome& g, int i) {
  std::vector<double> x(g.dimension());
  for (size_t k = 0; k < x.size(); ++k) x[k] = 0.2 + 0.6 * ((k * 7 + i * 3) % 11) / 10.0;
  return x;
}

}  // namespace

// The search's path: plan, merge into reused f32 buffers, tell the engine. No file written.
static void BM_CandidateInMemory(benchmark::State& state) {
  Progress::set_global_enabled(false);
  const PsGenome g = models().genome();
  ModelCache cache;
  MergeOptions mo;
  mo.progress = false;
  mo.threads = 1;  // one thread in both paths: CPU time compares them on a shared machine
  Merger merger(mo);
  MergedBuffers buffers(DType::F32);
  std::unique_ptr<Engine> engine;
  std::shared_ptr<WeightSource> weights;
  int i = 0;
  for (auto _ : state) {
    const MergePlan plan = build_plan(g.decode(candidate(g, i++)), cache, mo);
    const bool fresh = buffers.prepare(plan);
    merger.merge_into(plan, buffers);
    if (fresh || !engine) {
      weights = make_memory_weights(buffers.config(), buffers.views());
      engine = std::make_unique<Engine>(weights, EngineOptions{.threads = 1});
    } else {
      engine->weights_changed();
    }
    benchmark::DoNotOptimize(engine.get());
  }
  state.counters["bytes_written"] = 0;
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_CandidateInMemory)->Unit(benchmark::kMillisecond)->UseRealTime();

// The round trip other tools make: merge to a folder (bf16 safetensors), reload it, build an
// engine.
static void BM_CandidateViaDisk(benchmark::State& state) {
  Progress::set_global_enabled(false);
  const PsGenome g = models().genome();
  MergeOptions mo;
  mo.progress = false;
  mo.threads = 1;
  FolderOptions fo;
  fo.replace_existing = true;
  fo.write_model_card = false;
  const fs::path out = models().dir / "candidate";
  int i = 0;
  uint64_t bytes = 0;
  for (auto _ : state) {
    const auto stats = merge_to_folder(g.decode(candidate(g, i++)), out, mo, fo);
    bytes = stats.bytes_written;
    Engine engine(open_folder_weights(out.string()), EngineOptions{.threads = 1});
    benchmark::DoNotOptimize(&engine);
  }
  state.counters["bytes_written"] = static_cast<double>(bytes);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_CandidateViaDisk)->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
