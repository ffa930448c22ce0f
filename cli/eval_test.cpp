// End-to-end: `evomerge eval` through the real binary on the bundled large base model and small
// generated task files: the printed / --json / --output results agree with the library scorer, a
// merge config scored in memory equals the same merge written by `evomerge merge` and scored from
// disk, and bad task files or failing external evaluators give status 1.
#include <gtest/gtest.h>

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "eval/scorer.h"
#include "infer/engine.h"
#include "io/test_support.h"
#include "test_support.h"
#include "tokenize/tokenizer.h"

namespace evomerge {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using testing::read_bytes;
using testing::TempDir;
using testing::write_bytes;

using testing::CliResult;
using testing::evomerge_cli;

const fs::path kLarge = fs::path(EVOMERGE_SOURCE_DIR) / "examples" / "models" / "large";

std::string kanji(int n) {
  static const char* d[] = {"〇", "一", "二", "三", "四", "五", "六", "七", "八", "九"};
  int t = n / 10, o = n % 10;
  return (t == 0 ? "" : t == 1 ? std::string("十") : std::string(d[t]) + "十") + (o ? d[o] : "");
}

class EvalCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(kLarge / "base" / "model.safetensors"))
      GTEST_SKIP() << "examples/models/large not present";
    std::string data;
    for (int i = 0; i < 12; ++i) {
      int a = 12 + (i * 37) % 80, b = 10 + (i * 53) % 80;
      data += fmt::format("{{\"question\": \"{} たす {} は?\", \"answer\": \"{}\"}}\n", kanji(a),
                          kanji(b), a + b);
    }
    write_bytes(dir_ / "m.jsonl", data);
    write_bytes(dir_ / "math.yaml",
                "task: math\ndataset_path: json\ndataset_kwargs: {data_files: {test: m.jsonl}}\n"
                "output_type: generate_until\ndoc_to_text: \"問題: "
                "{{question}}\\n答え:\"\ndoc_to_target: \"{{answer}}\"\n"
                "generation_kwargs: {until: [\"\\n\"], max_gen_toks: 16}\n");
  }
  TempDir dir_{"evalcli"};
};

TEST_F(EvalCli, FolderScoreAgreesWithTheLibrary) {
  CliResult r = evomerge_cli(
      fmt::format("-q eval '{}' --task '{}' --json --output '{}'", (kLarge / "base").string(),
                  (dir_ / "math.yaml").string(), (dir_ / "items.jsonl").string()),
      dir_);
  ASSERT_EQ(r.status, 0) << r.err;
  json j = json::parse(r.out);
  ASSERT_EQ(j["tasks"].size(), 1u);
  EXPECT_EQ(j["tasks"][0]["n"], 12);
  EXPECT_EQ(j["tasks"][0]["metric"], "exact_match");
  // The library on the same folder and items.
  Tokenizer tok = Tokenizer::load(kLarge / "base");
  Engine engine(open_folder_weights((kLarge / "base").string()));
  eval::Scorer scorer({{dir_ / "math.yaml", 1.0}});
  eval::TaskScore s = scorer.score_task(0, {&engine, &tok, {}, {}}, scorer.all_items(0));
  EXPECT_DOUBLE_EQ(j["tasks"][0]["score"].get<double>(), s.score);
  EXPECT_DOUBLE_EQ(j["tasks"][0]["ci95"][0].get<double>(), s.ci.lo);
  // Per-item JSONL: one line per item with the documented fields, the same outputs.
  std::string lines = read_bytes(dir_ / "items.jsonl");
  size_t n = 0, correct = 0;
  size_t pos = 0;
  while (pos < lines.size()) {
    size_t end = lines.find('\n', pos);
    json it = json::parse(lines.substr(pos, end - pos));
    for (const char* k :
         {"task", "split", "index", "prompt", "output", "extracted", "target", "correct"})
      EXPECT_TRUE(it.contains(k)) << k;
    EXPECT_EQ(it["output"], s.items[n].output);
    correct += it["correct"].get<bool>();
    ++n;
    pos = end + 1;
  }
  EXPECT_EQ(n, 12u);
  EXPECT_DOUBLE_EQ(correct / 12.0, s.score);
  // The text report names the task and prints the interval.
  CliResult t = evomerge_cli(fmt::format("-q eval '{}' --task '{}'", (kLarge / "base").string(),
                                         (dir_ / "math.yaml").string()),
                             dir_);
  ASSERT_EQ(t.status, 0) << t.err;
  EXPECT_NE(t.out.find("math"), std::string::npos);
  EXPECT_NE(t.out.find("95% CI"), std::string::npos);
}

