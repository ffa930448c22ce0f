// What the scorer costs on top of the inference engine. BM_EngineGenerate is the bound: the same
// greedy requests (64 ja_math-style prompts, 16 new tokens, stop at "\n") sent straight to
// Engine::generate; BM_ScorerGenerate scores the same items through eval::Scorer (tokenising,
// extraction, script check, aggregation included). Model: examples/models/large/base (6.7M params,
// bf16). Threads: EVOMERGE_BENCH_THREADS (default 2).
// Run: build/bench/bench_eval --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "eval/scorer.h"
#include "infer/engine.h"
#include "tokenize/tokenizer.h"

namespace evomerge {
namespace {

namespace fs = std::filesystem;

constexpr int kItems = 64;

int bench_threads() {
  const char* t = std::getenv("EVOMERGE_BENCH_THREADS");
  return t ? std::max(1, std::atoi(t)) : 2;
}

const fs::path kModel = fs::path(EVOMERGE_SOURCE_DIR) / "examples/models/large/base";

std::string kanji(int n) {
  static const char* d[] = {"〇", "一", "二", "三", "四", "五", "六", "七", "八", "九"};
  int t = n / 10, o = n % 10;
  std::string s = t == 0 ? "" : (t == 1 ? "十" : std::string(d[t]) + "十");
  return n == 0 ? "〇" : s + (o ? d[o] : "");
}

// A task file with kItems ja_math-style items, written once per process.
const fs::path& task_file() {
  static const fs::path yaml = [] {
    fs::path dir = fs::temp_directory_path() / fmt::format("evomerge_bench_eval_{}", ::getpid());
    fs::create_directories(dir);
    std::ofstream data(dir / "t.jsonl");
    for (int i = 0; i < kItems; ++i) {
      int a = 11 + (i * 37) % 88, b = 10 + (i * 53) % 89;
      data << fmt::format("{{\"question\": \"{} たす {} は?\", \"answer\": \"{}\"}}\n", kanji(a), kanji(b), a + b);
    }
    std::ofstream(dir / "t.yaml") << "task: bench\ndataset_path: json\ndataset_kwargs: {data_files: {test: t.jsonl}}\n"
                                     "output_type: generate_until\ndoc_to_text: \"問題: {{question}}\\n答え:\"\n"
                                     "doc_to_target: \"{{answer}}\"\ngeneration_kwargs: {until: [\"\\n\"], max_gen_toks: 16}\n"
                                     "answer_script: {scripts: [Japanese], threshold: 0.0, min_letters: 0}\n";
    return dir / "t.yaml";
  }();
  return yaml;
}

struct Fixture {
  Tokenizer tok = Tokenizer::load(kModel);
  std::unique_ptr<Engine> engine;
  eval::Scorer scorer{{{task_file(), 1.0}}};
  Fixture() {
    EngineOptions eo;
    eo.threads = bench_threads();
    engine = std::make_unique<Engine>(open_folder_weights(kModel.string()), eo);
  }
};

Fixture& fixture() {
  static Fixture f;
  return f;
}

void BM_EngineGenerate(benchmark::State& state) {
  if (!fs::exists(kModel / "model.safetensors")) return state.SkipWithError("examples/models/large/base missing");
  Fixture& f = fixture();
  std::vector<Engine::GenerateRequest> reqs;
  for (int i = 0; i < kItems; ++i) {
    Engine::GenerateRequest r;
    r.prompt = f.tok.encode(f.scorer.task(0).item("test", i).context);
    r.max_new_tokens = 16;
    r.stop_strings = {"\n"};
    reqs.push_back(std::move(r));
  }
  for (auto _ : state) benchmark::DoNotOptimize(f.engine->generate(reqs, &f.tok));
  state.counters["items/s"] = benchmark::Counter(static_cast<double>(kItems) * state.iterations(), benchmark::Counter::kIsRate);
}

void BM_ScorerGenerate(benchmark::State& state) {
  if (!fs::exists(kModel / "model.safetensors")) return state.SkipWithError("examples/models/large/base missing");
  Fixture& f = fixture();
  eval::ScoreOptions o;
  o.micro_batch = kItems;
  o.keep_text = state.range(0) != 0;
  auto items = f.scorer.all_items(0);
  for (auto _ : state) benchmark::DoNotOptimize(f.scorer.score_task(0, {f.engine.get(), &f.tok, {}, {}}, items, o));
  state.counters["items/s"] = benchmark::Counter(static_cast<double>(kItems) * state.iterations(), benchmark::Counter::kIsRate);
}

BENCHMARK(BM_EngineGenerate)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(3.0);
BENCHMARK(BM_ScorerGenerate)->Arg(0)->Arg(1)->ArgName("keep_text")->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(3.0);

}  // namespace
}  // namespace evomerge

BENCHMARK_MAIN();
