// Merge throughput against the streaming bound, on three generated ~1.1 GB bf16 models
// (bench/merge_make_models.py; directory from $EVOMERGE_MERGE_BENCH_DIR, default
// /tmp/evomerge-merge-bench with base/, m1/, m2/).
//
//   StreamingBound : read every input tensor once (bf16 -> f32, the cheapest use of the bytes) and
//                    write the output's bytes through the same ShardedWriter into a staged folder.
//   Merge/<method> : Merger::write_folder for linear, ties, dare_ties (complete folder, same writer).
//   InMemory/<m>   : Merger::merge_into f32 buffers (what the evolution engine does per candidate).
// Run: ./build/bench/bench_merge --benchmark_min_time=1x  (see bench/merge_bench.sh)
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "common/progress.h"
#include "io/files.h"
#include "io/safetensors.h"
#include "merge/merge.h"
#include "tensor/convert.h"

namespace evomerge {
namespace {

namespace fs = std::filesystem;

fs::path bench_dir() {
  const char* d = std::getenv("EVOMERGE_MERGE_BENCH_DIR");
  return d && *d ? fs::path(d) : fs::path("/tmp/evomerge-merge-bench");
}

MergeConfig config_for(const std::string& method) {
  const fs::path d = bench_dir();
  std::string base = (d / "base").string(), m1 = (d / "m1").string(), m2 = (d / "m2").string();
  std::string yaml;
  if (method == "linear")
    yaml = "merge_method: linear\nmodels:\n  - {model: " + base + ", parameters: {weight: 0.4}}\n  - {model: " + m1 +
           ", parameters: {weight: 0.3}}\n  - {model: " + m2 + ", parameters: {weight: 0.3}}\n";
  else
    yaml = "merge_method: " + method + "\nbase_model: " + base + "\nmodels:\n  - {model: " + m1 +
           ", parameters: {weight: 0.5, density: 0.5}}\n  - {model: " + m2 + ", parameters: {weight: 0.5, density: 0.5}}\n";
  return parse_merge_config(yaml, method + ".yml");
}

bool have_models(benchmark::State& state) {
  for (const char* m : {"base", "m1", "m2"})
    if (!fs::exists(bench_dir() / m / "model.safetensors")) {
      state.SkipWithError("models missing: run bench/merge_make_models.py first");
      return false;
    }
  return true;
}

void report(benchmark::State& state, uint64_t read, uint64_t written) {
  state.counters["read_GB"] = static_cast<double>(read) / 1e9;
  state.counters["written_GB"] = static_cast<double>(written) / 1e9;
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * (read + written)));
}

void BM_StreamingBound(benchmark::State& state) {
  if (!have_models(state)) return;
  Progress::set_global_enabled(false);
  ModelCache cache;
  MergePlan plan = build_plan(config_for("linear"), cache);
  uint64_t read = 0, written = 0;
  std::vector<float> buf;
  std::vector<std::byte> out;
  for (auto _ : state) {
    StagedDir staged(bench_dir() / "out_bound", true);  // never committed: removed afterwards
    std::vector<TensorSpec> specs;
    for (const auto& t : plan.tensors) specs.push_back({t.name, t.dtype, t.shape});
    ShardedWriter writer(staged.path(), specs);
    read = written = 0;
    for (const auto& t : plan.tensors) {
      const size_t n = static_cast<size_t>(shape_numel(t.shape));
      buf.resize(n);
      for (const auto& in : t.inputs) {
        TensorView v = plan.models[in.model]->stored(in.tensor);
        convert_to_f32(v.dtype, v.data, buf.data(), n);
        benchmark::DoNotOptimize(buf.data());
        read += v.nbytes;
      }
      out.resize(t.nbytes());
      convert_from_f32(t.dtype, buf.data(), out.data(), n);
      writer.write(t.name, out);
      written += t.nbytes();
    }
    writer.finish();
  }
  report(state, read, written);
}

void BM_Merge(benchmark::State& state, std::string method) {
  if (!have_models(state)) return;
  Progress::set_global_enabled(false);
  ModelCache cache;
  MergePlan plan = build_plan(config_for(method), cache);
  Merger merger;
  MergeStats st;
  for (auto _ : state) {
    FolderOptions fo;
    fo.replace_existing = true;
    st = merger.write_folder(plan, bench_dir() / ("out_" + method), fo);
  }
  fs::remove_all(bench_dir() / ("out_" + method));
  report(state, st.bytes_read, st.bytes_written);
}

void BM_InMemory(benchmark::State& state, std::string method) {
  if (!have_models(state)) return;
  ModelCache cache;
  MergePlan plan = build_plan(config_for(method), cache);
  Merger merger;
  MergedBuffers buf(DType::BF16);
  buf.prepare(plan);
  for (auto _ : state) merger.merge_into(plan, buf);
  report(state, plan.input_bytes(), plan.output_bytes());
}

BENCHMARK(BM_StreamingBound)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_Merge, linear, std::string("linear"))->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_Merge, ties, std::string("ties"))->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_Merge, dare_ties, std::string("dare_ties"))->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_InMemory, dare_ties, std::string("dare_ties"))->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace evomerge

BENCHMARK_MAIN();
