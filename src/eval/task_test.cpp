#include "eval/task.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "common/error.h"

namespace evomerge::eval {
namespace {

namespace fs = std::filesystem;

// A scratch folder with task files, removed afterwards.
class TaskFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           fmt::format("evomerge_task_test_{}_{}", ::getpid(),
                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name, std::ios::binary) << text;
    return dir_ / name;
  }
  std::string error_of(const std::string& yaml) {
    try {
      Task::load(write("t.yaml", yaml));
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }
  fs::path dir_;
};

const char* kMath =
    "task: ja_math\n"
    "dataset_path: json\n"
    "dataset_kwargs:\n"
    "  data_files:\n"
    "    opt: m.opt.jsonl\n"
    "    test: m.test.jsonl\n"
    "test_split: test\n"
    "fewshot_split: opt\n"
    "num_fewshot: 0\n"
    "output_type: generate_until\n"
    "doc_to_text: \"問題: {{question}}\\n答え:\"\n"
    "doc_to_target: \"{{answer}}\"\n"
    "generation_kwargs:\n"
    "  until: [\"\\n\"]\n"
    "  max_gen_toks: 16\n"
    "metric_list:\n"
    "  - metric: exact_match\n"
    "answer_script: {scripts: [Han, Hiragana, Katakana], threshold: 0.5}\n";

TEST_F(TaskFiles, LoadsTheDocumentedShape) {
  write("m.opt.jsonl",
        "{\"question\": \"三十七 たす 二十五 は?\", \"answer\": \"62\"}\n{\"question\": \"十 たす "
        "十一 は?\", \"answer\": \"21\"}\n");
  write("m.test.jsonl", "{\"question\": \"九十 たす 九 は?\", \"answer\": \"99\"}\n\n");
  Task t = Task::load(write("t.yaml", kMath));
  EXPECT_EQ(t.name(), "ja_math");
  EXPECT_EQ(t.spec().output_type, OutputType::GenerateUntil);
  EXPECT_EQ(t.split_names(), (std::vector<std::string>{"opt", "test"}));
  EXPECT_EQ(t.split_size("opt"), 2u);
  EXPECT_EQ(t.split_size("test"), 1u);
  EXPECT_EQ(t.item("opt", 0).context, "問題: 三十七 たす 二十五 は?\n答え:");
  EXPECT_EQ(t.item("opt", 1).target, "21");
  EXPECT_EQ(t.item("opt", 1).line, 2u);
  EXPECT_EQ(t.spec().until, std::vector<std::string>{"\n"});
  EXPECT_EQ(t.spec().max_gen_toks, 16);
  ASSERT_TRUE(t.spec().answer_script);
  EXPECT_EQ(t.spec().answer_script->scripts.size(), 3u);
  // Every target is a number: the default extraction is the last number.
  ASSERT_EQ(t.spec().filter.size(), 1u);
  EXPECT_EQ(t.spec().filter[0].kind, FilterStep::Kind::LastNumber);
  EXPECT_THROW(t.split_size("validation"), Error);
}

TEST_F(TaskFiles, FewShotFromANamedSplit) {
  write("m.opt.jsonl",
        "{\"question\": \"A\", \"answer\": \"1\"}\n{\"question\": \"B\", \"answer\": "
        "\"2\"}\n{\"question\": \"C\", \"answer\": \"3\"}\n");
  write("m.test.jsonl", "{\"question\": \"Q\", \"answer\": \"9\"}\n");
  std::string y = kMath;
  y.replace(y.find("num_fewshot: 0"), 14, "num_fewshot: 2");
  Task t = Task::load(write("t.yaml", y));
  EXPECT_EQ(t.item("test", 0).context, "問題: A\n答え: 1\n\n問題: B\n答え: 2\n\n問題: Q\n答え:");
  EXPECT_EQ(t.item("test", 0).query, "問題: Q\n答え:");
  // Shots from the item's own split skip the item itself.
  EXPECT_EQ(t.item("opt", 0).context, "問題: B\n答え: 2\n\n問題: C\n答え: 3\n\n問題: A\n答え:");
}

TEST_F(TaskFiles, SplitsByIndexAndNestedTemplates) {
  std::string data;
  for (int i = 0; i < 5; ++i)
    data += fmt::format(
        "{{\"q\": {{\"text\": \"x{}\"}}, \"c\": [\"no\", \"yes\"], \"label\": {}}}\n", i, i % 2);
  write("all.jsonl", data);
  Task t = Task::load(write("t.yaml",
                            "task: mc\n"
                            "dataset_path: json\n"
                            "dataset_kwargs: {data_files: {all: all.jsonl}}\n"
                            "splits_by_index: {opt: [0, 3], test: [3, 5]}\n"
                            "output_type: multiple_choice\n"
                            "doc_to_text: \"{{ q.text }}? {{c[0]}}/{{c[-1]}}\"\n"
                            "doc_to_target: label\n"
                            "doc_to_choice: \"{{c}}\"\n"));
  EXPECT_EQ(t.spec().test_split, "test");
  EXPECT_EQ(t.split_size("opt"), 3u);
  EXPECT_EQ(t.split_size("test"), 2u);
  EXPECT_EQ(t.split_size("all"), 5u);
  const TaskItem& it = t.item("test", 0);  // doc 3
  EXPECT_EQ(it.context, "x3? no/yes");
  EXPECT_EQ(it.choices, (std::vector<std::string>{"no", "yes"}));
  EXPECT_EQ(it.gold, 1);
  EXPECT_EQ(it.target, "yes");
  EXPECT_EQ(it.line, 4u);
  ASSERT_EQ(t.spec().metrics.size(), 2u);  // acc, acc_norm by default
  EXPECT_EQ(t.spec().metrics[1].kind, MetricKind::AccNorm);
}

TEST_F(TaskFiles, LiteralChoicesAndTextTargets) {
  write("d.jsonl", "{\"p\": \"Is fire hot?\", \"a\": \"yes\"}\n");
  Task t = Task::load(
      write("t.yaml",
            "task: yn\ndataset_path: json\ndataset_kwargs: {data_files: d.jsonl}\n"
            "output_type: multiple_choice\ndoc_to_text: \"{{p}}\"\ndoc_to_target: \"{{a}}\"\n"
            "doc_to_choice: [\"no\", \"yes\"]\n"));
  EXPECT_EQ(t.spec().test_split, "train");
  EXPECT_EQ(t.item("train", 0).gold, 1);
}

TEST_F(TaskFiles, NonNumericTargetsCompareWholeOutputs) {
  write("d.jsonl", "{\"q\": \"Capital of Japan?\", \"a\": \"Tokyo\"}\n");
  Task t = Task::load(
      write("t.yaml",
            "task: cap\ndataset_path: json\ndataset_kwargs: {data_files: {test: d.jsonl}}\n"
            "output_type: generate_until\ndoc_to_text: \"{{q}}\"\ndoc_to_target: \"{{a}}\"\n"));
  ASSERT_EQ(t.spec().filter.size(), 1u);
  EXPECT_EQ(t.spec().filter[0].kind, FilterStep::Kind::Strip);
}

TEST_F(TaskFiles, BadInputIsNamed) {
  write("m.opt.jsonl", "{\"question\": \"A\", \"answer\": \"1\"}\n");
  write("m.test.jsonl", "{\"question\": \"Q\", \"answer\": \"9\"}\n");
  auto has = [](const std::string& msg, std::initializer_list<const char*> parts) {
    for (const char* p : parts)
      if (msg.find(p) == std::string::npos)
        return ::testing::AssertionFailure() << "'" << p << "' not in: " << msg;
    return ::testing::AssertionSuccess();
  };
  // Unknown key: named with its line.
  EXPECT_TRUE(has(error_of(std::string(kMath) + "temperature: 0.7\n"),
                  {"t.yaml:19: temperature: unknown key (known: task,"}));
  EXPECT_TRUE(
      has(error_of(std::string(kMath) + "generation_kwargs2: 1\n"), {"generation_kwargs2"}));
  // Unknown output type.
  std::string y = kMath;
  y.replace(y.find("generate_until"), 14, "generate_text");
  EXPECT_TRUE(has(error_of(y), {"output_type", "generate_text", "not supported"}));
  // A template naming a missing field: field, template, file and line.
  y = kMath;
  y.replace(y.find("{{answer}}"), 10, "{{solution}}");
  EXPECT_TRUE(has(error_of(y), {"doc_to_target", "'solution'", "m.opt.jsonl:1", "missing"}));
  // Unsupported template syntax.
  y = kMath;
  y.replace(y.find("{{answer}}"), 10, "{{answer | trim}}");
  EXPECT_TRUE(has(error_of(y), {"doc_to_target", "not supported"}));
  // A JSONL line that is not JSON: file and line.
  write("m.test.jsonl", "{\"question\": \"Q\", \"answer\": \"9\"}\n{\"question\": \"R\",\n");
  EXPECT_TRUE(has(error_of(kMath), {"m.test.jsonl:2", "not a JSON line"}));
  write("m.test.jsonl", "[1, 2]\n");
  EXPECT_TRUE(has(error_of(kMath), {"m.test.jsonl:1", "JSON object"}));
  // An empty split.
  write("m.test.jsonl", "\n\n");
  EXPECT_TRUE(has(error_of(kMath), {"split 'test' is empty"}));
  write("m.test.jsonl", "{\"question\": \"Q\", \"answer\": \"9\"}\n");
  // A missing data file.
  y = kMath;
  y.replace(y.find("m.opt.jsonl"), 11, "nope.jsonl");
  EXPECT_TRUE(has(error_of(y), {"nope.jsonl"}));
  // Remote datasets are refused.
  y = kMath;
  y.replace(y.find("dataset_path: json"), 18, "dataset_path: gsm8k");
  EXPECT_TRUE(has(error_of(y), {"dataset_path", "never downloads"}));
  // Python functions.
  y = kMath;
  y.replace(y.find("\"{{answer}}\""), 12, "!function utils.target");
  EXPECT_TRUE(has(error_of(y), {"doc_to_target", "!function"}));
  // Metric that does not fit the output type.
  y = kMath;
  y.replace(y.find("exact_match"), 11, "acc_norm");
  EXPECT_TRUE(has(error_of(y), {"metric_list[0].metric", "does not apply"}));
  // Sampling is refused: we decode greedily.
  y = kMath;
  y.replace(y.find("  max_gen_toks"), 0, "  do_sample: true\n");
  EXPECT_TRUE(has(error_of(y), {"do_sample", "greedily"}));
  // Unknown script, bad threshold.
  y = kMath;
  y.replace(y.find("Katakana"), 8, "Elvish");
  EXPECT_TRUE(has(error_of(y), {"Elvish"}));
  y = kMath;
  y.replace(y.find("threshold: 0.5"), 14, "threshold: 1.5");
  EXPECT_TRUE(has(error_of(y), {"answer_script.threshold", "[0, 1]"}));
  // A bad regex fails at load, not at scoring.
  EXPECT_TRUE(has(error_of(std::string(kMath) + "filter_list:\n  - name: x\n    filter:\n      - "
                                                "function: regex\n        regex_pattern: \"(a\"\n"),
                  {"regex_pattern", "does not compile"}));
  // splits_by_index past the end of the file.
  write("all.jsonl", "{\"question\": \"A\", \"answer\": \"1\"}\n");
  EXPECT_TRUE(has(error_of("task: x\ndataset_path: json\ndataset_kwargs: {data_files: all.jsonl}\n"
                           "splits_by_index: {test: [0, 5]}\noutput_type: generate_until\n"
                           "doc_to_text: \"{{question}}\"\ndoc_to_target: \"{{answer}}\"\n"),
                  {"splits_by_index.test", "exceeds"}));
  // Not YAML at all.
  EXPECT_TRUE(has(error_of("task: [unclosed\n"), {"t.yaml:2: invalid YAML"}));
  // A key given twice: an error naming both lines (yaml-cpp alone would keep the first).
  EXPECT_TRUE(has(error_of(std::string(kMath) + "task: again\n"),
                  {"t.yaml:19: key 'task' appears twice in the same mapping (lines 1 and 19)"}));
  // multiple_choice target that is not a choice.
  write("d.jsonl", "{\"p\": \"x\", \"a\": \"maybe\"}\n");
  EXPECT_TRUE(has(
      error_of("task: yn\ndataset_path: json\ndataset_kwargs: {data_files: d.jsonl}\n"
               "output_type: multiple_choice\ndoc_to_text: \"{{p}}\"\ndoc_to_target: \"{{a}}\"\n"
               "doc_to_choice: [\"no\", \"yes\"]\n"),
      {"'maybe'", "d.jsonl:1"}));
}

// Hostile data files: a line nested 150,000 deep overflowed the stack (exit 139); a 50 MB line took
// 2.2 GB. Both are one error naming the file and line.
// Fuzz findings (fuzz/task_fuzz.cpp): a list or mapping as a key threw yaml-cpp's BadConversion
// naming nothing; text that is not UTF-8 reached JSON (the run store) and threw there.
TEST_F(TaskFiles, KeysThatAreNotStringsAndTextThatIsNotUtf8AreNamed) {
  write("m.opt.jsonl", "{\"question\": \"A\", \"answer\": \"1\"}\n");
  const std::string head =
      "task: m\ndataset_path: json\noutput_type: generate_until\ndoc_to_text: \"{{question}}\"\n"
      "doc_to_target: \"{{answer}}\"\n";
  const auto expect_has = [](const std::string& msg, const std::string& part) {
    EXPECT_NE(msg.find(part), std::string::npos) << "'" << part << "' not in: " << msg;
  };
  expect_has(error_of(head + "dataset_kwargs: {data_files: {opt: m.opt.jsonl}}\n? [a, b]\n: 1\n"),
             "t.yaml:7: (top level): has a key that is not a string");
  expect_has(error_of(head + "dataset_kwargs: {data_files: {[opt]: m.opt.jsonl}}\n"),
             "t.yaml:6: dataset_kwargs.data_files: has a key that is not a string");
  expect_has(error_of(head + "dataset_kwargs: {data_files: {opt: m.opt.jsonl}}\n"
                             "splits_by_index: {{a: 1}: [0, 1]}\n"),
             "t.yaml:7: splits_by_index: has a key that is not a string");
  expect_has(error_of("task: m\xff\n" + head.substr(8) +
                      "dataset_kwargs: {data_files: {opt: m.opt.jsonl}}\n"),
             "t.yaml:1: task: 'm\\xff' is not valid UTF-8 (YAML files are UTF-8)");
  expect_has(error_of(head + "dataset_kwargs: {data_files: {\"o\xc0\xafpt\": m.opt.jsonl}}\n"),
             "t.yaml:6: dataset_kwargs.data_files: key 'o\\xc0\\xafpt' is not valid UTF-8");
  expect_has(error_of(head + "dataset_kwargs: {data_files: {opt: m.opt.jsonl}}\n"
                             "generation_kwargs: {until: [\"\\n\", \"\xfe\"]}\n"),
             "t.yaml:7: generation_kwargs.until[1]: '\\xfe' is not valid UTF-8");
  expect_has(error_of(head + "dataset_kwargs: {data_files: {opt: m.opt.jsonl}}\n"
                             "description: \"Answer \xe2\x82\"\n"),
             "t.yaml:7: description: 'Answer \\xe2\\x82' is not valid UTF-8");
}

TEST_F(TaskFiles, JsonlLinesAreBounded) {
  const std::string task =
      "task: t\ndataset_path: json\ndataset_kwargs: {data_files: {test: d.jsonl}}\n"
      "output_type: generate_until\ndoc_to_text: \"{{q}}\"\ndoc_to_target: \"{{a}}\"\n";
  write("d.jsonl", "{\"q\": \"1\", \"a\": \"2\"}\n{\"q\": " + std::string(150000, '[') +
                       std::string(150000, ']') + "}\n");
  EXPECT_EQ(error_of(task),
            "[eval] " + (dir_ / "d.jsonl").string() + ":2: JSON nested deeper than 128 levels");
  write("d.jsonl", "{\"q\": \"" + std::string(5u << 20, 'x') + "\", \"a\": \"2\"}\n");
  EXPECT_EQ(error_of(task), "[eval] " + (dir_ / "d.jsonl").string() +
                                ":1: line of 5242899 bytes, longer than the 4194304 allowed");
}

// An external scorer with data files and no test_split: the usual default (the split named 'test'),
// not "test_split '' has no data".
TEST_F(TaskFiles, ExternalTaskWithDataPicksItsTestSplit) {
  write("d.jsonl", "{\"q\": \"1\"}\n");
  Task t = Task::load(write("t.yaml",
                            "task: ext\nexternal: {command: [\"true\"]}\ndataset_path: json\n"
                            "dataset_kwargs: {data_files: {opt: d.jsonl, test: d.jsonl}}\n"));
  EXPECT_EQ(t.spec().test_split, "test");
  EXPECT_EQ(error_of("task: ext\nexternal: {command: [\"true\"]}\ndataset_path: json\n"
                     "dataset_kwargs: {data_files: {opt: d.jsonl, dev: d.jsonl}}\n"),
            "[eval] " + (dir_ / "t.yaml").string() +
                ": field 'test_split' is missing and there is no split named 'test'");
}

TEST_F(TaskFiles, ExternalTaskNeedsNoData) {
  Task t = Task::load(write(
      "t.yaml", "task: ext\nexternal: {command: [\"python3\", \"my_eval.py\"], timeout_s: 5}\n"));
  ASSERT_TRUE(t.spec().external);
  EXPECT_EQ(t.spec().external->command, (std::vector<std::string>{"python3", "my_eval.py"}));
  EXPECT_EQ(t.spec().external->timeout_s, 5.0);
  EXPECT_TRUE(t.split_names().empty());
  EXPECT_NE(error_of("task: ext\nexternal: {command: []}\n").find("external.command"),
            std::string::npos);
}

}  // namespace
}  // namespace evomerge::eval
