// The bundled models scored on the bundled tasks must reproduce the PyTorch reference: the same greedy
// outputs and the same per-item correctness (examples/models/*/reference.json, written by
// tools/fixtures/reference.py from the bf16 weights upcast to f32, f32 compute, the same prompts,
// stop strings, token budget and last-number rule).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "eval/scorer.h"
#include "infer/engine.h"
#include "io/files.h"
#include "tokenize/tokenizer.h"

namespace evomerge::eval {
namespace {

namespace fs = std::filesystem;

const fs::path kRoot = EVOMERGE_SOURCE_DIR;

TEST(Reference, BundledModelsMatchPyTorchOnBundledTasks) {
  const fs::path models = kRoot / "examples" / "models";
  const fs::path tasks = kRoot / "examples" / "tasks";
  if (!fs::exists(models / "base" / "reference.json") || !fs::exists(tasks / "ja_math.yaml"))
    GTEST_SKIP() << "bundled fixtures (examples/models, examples/tasks) are not present";
  size_t compared = 0;
  for (const char* name : {"base", "math_en", "ja_cmp"}) {
    const fs::path dir = models / name;
    if (!fs::exists(dir / "reference.json")) continue;
    auto ref = nlohmann::json::parse(read_text_file(dir / "reference.json"));
    if (!ref.contains("tasks")) continue;
    Tokenizer tok = Tokenizer::load(dir);
    EngineOptions eo;
    auto weights = open_folder_weights(dir.string());
    if (tok.vocab_size() < weights->config().vocab_size) eo.score_vocab = tok.vocab_size();
    Engine engine(weights, eo);
    Candidate cand{&engine, &tok, {}, {}};
    for (const auto& [task, splits] : ref["tasks"].items()) {
      const fs::path yaml = tasks / (task + ".yaml");
      ASSERT_TRUE(fs::exists(yaml)) << yaml;
      for (const auto& [split, r] : splits.items()) {
        Scorer scorer({{yaml, 1.0}}, split);
        ASSERT_EQ(scorer.split_size(0), r["n"].get<size_t>()) << name << " " << task << " " << split;
        ScoreOptions o;
        o.micro_batch = 256;
        TaskScore s = scorer.score_task(0, cand, scorer.all_items(0), o);
        const auto& correct = r["correct"];
        const auto& outputs = r["outputs"];
        size_t diff_correct = 0, diff_output = 0;
        std::string first_diff;
        for (size_t i = 0; i < s.items.size(); ++i) {
          bool c = correct[i].get<int>() != 0;
          if (c != s.items[i].correct) ++diff_correct;
          if (outputs[i].get<std::string>() != s.items[i].output) {
            if (diff_output++ == 0)
              first_diff = fmt::format("item {}: ours '{}' vs reference '{}'", i, s.items[i].output, outputs[i].get<std::string>());
          }
        }
        EXPECT_EQ(diff_output, 0u) << name << " " << task << "/" << split << ": " << diff_output << " outputs differ; " << first_diff;
        EXPECT_EQ(diff_correct, 0u) << name << " " << task << "/" << split;
        EXPECT_DOUBLE_EQ(s.score, r["accuracy"].get<double>()) << name << " " << task << "/" << split;
        ++compared;
      }
    }
  }
  EXPECT_GT(compared, 0u);
}

}  // namespace
}  // namespace evomerge::eval
