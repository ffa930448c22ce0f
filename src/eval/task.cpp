#include "eval/task.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <set>

#include "common/error.h"
#include "common/json_limits.h"
#include "common/text.h"
#include "common/yaml.h"
#include "common/yaml_fields.h"
#include "eval/extract.h"
#include "eval/script.h"
#include "eval/template.h"
#include "io/files.h"

namespace evomerge::eval {

namespace fs = std::filesystem;

std::string_view output_type_name(OutputType t) {
  switch (t) {
    case OutputType::GenerateUntil:
      return "generate_until";
    case OutputType::Loglikelihood:
      return "loglikelihood";
    case OutputType::MultipleChoice:
      return "multiple_choice";
    case OutputType::LoglikelihoodRolling:
      return "loglikelihood_rolling";
  }
  return "?";
}

std::string_view metric_name(MetricKind k) {
  switch (k) {
    case MetricKind::ExactMatch:
      return "exact_match";
    case MetricKind::Acc:
      return "acc";
    case MetricKind::AccNorm:
      return "acc_norm";
    case MetricKind::Perplexity:
      return "perplexity";
    case MetricKind::WordPerplexity:
      return "word_perplexity";
    case MetricKind::BytePerplexity:
      return "byte_perplexity";
    case MetricKind::BitsPerByte:
      return "bits_per_byte";
  }
  return "?";
}

bool higher_is_better(MetricKind k) {
  return k == MetricKind::ExactMatch || k == MetricKind::Acc || k == MetricKind::AccNorm;
}

namespace {

constexpr size_t kMaxDataBytes = size_t{256} << 20;  // one JSONL file (MMLU's test split is 7 MB)
// One JSONL record and the records of one file: a 50 MB line used to take 2.2 GB as a JSON DOM.
constexpr size_t kMaxJsonlLineBytes = size_t{4} << 20;
constexpr size_t kMaxJsonlRecords = size_t{1} << 21;
constexpr size_t kMaxTaskBytes = size_t{4} << 20;  // the YAML

// Errors: "[eval] tasks/x.yaml:12: generation_kwargs.until: expected a list of strings". Task
// files come from lm-eval-harness, whose `!function` tag names Python code: refused wherever a
// string is read.
struct Ctx : YamlFields {
  void no_function(const YAML::Node& n, std::string_view key) const {
    if (n.Tag() == "!function")
      bad(n, key,
          "uses '!function' (Python code), which evomerge cannot run; use a {{field}} template");
  }
  std::string str(const YAML::Node& n, std::string_view key) const {
    no_function(n, key);
    return YamlFields::str(n, key);
  }
  std::vector<std::string> strings(const YAML::Node& n, std::string_view key,
                                   bool allow_scalar) const {
    no_function(n, key);
    if (n.IsSequence())
      for (size_t i = 0; i < n.size(); ++i) no_function(n[i], fmt::format("{}[{}]", key, i));
    return YamlFields::strings(n, key, allow_scalar);
  }
};

MetricKind parse_metric_name(const Ctx& c, const YAML::Node& n, std::string_view key) {
  std::string m = c.str(n, key);
  for (MetricKind k :
       {MetricKind::ExactMatch, MetricKind::Acc, MetricKind::AccNorm, MetricKind::Perplexity,
        MetricKind::WordPerplexity, MetricKind::BytePerplexity, MetricKind::BitsPerByte})
    if (metric_name(k) == m) return k;
  c.bad(n, key,
        fmt::format("'{}' is not a supported metric (exact_match, acc, acc_norm, perplexity, "
                    "word_perplexity, "
                    "byte_perplexity, bits_per_byte)",
                    m));
}

bool metric_applies(MetricKind k, OutputType t) {
  switch (t) {
    case OutputType::GenerateUntil:
      return k == MetricKind::ExactMatch;
    case OutputType::MultipleChoice:
      return k == MetricKind::Acc || k == MetricKind::AccNorm;
    case OutputType::Loglikelihood:
      return k == MetricKind::Acc || k == MetricKind::Perplexity;
    case OutputType::LoglikelihoodRolling:
      return k == MetricKind::Perplexity || k == MetricKind::WordPerplexity ||
             k == MetricKind::BytePerplexity || k == MetricKind::BitsPerByte;
  }
  return false;
}

std::vector<MetricKind> default_metrics(OutputType t) {
  switch (t) {
    case OutputType::GenerateUntil:
      return {MetricKind::ExactMatch};
    case OutputType::MultipleChoice:
      return {MetricKind::Acc, MetricKind::AccNorm};
    case OutputType::Loglikelihood:
      return {MetricKind::Acc, MetricKind::Perplexity};
    case OutputType::LoglikelihoodRolling:
      return {MetricKind::Perplexity, MetricKind::WordPerplexity, MetricKind::BytePerplexity,
              MetricKind::BitsPerByte};
  }
  return {};
}

FilterStep parse_filter_step(const Ctx& c, const YAML::Node& n, std::string_view key) {
  c.map(n, key);
  if (!n["function"]) c.bad(n, key, "needs 'function'");
  std::string f = c.str(n["function"], std::string(key) + ".function");
  FilterStep st;
  if (f == "regex") {
    c.only(n, key, {"function", "regex_pattern", "group_select", "fallback"});
    st.kind = FilterStep::Kind::Regex;
    if (!n["regex_pattern"]) c.bad(n, key, "(function regex) needs 'regex_pattern'");
    st.pattern = c.str(n["regex_pattern"], std::string(key) + ".regex_pattern");
    if (n["group_select"])
      st.group_select = static_cast<int>(
          c.integer(n["group_select"], std::string(key) + ".group_select", -1000000, 1000000));
    if (n["fallback"]) st.fallback = c.str(n["fallback"], std::string(key) + ".fallback");
    return st;
  }
  if (f == "last_number") {
    c.only(n, key, {"function", "fallback"});
    st.kind = FilterStep::Kind::LastNumber;
    if (n["fallback"]) st.fallback = c.str(n["fallback"], std::string(key) + ".fallback");
    return st;
  }
  c.only(n, key, {"function"});
  if (f == "take_first")
    st.kind = FilterStep::Kind::TakeFirst;
  else if (f == "lowercase")
    st.kind = FilterStep::Kind::Lowercase;
  else if (f == "uppercase")
    st.kind = FilterStep::Kind::Uppercase;
  else if (f == "remove_whitespace")
    st.kind = FilterStep::Kind::RemoveWhitespace;
  else if (f == "strip")
    st.kind = FilterStep::Kind::Strip;
  else
    c.bad(n["function"], std::string(key) + ".function",
          fmt::format("'{}' is not supported (regex, last_number, take_first, lowercase, "
                      "uppercase, remove_whitespace, "
                      "strip)",
                      f));
  return st;
}

// External evaluator (a command that scores the model itself).
void parse_external(const Ctx& c, const YAML::Node& root, TaskSpec& s) {
  if (auto n = root["external"]) {
    c.map(n, "external");
    c.only(n, "external", {"command", "timeout_s", "score_key"});
    ExternalEvaluator ex;
    if (!n["command"]) c.bad(n, "external", "needs 'command' (a list: program and arguments)");
    ex.command = c.strings(n["command"], "external.command", false);
    if (ex.command.empty() || ex.command[0].empty())
      c.bad(n["command"], "external.command", "must not be empty");
    if (n["timeout_s"]) {
      ex.timeout_s = c.number(n["timeout_s"], "external.timeout_s");
      if (ex.timeout_s <= 0) c.bad(n["timeout_s"], "external.timeout_s", "must be positive");
    }
    if (n["score_key"]) ex.score_key = c.str(n["score_key"], "external.score_key");
    s.external = ex;
  }
}

// output_type (optional with an external evaluator).
void parse_output_type(const Ctx& c, const YAML::Node& root, TaskSpec& s) {
  if (root["output_type"]) {
    std::string t = c.str(root["output_type"], "output_type");
    bool found = false;
    for (OutputType o : {OutputType::GenerateUntil, OutputType::Loglikelihood,
                         OutputType::MultipleChoice, OutputType::LoglikelihoodRolling})
      if (output_type_name(o) == t) s.output_type = o, found = true;
    if (!found)
      c.bad(root["output_type"], "output_type",
            fmt::format("'{}' is not supported (generate_until, loglikelihood, multiple_choice, "
                        "loglikelihood_rolling)",
                        t));
  } else if (!s.external) {
    fail("eval",
         "{}: field 'output_type' is missing (generate_until, loglikelihood, multiple_choice, "
         "loglikelihood_rolling)",
         c.where);
  }
}

// Local JSONL data files and index-range splits.
void parse_data(const Ctx& c, const YAML::Node& root, TaskSpec& s, const fs::path& dir) {
  if (auto n = root["dataset_path"]) {
    std::string p = c.str(n, "dataset_path");
    if (p != "json")
      c.bad(n, "dataset_path",
            fmt::format("'{}' is not read: only local JSONL data is ('dataset_path: json' with "
                        "dataset_kwargs.data_files); evomerge never downloads",
                        p));
  }
  if (auto n = root["dataset_name"]; n && !n.IsNull())
    c.bad(n, "dataset_name", "is not supported with local JSON data");
  if (auto n = root["dataset_kwargs"]) {
    c.map(n, "dataset_kwargs");
    c.only(n, "dataset_kwargs", {"data_files"});
    if (auto d = n["data_files"]) {
      if (d.IsScalar()) {
        s.data_files["train"] = dir / c.str(d, "dataset_kwargs.data_files");
      } else {
        c.map(d, "dataset_kwargs.data_files");
        for (const auto& kv : d) {
          std::string split = c.key_of(kv.first, "dataset_kwargs.data_files");
          std::string key = "dataset_kwargs.data_files." + split;
          if (kv.second.IsSequence()) {
            auto files = c.strings(kv.second, key, false);
            if (files.size() != 1) c.bad(kv.second, key, "must name one file");
            s.data_files[split] = dir / files[0];
          } else {
            s.data_files[split] = dir / c.str(kv.second, key);
          }
        }
      }
    }
  }
  if (auto n = root["splits_by_index"]) {
    c.map(n, "splits_by_index");
    if (s.data_files.size() != 1)
      c.bad(n, "splits_by_index",
            "needs exactly one file in dataset_kwargs.data_files (the ranges index into it)");
    for (const auto& kv : n) {
      std::string split = c.key_of(kv.first, "splits_by_index");
      std::string key = "splits_by_index." + split;
      if (!kv.second.IsSequence() || kv.second.size() != 2)
        c.bad(kv.second, key, "must be [begin, end]");
      auto b = c.integer(kv.second[0], key, 0, 1LL << 40),
           e = c.integer(kv.second[1], key, 0, 1LL << 40);
      if (e <= b) c.bad(kv.second, key, fmt::format("is empty: end {} <= begin {}", e, b));
      if (s.data_files.count(split))
        c.bad(kv.second, key, "names a split that is also a data file");
      s.splits_by_index[split] = {static_cast<size_t>(b), static_cast<size_t>(e)};
    }
  }
  if (!s.external && s.data_files.empty())
    fail("eval",
         "{}: no data: set dataset_kwargs.data_files (JSONL files relative to the task file)",
         c.where);
}

// The test and few-shot splits, each checked to have data, and the few-shot settings.
void parse_splits(const Ctx& c, const YAML::Node& root, TaskSpec& s) {
  auto split_exists = [&](const std::string& n) {
    return s.data_files.count(n) || s.splits_by_index.count(n);
  };
  std::string training, validation;
  for (auto [key, dst] :
       {std::pair{"test_split", &s.test_split}, std::pair{"fewshot_split", &s.fewshot_split},
        std::pair{"training_split", &training}, std::pair{"validation_split", &validation}}) {
    if (auto n = root[key]; n && !n.IsNull()) {
      *dst = c.str(n, key);
      if (!s.external && !split_exists(*dst))
        c.bad(n, key, fmt::format("names split '{}', which has no data", *dst));
    }
  }
  if (s.test_split.empty()) s.test_split = validation;
  // An external scorer with data of its own picks its test split like any task (it used to get ''
  // and a misleading "test_split '' has no data").
  if (s.test_split.empty() &&
      (!s.external || !s.data_files.empty() || !s.splits_by_index.empty())) {
    if (split_exists("test"))
      s.test_split = "test";
    else if (s.data_files.size() + s.splits_by_index.size() == 1)
      s.test_split =
          s.data_files.empty() ? s.splits_by_index.begin()->first : s.data_files.begin()->first;
    else
      fail("eval", "{}: field 'test_split' is missing and there is no split named 'test'", c.where);
  }
  if (root["num_fewshot"])
    s.num_fewshot = static_cast<int>(c.integer(root["num_fewshot"], "num_fewshot", 0, 1000));
  if (s.fewshot_split.empty())
    s.fewshot_split = !training.empty()                                   ? training
                      : !validation.empty() && validation != s.test_split ? validation
                                                                          : s.test_split;
  if (auto n = root["fewshot_config"]) {
    c.map(n, "fewshot_config");
    c.only(n, "fewshot_config", {"sampler", "seed"});
    if (n["sampler"]) {
      s.fewshot_sampler = c.str(n["sampler"], "fewshot_config.sampler");
      if (s.fewshot_sampler == "default") s.fewshot_sampler = "random";
      if (s.fewshot_sampler != "first_n" && s.fewshot_sampler != "random")
        c.bad(n["sampler"], "fewshot_config.sampler", "must be first_n or random");
    }
    if (n["seed"])
      s.fewshot_seed =
          static_cast<uint64_t>(c.integer(n["seed"], "fewshot_config.seed", 0, 1LL << 62));
  }
}

// doc_to_text / doc_to_target / doc_to_choice and the delimiters; which a type needs.
void parse_templates(const Ctx& c, const YAML::Node& root, TaskSpec& s) {
  auto tmpl = [&](const char* key, std::string& dst) {
    if (auto n = root[key]) {
      if (n.IsScalar()) {
        c.no_function(n, key);
        dst = c.utf8(n, key, n.as<std::string>());
        check_template(dst, c.where + ": " + key);
      } else {
        c.bad(n, key, "must be a template string");
      }
    }
  };
  tmpl("doc_to_text", s.doc_to_text);
  tmpl("doc_to_target", s.doc_to_target);
  if (auto n = root["doc_to_choice"]) {
    c.no_function(n, "doc_to_choice");
    if (n.IsSequence()) {
      s.doc_to_choice_list = c.strings(n, "doc_to_choice", false);
      if (s.doc_to_choice_list.empty()) c.bad(n, "doc_to_choice", "must not be empty");
    } else {
      s.doc_to_choice_template = c.str(n, "doc_to_choice");
      check_template(*s.doc_to_choice_template, c.where + ": doc_to_choice");
    }
  }
  if (root["target_delimiter"])
    s.target_delimiter = c.str(root["target_delimiter"], "target_delimiter");
  if (root["fewshot_delimiter"])
    s.fewshot_delimiter = c.str(root["fewshot_delimiter"], "fewshot_delimiter");
  if (!s.external) {
    if (s.output_type != OutputType::LoglikelihoodRolling && !root["doc_to_text"])
      fail("eval", "{}: field 'doc_to_text' is missing", c.where);
    if (s.output_type == OutputType::LoglikelihoodRolling && !root["doc_to_target"] &&
        !root["doc_to_text"])
      fail("eval",
           "{}: loglikelihood_rolling needs 'doc_to_target' (or 'doc_to_text'): the text to score",
           c.where);
    if ((s.output_type == OutputType::GenerateUntil || s.output_type == OutputType::Loglikelihood ||
         s.output_type == OutputType::MultipleChoice) &&
        !root["doc_to_target"])
      fail("eval", "{}: field 'doc_to_target' is missing", c.where);
    if (s.output_type == OutputType::MultipleChoice && !root["doc_to_choice"])
      fail("eval", "{}: output_type multiple_choice needs 'doc_to_choice'", c.where);
  }
}

// Greedy generation settings and stop strings.
void parse_generation(const Ctx& c, const YAML::Node& root, TaskSpec& s) {
  if (s.num_fewshot > 0) s.until = {s.fewshot_delimiter};  // lm-eval's default stop
  if (auto n = root["generation_kwargs"]) {
    c.map(n, "generation_kwargs");
    c.only(n, "generation_kwargs", {"until", "max_gen_toks", "do_sample", "temperature"});
    if (n["until"]) s.until = c.strings(n["until"], "generation_kwargs.until", true);
    if (n["max_gen_toks"])
      s.max_gen_toks = static_cast<int>(
          c.integer(n["max_gen_toks"], "generation_kwargs.max_gen_toks", 1, 1 << 20));
    if (n["do_sample"] && c.boolean(n["do_sample"], "generation_kwargs.do_sample"))
      c.bad(n["do_sample"], "generation_kwargs.do_sample",
            "must be false: evomerge decodes greedily");
    if (n["temperature"] && c.number(n["temperature"], "generation_kwargs.temperature") != 0.0)
      c.bad(n["temperature"], "generation_kwargs.temperature",
            "must be 0: evomerge decodes greedily");
    if (s.output_type != OutputType::GenerateUntil && !s.external)
      c.bad(n, "generation_kwargs", "only applies to output_type generate_until");
  }
  for (const auto& u : s.until)
    if (u.empty())
      c.bad(root["generation_kwargs"], "generation_kwargs.until",
            "must not contain an empty string");
}

// metric_list, else the output type's default metrics.
void parse_metrics(const Ctx& c, const YAML::Node& root, TaskSpec& s) {
  if (auto n = root["metric_list"]) {
    if (!n.IsSequence() || n.size() == 0) c.bad(n, "metric_list", "must be a non-empty list");
    for (size_t i = 0; i < n.size(); ++i) {
      const auto& m = n[i];
      std::string key = fmt::format("metric_list[{}]", i);
      c.map(m, key);
      c.only(m, key,
             {"metric", "aggregation", "higher_is_better", "ignore_case", "ignore_punctuation",
              "regexes_to_ignore"});
      if (!m["metric"]) c.bad(m, key, "needs 'metric'");
      MetricSpec ms;
      ms.kind = parse_metric_name(c, m["metric"], key + ".metric");
      if (!metric_applies(ms.kind, s.output_type))
        c.bad(m["metric"], key + ".metric",
              fmt::format("'{}' does not apply to output_type {}", metric_name(ms.kind),
                          output_type_name(s.output_type)));
      if (m["aggregation"]) {
        std::string a = c.str(m["aggregation"], key + ".aggregation");
        std::string want = ms.kind == MetricKind::ExactMatch || ms.kind == MetricKind::Acc ||
                                   ms.kind == MetricKind::AccNorm
                               ? "mean"
                               : std::string(metric_name(ms.kind));
        if (a != want && !(a == "perplexity" && ms.kind == MetricKind::Perplexity))
          c.bad(m["aggregation"], key + ".aggregation",
                fmt::format("must be '{}' for {}", want, metric_name(ms.kind)));
      }
      if (m["higher_is_better"] &&
          c.boolean(m["higher_is_better"], key + ".higher_is_better") != higher_is_better(ms.kind))
        c.bad(m["higher_is_better"], key + ".higher_is_better",
              fmt::format("contradicts metric {}", metric_name(ms.kind)));
      if (m["ignore_case"]) ms.ignore_case = c.boolean(m["ignore_case"], key + ".ignore_case");
      if (m["ignore_punctuation"])
        ms.ignore_punctuation = c.boolean(m["ignore_punctuation"], key + ".ignore_punctuation");
      if (m["regexes_to_ignore"]) {
        ms.regexes_to_ignore = c.strings(m["regexes_to_ignore"], key + ".regexes_to_ignore", false);
        for (const auto& r : ms.regexes_to_ignore)
          regex_extract("", r, 0, "");  // compiles or throws
      }
      s.metrics.push_back(ms);
    }
  } else if (!s.external) {
    for (MetricKind k : default_metrics(s.output_type)) {
      MetricSpec ms;
      ms.kind = k;
      s.metrics.push_back(ms);
    }
  }
}

// filter_list (one pipeline) and answer_script.
void parse_answer_extraction(const Ctx& c, const YAML::Node& root, TaskSpec& s) {
  if (auto n = root["filter_list"]) {
    if (!n.IsSequence() || n.size() == 0) c.bad(n, "filter_list", "must be a non-empty list");
    if (n.size() > 1)
      c.bad(n, "filter_list",
            "has several pipelines; evomerge scores with one (keep the one you report)");
    const auto& p = n[0];
    c.map(p, "filter_list[0]");
    c.only(p, "filter_list[0]", {"name", "filter"});
    if (!p["filter"] || !p["filter"].IsSequence() || p["filter"].size() == 0)
      c.bad(p, "filter_list[0].filter", "must be a non-empty list of {function: ...}");
    for (size_t i = 0; i < p["filter"].size(); ++i)
      s.filter.push_back(
          parse_filter_step(c, p["filter"][i], fmt::format("filter_list[0].filter[{}]", i)));
    AnswerFilter check(s.filter, c.where);  // regexes compile now, not at scoring time
    if (s.output_type != OutputType::GenerateUntil)
      c.bad(n, "filter_list", "only applies to output_type generate_until");
  }

  if (auto n = root["answer_script"]) {
    c.map(n, "answer_script");
    c.only(n, "answer_script", {"scripts", "threshold", "min_letters"});
    ScriptRequirement r;
    if (!n["scripts"]) c.bad(n, "answer_script", "needs 'scripts' (Unicode script names)");
    r.scripts = c.strings(n["scripts"], "answer_script.scripts", true);
    if (r.scripts.empty()) c.bad(n["scripts"], "answer_script.scripts", "must not be empty");
    resolve_scripts(r.scripts, c.where);
    if (n["threshold"]) {
      r.threshold = c.number(n["threshold"], "answer_script.threshold");
      if (r.threshold < 0 || r.threshold > 1)
        c.bad(n["threshold"], "answer_script.threshold", "must be in [0, 1]");
    }
    if (n["min_letters"])
      r.min_letters =
          static_cast<int>(c.integer(n["min_letters"], "answer_script.min_letters", 0, 1 << 20));
    if (s.output_type != OutputType::GenerateUntil && !s.external)
      c.bad(n, "answer_script", "only applies to output_type generate_until");
    s.answer_script = r;
  }
}

}  // namespace

TaskSpec parse_task_spec(std::string_view yaml_text, const fs::path& file) {
  Ctx c{{"eval", file.string()}};
  // One document, no key twice, nesting bounded (common/yaml.h), as merge configs are read.
  const YAML::Node root = load_yaml_document(yaml_text, c.where, "eval");
  if (!root.IsMap()) fail("eval", "{}: a task file must be a YAML mapping", c.where);
  c.only(root, "",
         {"task",
          "tag",
          "group",
          "description",
          "metadata",
          "dataset_path",
          "dataset_name",
          "dataset_kwargs",
          "training_split",
          "validation_split",
          "test_split",
          "fewshot_split",
          "num_fewshot",
          "fewshot_config",
          "output_type",
          "doc_to_text",
          "doc_to_target",
          "doc_to_choice",
          "target_delimiter",
          "fewshot_delimiter",
          "generation_kwargs",
          "metric_list",
          "filter_list",
          "should_decontaminate",
          "repeats",
          "answer_script",
          "splits_by_index",
          "chat_template",
          "external"});
  TaskSpec s;
  s.file = file;
  const fs::path dir = file.parent_path();
  if (!root["task"]) fail("eval", "{}: field 'task' (the task name) is missing", c.where);
  s.name = c.str(root["task"], "task");
  if (s.name.empty()) c.bad(root["task"], "task", "must not be empty");
  if (root["description"]) s.description = c.str(root["description"], "description");
  if (root["repeats"]) c.integer(root["repeats"], "repeats", 1, 1);  // one greedy answer per item
  if (root["should_decontaminate"]) c.boolean(root["should_decontaminate"], "should_decontaminate");

  parse_external(c, root, s);
  parse_output_type(c, root, s);
  parse_data(c, root, s, dir);
  parse_splits(c, root, s);
  parse_templates(c, root, s);
  parse_generation(c, root, s);
  parse_metrics(c, root, s);
  parse_answer_extraction(c, root, s);
  if (root["chat_template"]) s.chat_template = c.boolean(root["chat_template"], "chat_template");
  return s;
}

// ------------------------------------------------------------------------------------------------
// Loading data and rendering items.

namespace {

std::vector<std::pair<size_t, nlohmann::json>> read_jsonl(const fs::path& path) {
  std::string text = read_text_file(path, kMaxDataBytes);
  std::vector<std::pair<size_t, nlohmann::json>> docs;
  size_t line = 0, pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    ++line;
    std::string_view l(text.data() + pos, end - pos);
    pos = end + 1;
    if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
    if (l.find_first_not_of(" \t") == std::string_view::npos) continue;
    if (l.size() > kMaxJsonlLineBytes)
      fail("eval", "{}:{}: line of {} bytes, longer than the {} allowed", path.string(), line,
           l.size(), kMaxJsonlLineBytes);
    if (docs.size() >= kMaxJsonlRecords)
      fail("eval", "{}:{}: more than {} records in one file", path.string(), line,
           kMaxJsonlRecords);
    check_json_depth(l, "eval", fmt::format("{}:{}", path.string(), line));
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(l);
    } catch (const nlohmann::json::exception& e) {
      fail("eval", "{}:{}: not a JSON line: {}", path.string(), line, e.what());
    }
    if (!j.is_object()) fail("eval", "{}:{}: each line must be a JSON object", path.string(), line);
    docs.emplace_back(line, std::move(j));
  }
  return docs;
}

}  // namespace

