// The error catalogue (docs/errors.md), driven through the real binary: every case runs `evomerge`
// on a hostile or wrong input and checks the exit status and the message on stderr. docs/errors.md
// must list every case (id and message); EVOMERGE_ERRORS_DOC=FILE writes the table rows it lists,
// with the scratch folder shown as $T.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "arch/bad_inputs.h"
#include "arch/test_support.h"
#include "infer/random_model.h"
#include "io/files.h"
#include "store/run_lock.h"
#include "test_support.h"
#include "tokenize/test_support.h"

namespace evomerge {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using testing::TempDir;
using testing::write_bytes;

struct ErrorCase {
  std::string id;
  std::string args;     // {T} is the scratch folder
  std::string message;  // a substring of stderr; {T} as in args
  int status = 1;
  std::string prefix = {};  // shell commands before the binary (ulimit ...)
};

std::string expand(std::string s, const fs::path& t) {
  for (size_t p; (p = s.find("{T}")) != std::string::npos;) s.replace(p, 3, t.string());
  return s;
}

// A tiny Llama with the test tokenizer (vocab 99, hidden 32, 2 layers) at `dir`.
void tiny_model(const fs::path& dir, uint64_t seed) {
  RandomModelSpec spec;
  spec.config = small_model_config("llama", 99, 32, 64, 2, 4, 2);
  spec.config["max_position_embeddings"] = 64;
  spec.seed = seed;
  write_random_model(dir, spec);
  testing_util::write_char_tokenizer(dir);
}

const char* kTask =
    "task: mc\ndataset_path: json\ndataset_kwargs: {data_files: {opt: mc.jsonl, test: mc.jsonl}}\n"
    "test_split: test\noutput_type: multiple_choice\ndoc_to_text: \"Q: {{q}}\\nA:\"\n"
    "doc_to_target: \"{{label}}\"\ndoc_to_choice: [\"a\", \"b\"]\n";

// The scratch folder with every input the cases use.
void write_inputs(const fs::path& t) {
  tiny_model(t / "base", 1);
  tiny_model(t / "ft", 2);
  write_bytes(t / "a-file", "not a folder");
  fs::create_directories(t / "fifo");
  ::mkfifo((t / "fifo" / "config.json").c_str(), 0600);
  fs::create_directories(t / "devzero");
  fs::create_symlink("/dev/zero", t / "devzero" / "config.json");
  // Weights of 2 layers, config of 1.
  fs::copy(t / "base", t / "extra", fs::copy_options::recursive);
  auto cfg = json::parse(read_text_file(t / "base" / "config.json"));
  cfg["num_hidden_layers"] = 1;
  write_bytes(t / "extra" / "config.json", cfg.dump());
  // Tokenizer nested 150,000 deep.
  fs::copy(t / "base", t / "deeptok", fs::copy_options::recursive);
  write_bytes(t / "deeptok" / "tokenizer.json",
              std::string(150000, '[') + std::string(150000, ']'));
  // Tasks.
  write_bytes(t / "mc.jsonl", "{\"q\": \"x\", \"label\": 0}\n{\"q\": \"y\", \"label\": 1}\n");
  write_bytes(t / "mc.yaml", kTask);
  std::string deep = kTask;
  deep.replace(deep.find("mc.jsonl, test: mc.jsonl"), 24, "deep.jsonl, test: deep.jsonl");
  write_bytes(t / "deep.yaml", deep);
  write_bytes(t / "deep.jsonl", "{\"q\": \"x\", \"label\": 0}\n{\"q\": " +
                                    std::string(150000, '[') + std::string(150000, ']') + "}\n");
  std::string longl = kTask;
  longl.replace(longl.find("mc.jsonl, test: mc.jsonl"), 24, "long.jsonl, test: long.jsonl");
  write_bytes(t / "long.yaml", longl);
  write_bytes(t / "long.jsonl", "{\"q\": \"" + std::string(5u << 20, 'x') + "\", \"label\": 0}\n");
  std::string notjson = kTask;
  notjson.replace(notjson.find("mc.jsonl, test: mc.jsonl"), 24, "bad.jsonl, test: bad.jsonl");
  write_bytes(t / "notjson.yaml", notjson);
  write_bytes(t / "bad.jsonl", "{\"q\": \"x\", \"label\": 0}\n{\"q\": \n");
  write_bytes(t / "unknown-key.yaml", std::string(kTask) + "temperature: 0.7\n");
  write_bytes(t / "text.txt", "hello");
  // Merge configs.
  const std::string base = (t / "base").string(), ft = (t / "ft").string();
  write_bytes(t / "linear.yml", "merge_method: linear\nmodels:\n  - {model: " + base +
                                    ", parameters: {weight: 1}}\n  - {model: " + ft +
                                    ", parameters: {weight: 1}}\n");
  write_bytes(t / "lineer.yml", "merge_method: lineer\nmodels: [{model: " + base + "}]\n");
  write_bytes(t / "nomodel.yml", "merge_method: linear\nmodels: [{model: " + (t / "nope").string() +
                                     ", parameters: {weight: 1}}]\n");
  write_bytes(t / "not-yaml.yml", "merge_method: [unclosed\n");
  fs::create_directories(t / "exists");
  // A model whose first stored value is +inf.
  fs::copy(t / "ft", t / "inf", fs::copy_options::recursive);
  {
    std::fstream io(t / "inf" / "model.safetensors",
                    std::ios::in | std::ios::out | std::ios::binary);
    uint64_t n = 0;
    io.read(reinterpret_cast<char*>(&n), 8);
    io.seekp(static_cast<std::streamoff>(8 + n));
    const uint16_t bf16_inf = 0x7f80;  // the random models are BF16
    io.write(reinterpret_cast<const char*>(&bf16_inf), 2);
  }
  write_bytes(t / "inf.yml", "merge_method: linear\nmodels:\n  - {model: " + base +
                                 ", parameters: {weight: 1}}\n  - {model: " + (t / "inf").string() +
                                 ", parameters: {weight: 1}}\n");
  // Evolve configs and run folders.
  const std::string evolve =
      "seed: 1\ntasks: [{file: mc.yaml, weight: 1}]\nitems_per_generation: 2\nthreads: 1\n"
      "ps:\n  method: linear\n  models: [base, ft]\n  population: 4\n  generations: 1\n"
      "final: {top: 1, uniform_grid: []}\n";
  write_bytes(t / "evolve.yml", evolve);
  std::string other = evolve;
  other.replace(other.find("seed: 1"), 7, "seed: 2");
  write_bytes(t / "evolve-seed2.yml", other);
  std::string bad_method = evolve;
  bad_method.replace(bad_method.find("method: linear"), 14, "method: lineer");
  write_bytes(t / "bad-method.yml", bad_method);
  std::string groups = evolve;
  groups.replace(groups.find("  population: 4"), 0, "  layer_groups: 65536\n");
  write_bytes(t / "layer-groups.yml", groups);
  // A run over a copy of `ft`, whose weights change after the run (see EveryCaseThroughTheBinary).
  fs::copy(t / "ft", t / "ft-copy", fs::copy_options::recursive);
  std::string changed = evolve;
  changed.replace(changed.find("models: [base, ft]"), 18, "models: [base, ft-copy]");
  write_bytes(t / "evolve-changed.yml", changed);
  // Evolve configs with one mistake each (the fuzz findings among them).
  const std::string ok_tail = "ps:\n  method: linear\n  models: [base, ft]\n";
  write_bytes(t / "e-unknown-key.yml", "tasks: [mc.yaml]\n" + ok_tail + "  bogus: 1\n");
  write_bytes(t / "e-no-tasks.yml", ok_tail);
  write_bytes(t / "e-no-section.yml", "tasks: [mc.yaml]\n");
  write_bytes(t / "e-weight-range.yml", "tasks: [mc.yaml]\n" + ok_tail + "  weight: [1, 0]\n");
  write_bytes(t / "e-dfs-needs-ps.yml", "tasks: [mc.yaml]\ndfs: {models: [ps, base]}\n");
  write_bytes(t / "e-key-list.yml", "tasks: [mc.yaml]\n" + ok_tail + "? [x]\n: 1\n");
  write_bytes(t / "e-not-utf8.yml", "tasks: [mc.yaml]\n" + ok_tail + "opt_split: op\xfft\n");
  write_bytes(t / "e-seed.yml", "tasks: [mc.yaml]\n" + ok_tail + "seed: [1]\n");
  write_bytes(t / "e-not-yaml.yml", "tasks: [mc.yaml\n");
  write_bytes(t / "e-task-missing.yml", "tasks: [nope.yaml]\n" + ok_tail);
  write_bytes(t / "e-model-missing.yml",
              "tasks: [mc.yaml]\nps:\n  method: linear\n  models: [base, nope]\n");
  write_bytes(t / "e-no-split.yml", "tasks: [mc.yaml]\nopt_split: train\n" + ok_tail);
  // Task files with one mistake each.
  const std::string task_head =
      "task: mc\ndataset_path: json\ntest_split: test\noutput_type: multiple_choice\n"
      "doc_to_text: \"Q: {{q}}\\nA:\"\ndoc_to_target: \"{{label}}\"\ndoc_to_choice: [\"a\", "
      "\"b\"]\n";
  const std::string task_data = "dataset_kwargs: {data_files: {opt: mc.jsonl, test: mc.jsonl}}\n";
  write_bytes(t / "t-key-list.yaml", task_head + task_data + "? [a, b]\n: 1\n");
  write_bytes(t / "t-not-utf8.yaml", task_head + task_data + "description: \"ans\xe2\x82\"\n");
  write_bytes(t / "t-output-type.yaml",
              "task: mc\ndataset_path: json\noutput_type: generate_text\n" + task_data);
  write_bytes(t / "t-no-data.yaml", task_head);
  write_bytes(t / "t-function.yaml", task_head.substr(0, task_head.find("doc_to_text")) +
                                         "doc_to_text: !function utils.doc_to_text\n" + task_data);
  write_bytes(t / "t-hub.yaml", "task: mc\ndataset_path: gsm8k\noutput_type: multiple_choice\n");
  std::string missing_field = task_head + task_data;
  missing_field.replace(missing_field.find("{{q}}"), 5, "{{question}}");
  write_bytes(t / "t-missing-field.yaml", missing_field);
  write_bytes(t / "t-bad-split.yaml",
              task_head.substr(0, task_head.find("test_split")) + "test_split: valid\n" +
                  task_head.substr(task_head.find("output_type")) + task_data);
  // Merge configs with one mistake each.
  write_bytes(t / "m-huge-weight.yml", "merge_method: linear\nmodels:\n  - {model: " + base +
                                           ", parameters: {weight: 1e309}}\n  - {model: " + ft +
                                           ", parameters: {weight: 1}}\n");
  write_bytes(t / "m-density.yml", "merge_method: ties\nbase_model: " + base +
                                       "\nmodels:\n  - {model: " + ft +
                                       ", parameters: {weight: 1, density: 5}}\n");
  write_bytes(t / "m-no-models.yml", "merge_method: linear\nmodels: []\n");
  write_bytes(t / "m-unknown-key.yml", "merge_method: linear\nmodelz: []\n");  // a typo
  fs::create_directories(t / "no-weights");
  fs::copy_file(t / "base" / "config.json", t / "no-weights" / "config.json");
  fs::create_directories(t / "foreign");
  write_bytes(t / "foreign" / "run.db",
              "this is not a database, just text that is long enough........");
}

std::vector<ErrorCase> cases() {
  return {
      // usage
      {"usage-unknown-command", "frobnicate",
       "evomerge: unknown command 'frobnicate' (commands: eval, evolve, generate, inspect, merge, "
       "report, score, tokenize; evomerge --help)",
       2},
      {"usage-mistyped-command", "evolv {T}/evolve.yml",
       "evomerge: unknown command 'evolv'; did you mean 'evolve'?", 2},
      {"usage-missing-argument", "merge", "config is required", 2},
      {"usage-missing-run", "evolve {T}/evolve.yml", "--run is required", 2},
      {"usage-mistyped-option", "merge {T}/linear.yml {T}/out --forse",
       "The following argument was not expected: --forse", 2},  // + "did you mean '--force'?"
      {"usage-not-a-number", "evolve {T}/evolve.yml --run {T}/run-x --stop-after many",
       "Could not convert: --stop-after = many", 2},
      // model folders
      {"model-missing", "inspect {T}/nope", "[model] {T}/nope: no such model folder"},
      {"model-is-a-file", "inspect {T}/a-file",
       "[model] {T}/a-file: is a file, not a model folder (give the folder that holds config.json "
       "and the weights)"},
      {"config-fifo", "inspect {T}/fifo",
       "[io] {T}/fifo/config.json: is a FIFO, not a regular file"},
      {"config-dev-zero", "inspect {T}/devzero",
       "[io] {T}/devzero/config.json: is a character device, not a regular file"},
      {"unexpected-tensors", "inspect {T}/extra",
       "[model] {T}/extra: tensors 'model.layers.1.input_layernorm.weight', "},
      {"tokenizer-deep", "tokenize {T}/deeptok --text hi",
       "[tokenizer] {T}/deeptok/tokenizer.json: JSON nested deeper than 128 levels"},
      {"text-file-missing", "score {T}/base --text-file {T}/nope.txt", "{T}/nope.txt"},
      {"generate-model-is-a-file", "generate {T}/a-file --prompt hi",
       "is a file, not a model folder"},
      // merge
      {"merge-config-missing", "merge {T}/nope.yml {T}/out", "[io] {T}/nope.yml: cannot read"},
      {"merge-not-yaml", "merge {T}/not-yaml.yml {T}/out", "{T}/not-yaml.yml"},
      {"merge-unknown-method", "merge {T}/lineer.yml {T}/out", "unknown method 'lineer'"},
      {"merge-model-missing", "merge {T}/nomodel.yml {T}/out", "{T}/nope: no such model folder"},
      {"merge-output-exists", "merge {T}/linear.yml {T}/exists",
       "[io] {T}/exists: output folder already exists (use --force to replace it)"},
      {"merge-non-finite", "merge {T}/inf.yml {T}/out-inf",
       "': the merge produced 1 non-finite values (inf or NaN) of "},
      {"merge-file-too-large", "merge {T}/linear.yml {T}/out-big",
       ": file too large (over the file-size limit of this process, see `ulimit -f`", 1,
       "ulimit -f 8;"},
      // tasks
      {"task-missing", "eval {T}/base --task {T}/nope.yaml", "{T}/nope.yaml"},
      {"task-unknown-key", "eval {T}/base --task {T}/unknown-key.yaml",
       "{T}/unknown-key.yaml:9: temperature: unknown key"},
      {"jsonl-deep", "eval {T}/base --task {T}/deep.yaml",
       "[eval] {T}/deep.jsonl:2: JSON nested deeper than 128 levels"},
      {"jsonl-long-line", "eval {T}/base --task {T}/long.yaml",
       "[eval] {T}/long.jsonl:1: line of 5242901 bytes, longer than the 4194304 allowed"},
      {"jsonl-not-json", "eval {T}/base --task {T}/notjson.yaml",
       "[eval] {T}/bad.jsonl:2: not a JSON line"},
      // evolve and the run store
      {"evolve-config-missing", "evolve {T}/nope.yml --run {T}/run-x", "{T}/nope.yml"},
      {"evolve-bad-method", "evolve {T}/bad-method.yml --run {T}/run-x",
       "[evolve-config] {T}/bad-method.yml:6: ps.method: 'lineer' is not searchable (use "
       "dare_ties, ties, "
       "task_arithmetic, linear or slerp)"},
      {"evolve-layer-groups", "evolve {T}/layer-groups.yml --run {T}/run-x",
       "[evolve] {T}/layer-groups.yml: ps.layer_groups: 65536 is not in [1, 2] (the number of "
       "layers)"},
      {"evolve-unknown-key", "evolve {T}/e-unknown-key.yml --run {T}/run-x",
       "[evolve-config] {T}/e-unknown-key.yml:5: ps.bogus: unknown key (known: "},
      {"evolve-no-tasks", "evolve {T}/e-no-tasks.yml --run {T}/run-x",
       "tasks: a non-empty list of {file, weight} is required"},
      {"evolve-no-section", "evolve {T}/e-no-section.yml --run {T}/run-x",
       "at least one of the sections"},
      {"evolve-weight-range", "evolve {T}/e-weight-range.yml --run {T}/run-x",
       "{T}/e-weight-range.yml:5: ps.weight: min 1 must be below max 0"},
      {"evolve-dfs-needs-ps", "evolve {T}/e-dfs-needs-ps.yml --run {T}/run-x",
       "'ps' needs a ps: section"},
      {"evolve-key-not-a-string", "evolve {T}/e-key-list.yml --run {T}/run-x",
       "[evolve-config] {T}/e-key-list.yml:5: (top level): has a key that is not a string"},
      {"evolve-not-utf8", "evolve {T}/e-not-utf8.yml --run {T}/run-x",
       "[evolve-config] {T}/e-not-utf8.yml:5: opt_split: 'op\\xfft' is not valid UTF-8"},
      {"evolve-seed-not-an-integer", "evolve {T}/e-seed.yml --run {T}/run-x",
       "{T}/e-seed.yml:5: seed: expected an integer"},
      {"evolve-not-yaml", "evolve {T}/e-not-yaml.yml --run {T}/run-x",
       "[evolve-config] {T}/e-not-yaml.yml:2: invalid YAML: end of sequence flow not found"},
      {"evolve-task-missing", "evolve {T}/e-task-missing.yml --run {T}/run-x",
       "[evolve] {T}/e-task-missing.yml: tasks[0]: no such task file 'nope.yaml'"},
      {"evolve-model-missing", "evolve {T}/e-model-missing.yml --run {T}/run-x",
       "nope: no such model folder"},
      {"evolve-no-such-split", "evolve {T}/e-no-split.yml --run {T}/run-x",
       "[evolve] {T}/e-no-split.yml: task 'mc' has no split 'train' (it has: opt, test)"},
      {"evolve-bad-device", "evolve {T}/evolve.yml --run {T}/run-x --device tpu",
       "[infer] device 'tpu' is not one of cpu, cuda, cuda:N"},
      {"score-bad-precision", "score {T}/base --text-file {T}/text.txt --precision fp16",
       "[infer] --precision 'fp16' is not one of exact, bf16"},
      {"generate-bad-precision", "generate {T}/base --prompt hi --precision f32",
       "[infer] --precision 'f32' is not one of exact, bf16"},
      {"task-key-not-a-string", "eval {T}/base --task {T}/t-key-list.yaml",
       "[eval] {T}/t-key-list.yaml:9: (top level): has a key that is not a string"},
      {"task-not-utf8", "eval {T}/base --task {T}/t-not-utf8.yaml",
       "[eval] {T}/t-not-utf8.yaml:9: description: 'ans\\xe2\\x82' is not valid UTF-8"},
      {"task-unknown-output-type", "eval {T}/base --task {T}/t-output-type.yaml",
       "t-output-type.yaml:3: output_type: 'generate_text' is not supported"},
      {"task-no-data", "eval {T}/base --task {T}/t-no-data.yaml",
       "{T}/t-no-data.yaml: no data: set dataset_kwargs.data_files"},
      {"task-python-function", "eval {T}/base --task {T}/t-function.yaml",
       "uses '!function' (Python code), which evomerge cannot run"},
      {"task-hub-dataset", "eval {T}/base --task {T}/t-hub.yaml",
       "t-hub.yaml:2: dataset_path: 'gsm8k' is not read: only local JSONL data is"},
      {"task-template-missing-field", "eval {T}/base --task {T}/t-missing-field.yaml",
       "{T}/t-missing-field.yaml: doc_to_text: field 'question' is missing ({T}/mc.jsonl:1)"},
      {"task-split-without-data", "eval {T}/base --task {T}/t-bad-split.yaml",
       "t-bad-split.yaml:3: test_split: names split 'valid', which has no data"},
      {"merge-weight-not-finite", "merge {T}/m-huge-weight.yml {T}/out",
       "{T}/m-huge-weight.yml:3: models[0].parameters.weight: '1e309' is not a number"},
      {"merge-density-range", "merge {T}/m-density.yml {T}/out",
       "{T}/m-density.yml:4: models[0].parameters.density: 5 is outside (0, 1]"},
      {"merge-no-models", "merge {T}/m-no-models.yml {T}/out",
       "{T}/m-no-models.yml:2: models: expected a non-empty list"},
      {"merge-models-missing", "merge {T}/m-unknown-key.yml {T}/out",
       "{T}/m-unknown-key.yml:1: models/slices: exactly one of 'models' and 'slices' must be "
       "given"},
      {"model-no-weights", "inspect {T}/no-weights",
       "[model] {T}/no-weights: no model.safetensors or model.safetensors.index.json"},
      {"tokenize-model-missing", "tokenize {T}/nope --text hi",
       "[model] {T}/nope: no such model folder"},
      {"score-model-missing", "score {T}/nope --text-file {T}/text.txt",
       "{T}/nope: no such model folder"},
      {"report-run-missing", "report --run {T}/nope",
       "[store] {T}/nope/run.db: no run database here"},
      {"run-inputs-changed", "evolve {T}/evolve-changed.yml --run {T}/run-changed",
       "the inputs changed since this run started: model '{T}/ft-copy' changed "
       "(model.safetensors); "},
      {"run-is-a-file", "evolve {T}/evolve.yml --run {T}/a-file",
       "[store] {T}/a-file: the run folder is a file; give a folder (new or of this run)"},
      {"run-foreign-database", "evolve {T}/evolve.yml --run {T}/foreign",
       "[store] {T}/foreign/run.db: not a SQLite database (file is not a database); move it away "
       "or use another --run folder"},
      {"run-in-use", "evolve {T}/evolve.yml --run {T}/run-locked",
       "[store] {T}/run-locked: this run folder is in use by another evomerge process (pid "},
      {"run-other-config", "evolve {T}/evolve-seed2.yml --run {T}/run-done",
       "[store] {T}/run-done/run.db: this run folder was made by a different config (differs at "
       "/seed)"},
  };
}

class ErrorCatalogue : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    t_ = new TempDir("errors");
    write_inputs(t_->path());
  }
  static void TearDownTestSuite() { delete t_; }
  static TempDir* t_;
};
TempDir* ErrorCatalogue::t_ = nullptr;

