// The bundled models scored on the bundled tasks must reproduce the PyTorch reference: the same greedy
// outputs and the same per-item correctness (examples/models/*/reference.json, written by
// tools/fixtures/reference.py from the bf16 weights upcast to f32, f32 compute, the same prompts,
// stop strings, token budget and last-number rule).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "eval/scorer.h"
#include "infer/engine.h"
#include "io/files.h"
#include "merge/config.h"
#include "merge/merge.h"
#include "tokenize/tokenizer.h"

namespace evomerge::eval {
namespace {

namespace fs = std::filesystem;

// The repository root; EVOMERGE_FIXTURES_ROOT points the tests at another copy of examples/ (e.g. a
// freshly built fixture family) without touching the checkout.
const fs::path kRoot = [] {
  const char* env = std::getenv("EVOMERGE_FIXTURES_ROOT");
  return fs::path(env && *env ? env : EVOMERGE_SOURCE_DIR);
}();

// Model folders with a reference.json: examples/models/<model>/ and examples/models/<family>/<model>/.
std::vector<fs::path> reference_models() {
  std::vector<fs::path> out;
  const fs::path root = kRoot / "examples" / "models";
  if (!fs::is_directory(root)) return out;
  for (const auto& e : fs::directory_iterator(root)) {
    if (!e.is_directory()) continue;
    if (fs::exists(e.path() / "reference.json")) out.push_back(e.path());
    for (const auto& f : fs::directory_iterator(e.path()))
      if (f.is_directory() && fs::exists(f.path() / "reference.json")) out.push_back(f.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Merge studies: examples/models/merge_study-<task>.json and examples/models/<family>/merge_study-<task>.json.
std::vector<fs::path> merge_studies() {
  std::vector<fs::path> out;
  const fs::path root = kRoot / "examples" / "models";
  if (!fs::is_directory(root)) return out;
  auto scan = [&](const fs::path& dir) {
    for (const auto& f : fs::directory_iterator(dir)) {
      const std::string n = f.path().filename().string();
      if (f.is_regular_file() && n.rfind("merge_study-", 0) == 0 && f.path().extension() == ".json") out.push_back(f.path());
    }
  };
  scan(root);
  for (const auto& e : fs::directory_iterator(root))
    if (e.is_directory()) scan(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

// The bundled models whose reference.json holds per-item task results.
std::vector<fs::path> models_with_task_references() {
  std::vector<fs::path> dirs;
  for (const auto& d : reference_models()) {
    auto ref = nlohmann::json::parse(read_text_file(d / "reference.json"));
    if (ref.contains("tasks") && !ref["tasks"].empty()) dirs.push_back(d);
  }
  return dirs;
}

TEST(Reference, BundledModelsMatchPyTorchOnBundledTasks) {
  const fs::path tasks = kRoot / "examples" / "tasks";
  const std::vector<fs::path> dirs = models_with_task_references();
  if (dirs.empty() || !fs::exists(tasks / "ja_math.yaml"))
    GTEST_SKIP() << "no bundled model with per-item task references, or no examples/tasks";
  size_t compared = 0;
  for (const fs::path& dir : dirs) {
    const std::string name = dir.filename().string();
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

// EngineOptions::precision = bf16 on the bundled models and tasks: how far rounding the weight
// products' activations to bf16 moves the logits from the exact mode (every position of every
// task prompt), and how many greedy outputs and verdicts change (docs/benchmarks.md records
// both). The bounds are loose guards (a bf16 rounding moves a logit by ~2^-9 of the terms it
// sums); the recorded counts are the finding. The first kItems items of each split, and the
// logits of the first kLogitPrompts prompts, keep it to seconds (docs/benchmarks.md has the
// counts over every item: kItems = 0).
TEST(Reference, Bf16PrecisionOnTheBundledModels) {
  constexpr size_t kItems = 100, kLogitPrompts = 32;
  const fs::path tasks = kRoot / "examples" / "tasks";
  const std::vector<fs::path> dirs = models_with_task_references();
  if (dirs.empty() || !fs::exists(tasks / "ja_math.yaml"))
    GTEST_SKIP() << "no bundled model with per-item task references, or no examples/tasks";
  float max_diff = 0;
  size_t items = 0, outputs_changed = 0, verdicts_changed = 0;
  for (const fs::path& dir : dirs) {
    auto ref = nlohmann::json::parse(read_text_file(dir / "reference.json"));
    Tokenizer tok = Tokenizer::load(dir);
    auto weights = open_folder_weights(dir.string());
    EngineOptions exact_options;
    if (tok.vocab_size() < weights->config().vocab_size)
      exact_options.score_vocab = tok.vocab_size();
    EngineOptions bf16_options = exact_options;
    bf16_options.precision = Precision::Bf16;
    Engine exact(weights, exact_options), bf16(weights, bf16_options);
    for (const auto& [task, splits] : ref["tasks"].items()) {
      for (const auto& [split, r] : splits.items()) {
        Scorer scorer({{tasks / (task + ".yaml"), 1.0}}, split);
        ScoreOptions o;
        o.micro_batch = 256;
        const auto subset = scorer.all_items(0, kItems);
        const TaskScore a = scorer.score_task(0, {&exact, &tok, {}, {}}, subset, o);
        const TaskScore b = scorer.score_task(0, {&bf16, &tok, {}, {}}, subset, o);
        ASSERT_EQ(a.items.size(), b.items.size());
        std::vector<std::vector<int32_t>> prompts;
        for (size_t i = 0; i < a.items.size(); ++i) {
          outputs_changed += a.items[i].output != b.items[i].output;
          verdicts_changed += a.items[i].correct != b.items[i].correct;
          if (i < kLogitPrompts) prompts.push_back(tok.encode(a.items[i].prompt));
        }
        items += a.items.size();
        const auto la = exact.forward_logits(prompts), lb = bf16.forward_logits(prompts);
        for (size_t i = 0; i < la.size(); ++i)
          for (size_t j = 0; j < la[i].size(); ++j)
            max_diff = std::max(max_diff, std::fabs(la[i][j] - lb[i][j]));
      }
    }
  }
  fmt::print(
      "bf16 vs exact on the bundled models: max |logit diff| {:.3g}; of {} task items, {} "
      "greedy outputs and {} verdicts changed\n",
      max_diff, items, outputs_changed, verdicts_changed);
  RecordProperty("max_logit_diff", fmt::format("{:.3g}", max_diff));
  RecordProperty("outputs_changed", static_cast<int>(outputs_changed));
  EXPECT_GT(max_diff, 1e-4f);  // the rounding happened
  EXPECT_LT(max_diff, 0.5f);
  EXPECT_LE(verdicts_changed * 10, items);  // at most 10% of the verdicts
}

}  // namespace
}  // namespace evomerge::eval

namespace evomerge::eval {
namespace {

// Each fixture family's merge studies (tools/fixtures/merge.py, PyTorch) record per-item
// correctness on <task>/test for the parents and for its best task-arithmetic merge (rounded to
// bf16, as a stored merge would be). Our engine on the folders, and on the same merge done in
// memory by the merge engine, must agree item by item. The first kItems items keep the test to
// seconds.
TEST(Reference, ParentsAndInMemoryMergeMatchTheMergeStudy) {
  constexpr size_t kItems = 100;
  const auto studies = merge_studies();
  if (studies.empty() || !fs::exists(kRoot / "examples" / "tasks"))
    GTEST_SKIP() << "no merge study or no examples/tasks";
  size_t compared = 0;
  for (const fs::path& study_file : studies) {
    const fs::path fam = study_file.parent_path();
    const std::string task_name =
        study_file.stem().string().substr(std::string("merge_study-").size());
    const fs::path task = kRoot / "examples" / "tasks" / (task_name + ".yaml");
    ASSERT_TRUE(fs::exists(task)) << task;
    Scorer scorer({{task, 1.0}}, "test");
    auto items = scorer.all_items(0, kItems);
    auto study = nlohmann::json::parse(read_text_file(study_file));
    ASSERT_TRUE(study.contains("test")) << study_file;
    auto check = [&](const std::string& what, std::shared_ptr<const WeightSource> src, const Tokenizer& tok,
                     const nlohmann::json& ref) {
      EngineOptions eo;
      if (tok.vocab_size() < src->config().vocab_size) eo.score_vocab = tok.vocab_size();
      Engine engine(std::move(src), eo);
      TaskScore s = scorer.score_task(0, {&engine, &tok, {}, {}}, items);
      ASSERT_EQ(s.items.size(), items.size());
      size_t diff = 0, correct = 0, ref_correct = 0;
      for (size_t i = 0; i < items.size(); ++i) {
        bool r = ref["correct"][i].get<int>() != 0;
        diff += r != s.items[i].correct;
        correct += s.items[i].correct;
        ref_correct += r;
      }
      EXPECT_EQ(diff, 0u) << study_file.string() << " " << what << ": " << correct << " correct vs reference " << ref_correct;
      ++compared;
    };
    Tokenizer tok = Tokenizer::load(fam / "base");
    for (const char* parent : {"base", "math_en", "ja_cmp"})
      if (study["test"].contains(parent)) check(parent, open_folder_weights((fam / parent).string()), tok, study["test"][parent]);
    // The best task-arithmetic merge: theta = base + l0 (math_en - base) + l1 (ja_cmp - base), bf16.
    if (!study["test"].contains("best_task_arithmetic")) continue;
    const auto& best = study["test"]["best_task_arithmetic"];
    const auto lam = best["params"]["lambda"];
    std::string yaml = fmt::format(
        "merge_method: task_arithmetic\nbase_model: {0}/base\nmodels:\n"
        "  - model: {0}/math_en\n    parameters: {{weight: {1}}}\n"
        "  - model: {0}/ja_cmp\n    parameters: {{weight: {2}}}\n"
        "parameters: {{normalize: false}}\ndtype: bfloat16\n",
        fam.string(), lam[0].get<double>(), lam[1].get<double>());
    ModelCache cache;
    MergePlan plan = build_plan(parse_merge_config(yaml, "study.yaml"), cache);
    MergedBuffers buffers(DType::BF16);
    buffers.prepare(plan);
    Merger merger;
    merger.merge_into(plan, buffers);
    check("best_task_arithmetic (in memory)", make_memory_weights(buffers.config(), buffers.views()), tok, best);
  }
  EXPECT_GT(compared, 0u);
}

}  // namespace
}  // namespace evomerge::eval