TEST_F(EvalCli, MergeConfigInMemoryEqualsTheMergedFolder) {
  write_bytes(dir_ / "ta.yaml",
              fmt::format("merge_method: task_arithmetic\nbase_model: {0}/base\nmodels:\n"
                          "  - model: {0}/math_en\n    parameters: {{weight: 1.0}}\n"
                          "  - model: {0}/ja_cmp\n    parameters: {{weight: 0.25}}\n"
                          "dtype: bfloat16\n",
                          kLarge.string()));
  CliResult mem = evomerge_cli(
      fmt::format("-q eval '{}' --task '{}' --json --output '{}'", (dir_ / "ta.yaml").string(),
                  (dir_ / "math.yaml").string(), (dir_ / "mem.jsonl").string()),
      dir_);
  ASSERT_EQ(mem.status, 0) << mem.err;
  CliResult merged = evomerge_cli(
      fmt::format("-q merge '{}' '{}'", (dir_ / "ta.yaml").string(), (dir_ / "merged").string()),
      dir_);
  ASSERT_EQ(merged.status, 0) << merged.err;
  CliResult disk = evomerge_cli(
      fmt::format("-q eval '{}' --task '{}' --json --output '{}'", (dir_ / "merged").string(),
                  (dir_ / "math.yaml").string(), (dir_ / "disk.jsonl").string()),
      dir_);
  ASSERT_EQ(disk.status, 0) << disk.err;
  EXPECT_EQ(json::parse(mem.out)["tasks"][0]["score"], json::parse(disk.out)["tasks"][0]["score"]);
  EXPECT_EQ(read_bytes(dir_ / "mem.jsonl"),
            read_bytes(dir_ / "disk.jsonl"));  // same outputs item by item
}

TEST_F(EvalCli, BadInputGivesStatusOne) {
  write_bytes(
      dir_ / "bad.yaml",
      "task: x\ndataset_path: json\ndataset_kwargs: {data_files: {test: m.jsonl}}\n"
      "output_type: generate_until\ndoc_to_text: \"{{question}}\"\ndoc_to_target: \"{{answer}}\"\n"
      "num_shots: 3\n");
  CliResult r = evomerge_cli(fmt::format("-q eval '{}' --task '{}'", (kLarge / "base").string(),
                                         (dir_ / "bad.yaml").string()),
                             dir_);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("bad.yaml"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("bad.yaml:7: num_shots: unknown key"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  // A failing external evaluator: reported as FAILED, no total, status 1.
  write_bytes(dir_ / "ext.yaml",
              "task: ext\nexternal: {command: [sh, -c, \"echo not json\"], timeout_s: 30}\n");
  CliResult e =
      evomerge_cli(fmt::format("-q eval '{}' --task '{}' --task '{}'", (kLarge / "base").string(),
                               (dir_ / "ext.yaml").string(), (dir_ / "math.yaml").string()),
                   dir_);
  EXPECT_EQ(e.status, 1);
  EXPECT_NE(e.out.find("FAILED"), std::string::npos) << e.out;
  EXPECT_NE(e.out.find("no JSON object"), std::string::npos) << e.out;
  EXPECT_NE(e.out.find("total: none"), std::string::npos) << e.out;
}

}  // namespace
}  // namespace evomerge
