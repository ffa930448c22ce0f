// Task definitions: lm-eval-harness-shaped YAML files whose data are local JSONL files, rendered into
// items ready to score. The format (and its differences from lm-eval-harness) is in docs/tasks.md.
//
//   task: ja_math
//   dataset_path: json
//   dataset_kwargs: {data_files: {opt: ja_math.opt.jsonl, test: ja_math.test.jsonl}}  # relative to the YAML
//   test_split: test
//   output_type: generate_until          # loglikelihood | multiple_choice | loglikelihood_rolling
//   doc_to_text: "問題: {{question}}\n答え:"
//   doc_to_target: "{{answer}}"
//   generation_kwargs: {until: ["\n"], max_gen_toks: 16}
//   metric_list: [{metric: exact_match}]
//
// Everything is validated at load: unknown keys, bad values, templates naming missing fields (with the
// JSONL file and line), JSONL lines that are not JSON objects, empty splits.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace evomerge::eval {

enum class OutputType { GenerateUntil, Loglikelihood, MultipleChoice, LoglikelihoodRolling };
std::string_view output_type_name(OutputType type);

enum class MetricKind {
  ExactMatch,      // generate_until: extracted answer == target (numbers compared as numbers)
  Acc,             // multiple_choice: argmax log-likelihood is gold; loglikelihood: continuation is greedy
  AccNorm,         // multiple_choice: argmax of log-likelihood / UTF-8 bytes of the choice text
  Perplexity,      // token perplexity: exp(-sum logprob / sum tokens) (loglikelihood*, generate: n/a)
  WordPerplexity,  // loglikelihood_rolling: exp(-sum logprob / sum words)
  BytePerplexity,  // loglikelihood_rolling: exp(-sum logprob / sum UTF-8 bytes)
  BitsPerByte,     // loglikelihood_rolling: -sum logprob / sum bytes / ln 2
};
std::string_view metric_name(MetricKind kind);
bool higher_is_better(MetricKind kind);

struct MetricSpec {
  MetricKind kind = MetricKind::ExactMatch;
  // exact_match options (lm-eval names): applied to both the extracted answer and the target when
  // they are compared as strings.
  bool ignore_case = false;
  bool ignore_punctuation = false;
  std::vector<std::string> regexes_to_ignore;
};

// One step of the answer-extraction pipeline (lm-eval's filter_list shape, one pipeline).
struct FilterStep {
  enum class Kind { Regex, LastNumber, TakeFirst, Lowercase, Uppercase, RemoveWhitespace, Strip };
  Kind kind = Kind::LastNumber;
  std::string pattern;                 // Regex: Python-syntax regex (run with Oniguruma, UTF-8)
  int group_select = 0;                // Regex: which match (0 first, -1 last), as lm-eval
  std::string fallback = "[invalid]";  // Regex / LastNumber: the answer when nothing matches
};

// evomerge extension: the generated text must be written in one of these Unicode scripts.
struct ScriptRequirement {
  std::vector<std::string> scripts;  // Unicode script names, e.g. Han, Hiragana, Katakana
  double threshold = 0.5;            // minimum share of letters in those scripts
  int min_letters = 1;               // fewer letters than this: the check fails
};

// evomerge extension: score with an outside command instead of the engine.
struct ExternalEvaluator {
  std::vector<std::string> command;  // argv; the model folder path is appended as the last argument
  double timeout_s = 600;
  std::string score_key = "score";   // which number of the printed JSON object is the score
};

struct TaskSpec {
  std::filesystem::path file;  // the YAML file (messages name it)
  std::string name;
  std::string description;     // prepended to every context (lm-eval `description`)
  OutputType output_type = OutputType::GenerateUntil;

  // Data: split name -> JSONL file (absolute, resolved against the YAML's folder) ...
  std::map<std::string, std::filesystem::path> data_files;
  // ... and/or split name -> [begin, end) index range of the single data file (splits_by_index).
  std::map<std::string, std::pair<size_t, size_t>> splits_by_index;

  std::string test_split;     // the default split to score
  std::string fewshot_split;  // where few-shot examples come from
  int num_fewshot = 0;
  std::string fewshot_sampler = "first_n";  // first_n | random (seeded shuffle of the split)
  uint64_t fewshot_seed = 1234;

  std::string doc_to_text;
  std::string doc_to_target;
  std::optional<std::string> doc_to_choice_template;  // a template or field naming a list
  std::vector<std::string> doc_to_choice_list;         // or a literal YAML list
  std::string target_delimiter = " ";
  std::string fewshot_delimiter = "\n\n";

  std::vector<std::string> until;  // generation stop strings
  int max_gen_toks = 256;

  std::vector<MetricSpec> metrics;  // the first is the primary score
  std::vector<FilterStep> filter;   // empty: no extraction (the whole output is the answer)

  std::optional<ScriptRequirement> answer_script;
  bool chat_template = false;
  std::optional<ExternalEvaluator> external;
};

// Parses a task YAML's text; `file` is used for messages and to resolve data paths. Does not read data.
TaskSpec parse_task_spec(std::string_view yaml_text, const std::filesystem::path& file);

// One item, rendered.
struct TaskItem {
  size_t index = 0;                // position in its split
  size_t line = 0;                 // 1-based line of the doc in its JSONL file
  std::string context;             // description + few-shot examples + doc_to_text (before chat wrapping)
  std::string query;               // doc_to_text alone (the user turn when a chat template is used)
  std::string fewshot_prefix;      // description + few-shot examples (context = fewshot_prefix + query)
  std::string target;              // doc_to_target (generate_until / loglikelihood); rolling: the text
  std::vector<std::string> choices;  // multiple_choice
  int gold = -1;                     // multiple_choice: index of the right choice
};

class Task {
 public:
  // Reads the YAML and its data files; renders and checks every item of every split.
  static Task load(const std::filesystem::path& yaml_file);
  // The same from an already parsed spec (its data files are read).
  static Task from_spec(TaskSpec spec);

  const TaskSpec& spec() const { return spec_; }
  const std::string& name() const { return spec_.name; }
  std::vector<std::string> split_names() const;
  bool has_split(std::string_view split) const;
  // Throws Error naming the task file and the known splits when `split` is unknown.
  size_t split_size(std::string_view split) const;
  const TaskItem& item(std::string_view split, size_t index) const;
  const nlohmann::json& doc(std::string_view split, size_t index) const;

 private:
  struct Split {
    std::filesystem::path file;
    std::vector<size_t> lines;
    std::vector<nlohmann::json> docs;
    std::vector<TaskItem> items;
  };
  const Split& split(std::string_view name) const;

  TaskSpec spec_;
  std::map<std::string, Split, std::less<>> splits_;
};

}  // namespace evomerge::eval