TEST_F(ErrorCatalogue, EveryCaseThroughTheBinary) {
  const fs::path t = t_->path();
  // A finished run (for the config check) and a folder held by this process's lock.
  const fs::path io = t / "io";
  fs::create_directories(io);
  const auto done =
      testing::evomerge_cli(fmt::format("-q evolve '{}' --run '{}'", (t / "evolve.yml").string(),
                                        (t / "run-done").string()),
                            io);
  ASSERT_EQ(done.status, 0) << done.err;
  const auto changed = testing::evomerge_cli(
      fmt::format("-q evolve '{}' --run '{}'", (t / "evolve-changed.yml").string(),
                  (t / "run-changed").string()),
      io);
  ASSERT_EQ(changed.status, 0) << changed.err;
  {
    std::fstream w(t / "ft-copy" / "model.safetensors",
                   std::ios::in | std::ios::out | std::ios::binary);
    w.seekp(-1, std::ios::end);
    w.put('\x01');
  }
  fs::create_directories(t / "run-locked");
  RunFolderLock held(t / "run-locked");
  std::string doc_rows;
  for (const auto& c : cases()) {
    const auto r = testing::run_shell_cli(c.prefix, "-q " + expand(c.args, t) + " </dev/null", io);
    EXPECT_EQ(r.status, c.status) << c.id << ": " << r.err;
    EXPECT_NE(r.err.find(expand(c.message, t)), std::string::npos) << c.id << ": got " << r.err;
    // The error line (a resumed run logs before it fails), else the first line.
    const size_t at = r.err.find("error: ");
    const size_t from = at == std::string::npos                      ? 0
                        : r.err.rfind('\n', at) == std::string::npos ? 0
                                                                     : r.err.rfind('\n', at) + 1;
    std::string first = r.err.substr(from, r.err.find('\n', from) - from);
    for (size_t p; (p = first.find(t.string())) != std::string::npos;)
      first.replace(p, t.string().size(), "$T");
    for (size_t p = 0; (p = first.find('|', p)) != std::string::npos; p += 2)
      first.replace(p, 1, "\\|");
    doc_rows +=
        fmt::format("| `{}` | `{}evomerge {}` | {} | {} |\n", c.id,
                    c.prefix.empty() ? "" : c.prefix + " ", expand(c.args, "$T"), c.status, first);
  }
  // No staging leftovers from the failed merges.
  for (const auto& e : fs::directory_iterator(t))
    EXPECT_EQ(e.path().filename().string().find(".out"), std::string::npos) << e.path();
  if (const char* doc = std::getenv("EVOMERGE_ERRORS_DOC")) {
    // Then the bad-input catalogue (run through the binary by cli/inspect_test.cpp): its expected
    // message substrings.
    doc_rows += "\nCATALOGUE\n";
    TempDir root("catalogue");
    for (const auto& c : testing::make_bad_input_catalogue(root.path())) {
      std::string m = c.message;
      for (size_t p = 0; (p = m.find('|', p)) != std::string::npos; p += 2) m.replace(p, 1, "\\|");
      doc_rows += fmt::format("| `{}` | {} | {} |\n", c.id,
                              c.file.empty() ? "(the folder)" : "`" + c.file + "`", m);
    }
    std::ofstream(doc) << doc_rows;
  }
}

// docs/errors.md lists every case of this file and of the bad-input catalogue (driven through
// `evomerge inspect` by cli/inspect_test.cpp) with its message.
TEST_F(ErrorCatalogue, DocumentedInErrorsMd) {
  const std::string doc = read_text_file(fs::path(EVOMERGE_SOURCE_DIR) / "docs" / "errors.md");
  size_t n = 0;
  for (const auto& c : cases()) {
    ++n;
    EXPECT_NE(doc.find("| `" + c.id + "` |"), std::string::npos) << c.id;
    std::string m = expand(c.message, "$T");
    for (size_t p = 0; (p = m.find('|', p)) != std::string::npos; p += 2) m.replace(p, 1, "\\|");
    EXPECT_NE(doc.find(m), std::string::npos) << c.id << ": " << m;
  }
  TempDir root("catalogue");
  for (const auto& c : testing::make_bad_input_catalogue(root.path())) {
    ++n;
    EXPECT_NE(doc.find("| `" + c.id + "` |"), std::string::npos) << c.id;
    EXPECT_NE(doc.find(c.message), std::string::npos) << c.id << ": " << c.message;
  }
  EXPECT_GE(n, 60u);
}

}  // namespace
}  // namespace evomerge
