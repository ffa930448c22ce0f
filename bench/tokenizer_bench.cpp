// Tokenizer throughput: Tokenizer::encode on the golden corpus text (tricky strings: CJK, emoji,
// whitespace runs, code; ~20 KB repeated), for the committed Qwen3 (byte-level BPE, NFC, Oniguruma
// Split) and Mistral (SentencePiece-style BPE) tokenizers, and the BPE merge loop alone: the heap
// fast path against the plain O(n^2) reference it is tested against. The JS reference on the same
// text: tools/tokenizer-golden/bench.mjs. Results: docs/benchmarks.md, section "Tokenizer".
#include <benchmark/benchmark.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "io/files.h"
#include "tokenize/bpe.h"
#include "tokenize/gzip.h"
#include "tokenize/tokenizer.h"
#include "tokenize/unicode.h"

namespace {

namespace fs = std::filesystem;
using evomerge::Tokenizer;
const fs::path kData = fs::path(EVOMERGE_SOURCE_DIR) / "tests/data/tokenizers";

std::string gunzip(const fs::path& p) { return evomerge::tok::read_gzip_file(p); }

const std::string& corpus_text() {
  static const std::string text = [] {
    auto g = nlohmann::json::parse(evomerge::read_text_file(kData / "golden/qwen3.json"));
    std::string t;
    for (const auto& c : g["cases"]) t += c["text"].get<std::string>() + "\n";
    return t;
  }();
  return text;
}

const Tokenizer& tokenizer(const std::string& name) {
  static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
  auto& t = cache[name];
  if (!t)
    t = std::make_unique<Tokenizer>(Tokenizer::from_json(gunzip(kData / name / "tokenizer.json.gz"),
                                                         evomerge::read_text_file(kData / name / "tokenizer_config.json"), name));
  return *t;
}

void encode_bench(benchmark::State& state, const std::string& name) {
  const Tokenizer& tok = tokenizer(name);
  const std::string& text = corpus_text();
  size_t tokens = 0;
  for (auto _ : state) {
    auto ids = tok.encode(text, false);
    tokens += ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
  state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(tokens), benchmark::Counter::kIsRate);
}

void BM_EncodeQwen3(benchmark::State& s) { encode_bench(s, "qwen3"); }
void BM_EncodeMistralSpm(benchmark::State& s) { encode_bench(s, "mistral-spm"); }
BENCHMARK(BM_EncodeQwen3)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_EncodeMistralSpm)->Unit(benchmark::kMillisecond);

// The merge loop on long words (where the heap matters): byte-level "words" of n characters.
const evomerge::tok::Bpe& qwen_bpe() {
  static evomerge::tok::Bpe b = evomerge::tok::Bpe::from_json(nlohmann::json::parse(gunzip(kData / "qwen3/tokenizer.json.gz"))["model"], "qwen3");
  return b;
}
std::string long_word(int64_t n) {
  const char* syll[] = {"tion", "al", "ing", "re", "st", "qu", "ex", "ph", "ly", "ou"};
  std::string w;
  for (int64_t i = 0; w.size() < static_cast<size_t>(n); ++i) w += syll[(i * 7 + 3) % 10];
  return evomerge::tok::bytes_to_bytelevel(w.substr(0, static_cast<size_t>(n)));
}
void BM_BpeHeap(benchmark::State& state) {
  std::string w = long_word(state.range(0));
  const auto& bpe = qwen_bpe();  // loaded outside the timed loop
  for (auto _ : state) benchmark::DoNotOptimize(bpe.tokenize_uncached(w));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}
void BM_BpeReference(benchmark::State& state) {
  std::string w = long_word(state.range(0));
  const auto& bpe = qwen_bpe();
  for (auto _ : state) benchmark::DoNotOptimize(bpe.tokenize_reference(w));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_BpeHeap)->Arg(8)->Arg(64)->Arg(1024);
BENCHMARK(BM_BpeReference)->Arg(8)->Arg(64)->Arg(1024);

}  // namespace

BENCHMARK_MAIN();