Task Task::load(const fs::path& yaml_file) {
  return from_spec(parse_task_spec(read_text_file(yaml_file, kMaxTaskBytes), yaml_file));
}

namespace {

// A doc of a split, rendered.
struct Parts {
  std::string query, target;
  std::vector<std::string> choices;
  int gold = -1;
};

// The parts of one doc (`dw`: its file:line for messages): query, target, and for multiple choice
// the choices and the gold index (a number, a string of digits, or the text of a choice).
Parts doc_parts(const TaskSpec& s, const nlohmann::json& doc, const std::string& dw) {
  const std::string f = s.file.string();
  Parts p;
  if (!s.doc_to_text.empty())
    p.query = render_template(s.doc_to_text, doc, {f + ": doc_to_text", dw});
  if (s.output_type == OutputType::MultipleChoice) {
    if (s.doc_to_choice_template) {
      const nlohmann::json* v =
          template_value(*s.doc_to_choice_template, doc, {f + ": doc_to_choice", dw});
      if (!v || !v->is_array() || v->empty())
        fail("eval", "{}: doc_to_choice must name a non-empty list field ({})", f, dw);
      for (const auto& e : *v) p.choices.push_back(json_to_text(e));
    } else {
      p.choices = s.doc_to_choice_list;
    }
    // The target: an index (a number, or a string of digits), or the text of a choice.
    const nlohmann::json* tv = template_value(s.doc_to_target, doc, {f + ": doc_to_target", dw});
    std::string ts =
        tv ? json_to_text(*tv) : render_template(s.doc_to_target, doc, {f + ": doc_to_target", dw});
    bool digits = !ts.empty() &&
                  std::all_of(ts.begin(), ts.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
    if ((tv && tv->is_number_integer()) || digits) {
      long long g = digits && ts.size() < 10 ? std::stoll(ts) : -1;
      if (g < 0 || g >= static_cast<long long>(p.choices.size()))
        fail("eval", "{}: doc_to_target {} is not a choice index (there are {} choices) ({})", f,
             ts, p.choices.size(), dw);
      p.gold = static_cast<int>(g);
    } else {
      auto it = std::find(p.choices.begin(), p.choices.end(), ts);
      if (it == p.choices.end())
        fail("eval", "{}: doc_to_target '{}' is neither a choice index nor one of the choices ({})",
             f, ts, dw);
      p.gold = static_cast<int>(it - p.choices.begin());
    }
    p.target = p.choices[p.gold];
  } else if (s.output_type == OutputType::LoglikelihoodRolling) {
    p.target = s.doc_to_target.empty()
                   ? p.query
                   : render_template(s.doc_to_target, doc, {f + ": doc_to_target", dw});
  } else {
    p.target = render_template(s.doc_to_target, doc, {f + ": doc_to_target", dw});
  }
  return p;
}

// The few-shot docs of item i: the first n (without the item itself when the shots come from its
// own split), or a seeded partial Fisher-Yates per item (mt19937_64 is specified bit-for-bit by
// the standard; the modulo is ours, so the choice is the same on every platform).
std::vector<size_t> fewshot_order(const TaskSpec& s, size_t pool, bool same, size_t i) {
  std::vector<size_t> order;
  if (s.fewshot_sampler == "first_n") {
    for (size_t k = 0; k < pool && order.size() < static_cast<size_t>(s.num_fewshot); ++k)
      if (!(same && k == i)) order.push_back(k);
  } else {
    std::vector<size_t> idx(pool);
    for (size_t k = 0; k < idx.size(); ++k) idx[k] = k;
    std::mt19937_64 rng(s.fewshot_seed * 1000003ULL + i);
    for (size_t k = 0; k < idx.size() && order.size() < static_cast<size_t>(s.num_fewshot); ++k) {
      size_t j = k + static_cast<size_t>(rng() % (idx.size() - k));
      std::swap(idx[k], idx[j]);
      if (!(same && idx[k] == i)) order.push_back(idx[k]);
    }
  }
  return order;
}

}  // namespace

Task Task::from_spec(TaskSpec spec) {
  Task t;
  t.spec_ = std::move(spec);
  const TaskSpec& s = t.spec_;
  if (s.external && s.data_files.empty()) return t;

  // Docs of every split.
  std::map<std::string, std::vector<std::pair<size_t, nlohmann::json>>> files;
  for (const auto& [name, path] : s.data_files) {
    auto docs = read_jsonl(path);
    if (docs.empty() && s.splits_by_index.empty())
      fail("eval", "{}: split '{}' is empty ({} has no JSON lines)", s.file.string(), name,
           path.string());
    Split sp;
    sp.file = path;
    for (auto& [line, doc] : docs) sp.lines.push_back(line), sp.docs.push_back(doc);
    t.splits_[name] = std::move(sp);
  }
  for (const auto& [name, range] : s.splits_by_index) {
    const Split& all = t.splits_.begin()->second;
    if (range.second > all.docs.size())
      fail("eval", "{}: splits_by_index.{}: range [{}, {}) exceeds the {} docs of {}",
           s.file.string(), name, range.first, range.second, all.docs.size(), all.file.string());
    Split sp;
    sp.file = all.file;
    for (size_t i = range.first; i < range.second; ++i)
      sp.lines.push_back(all.lines[i]), sp.docs.push_back(all.docs[i]);
    t.splits_[name] = std::move(sp);
  }

  // Per-doc parts: query, target, choices, gold.
  const std::string f = s.file.string();
  auto where_doc = [](const Split& sp, size_t i) {
    return fmt::format("{}:{}", sp.file.string(), sp.lines[i]);
  };
  std::map<std::string, std::vector<Parts>> parts;
  for (auto& [name, sp] : t.splits_) {
    auto& pv = parts[name];
    for (size_t i = 0; i < sp.docs.size(); ++i) {
      const auto& doc = sp.docs[i];
      std::string dw = where_doc(sp, i);
      Parts p = doc_parts(s, doc, dw);
      pv.push_back(std::move(p));
    }
  }

  // Items, with few-shot prefixes.
  if (s.num_fewshot > 0) {
    if (!t.splits_.count(s.fewshot_split))
      fail("eval", "{}: fewshot_split '{}' has no data", f, s.fewshot_split);
    size_t pool = t.splits_.at(s.fewshot_split).docs.size();
    size_t needed = static_cast<size_t>(s.num_fewshot) + (s.fewshot_split == s.test_split ? 1 : 0);
    if (pool < needed)
      fail("eval", "{}: num_fewshot {} needs {} docs in split '{}', which has {}", f, s.num_fewshot,
           needed, s.fewshot_split, pool);
  }
  for (auto& [name, sp] : t.splits_) {
    const auto& pv = parts[name];
    for (size_t i = 0; i < sp.docs.size(); ++i) {
      TaskItem it;
      it.index = i;
      it.line = sp.lines[i];
      it.query = pv[i].query;
      it.target = pv[i].target;
      it.choices = pv[i].choices;
      it.gold = pv[i].gold;
      std::string prefix = s.description;
      if (s.num_fewshot > 0) {
        const auto& shots = parts[s.fewshot_split];
        bool same = name == s.fewshot_split;
        const std::vector<size_t> order = fewshot_order(s, shots.size(), same, i);
        for (size_t k : order)
          prefix += shots[k].query + s.target_delimiter + shots[k].target + s.fewshot_delimiter;
      }
      it.fewshot_prefix = prefix;
      it.context = prefix + it.query;
      sp.items.push_back(std::move(it));
    }
    if (sp.items.empty()) fail("eval", "{}: split '{}' is empty ({})", f, name, sp.file.string());
  }
  if (!t.splits_.count(s.test_split))
    fail("eval", "{}: test_split '{}' has no data", f, s.test_split);

  // Default answer extraction for generation: the last number when every target is a number (math
  // tasks, the paper's rule), else the whole output stripped.
  if (s.output_type == OutputType::GenerateUntil && s.filter.empty()) {
    bool numeric = true;
    for (const auto& [name, sp] : t.splits_)
      for (const auto& it : sp.items) numeric = numeric && parse_number(it.target).has_value();
    FilterStep st;
    st.kind = numeric ? FilterStep::Kind::LastNumber : FilterStep::Kind::Strip;
    t.spec_.filter.push_back(st);
  }
  return t;
}

std::vector<std::string> Task::split_names() const {
  std::vector<std::string> out;
  for (const auto& [n, _] : splits_) out.push_back(n);
  return out;
}

bool Task::has_split(std::string_view name) const {
  return splits_.find(name) != splits_.end();
}

const Task::Split& Task::split(std::string_view name) const {
  auto it = splits_.find(name);
  if (it == splits_.end()) {
    std::string known;
    for (const auto& [n, _] : splits_) known += (known.empty() ? "" : ", ") + n;
    fail("eval", "{}: task '{}' has no split '{}' (splits: {})", spec_.file.string(), spec_.name,
         name, known.empty() ? "none" : known);
  }
  return it->second;
}

size_t Task::split_size(std::string_view name) const {
  return split(name).items.size();
}

const TaskItem& Task::item(std::string_view name, size_t index) const {
  const Split& sp = split(name);
  if (index >= sp.items.size())
    fail("eval", "{}: item {} is out of range (split '{}' has {} items)", spec_.file.string(),
         index, name, sp.items.size());
  return sp.items[index];
}

const nlohmann::json& Task::doc(std::string_view name, size_t index) const {
  const Split& sp = split(name);
  EM_ASSERT(index < sp.docs.size());
  return sp.docs[index];
}

}  // namespace evomerge::eval
