// evomerge eval MODEL_OR_MERGE_CONFIG --task T.yaml [--task T2.yaml --weight 1 --weight 2] [--split
// S]
//   [--limit N] [--json] [--output items.jsonl]
// Scores a model folder, or a mergekit config merged in memory (no files written), on lm-eval-style
// task files (docs/tasks.md): per-task scores with 95% intervals, the weighted total, and per-item
// results as JSONL.
#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>

#include "command.h"
#include "common/error.h"
#include "common/interrupt.h"
#include "common/progress.h"
#include "eval/candidate_engine.h"
#include "eval/scorer.h"
#include "infer/engine.h"
#include "io/files.h"
#include "io/model_folder.h"
#include "merge/config.h"
#include "merge/merge.h"
#include "report/eval_table.h"
#include "tokenize/tokenizer.h"

namespace evomerge::cli {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

struct EvalOptions {
  std::string model;
  std::vector<std::string> tasks;
  std::vector<double> weights;
  std::string split;
  size_t limit = 0;
  bool json = false;
  std::string output;
  int threads = 0;
  std::string device = "cpu";
  std::string precision = "exact";  // EngineOptions::precision
  size_t batch = 64;
  bool strict = false;       // merge configs: warnings are errors
  uint64_t random_seed = 0;  // merge configs: DARE / DELLA sampling (evolve uses its run seed)
};

// A merge config is a YAML file; anything else is a model folder (or an HF-cache org/name).
bool is_merge_config(const std::string& arg) {
  std::error_code ec;
  return fs::is_regular_file(arg, ec);
}

json item_json(const eval::TaskScore& s, const eval::ItemResult& it, eval::OutputType type) {
  json j;
  j["task"] = s.task;
  j["split"] = s.split;
  j["index"] = it.index;
  j["prompt"] = it.prompt;
  j["output"] = it.output;
  if (type == eval::OutputType::GenerateUntil) j["extracted"] = it.extracted;
  j["target"] = it.target;
  if (type != eval::OutputType::LoglikelihoodRolling) j["correct"] = it.correct;
  if (it.script_share >= 0) {
    j["answer_matches"] = it.answer_matches;
    j["script_share"] = it.script_share;
    j["script_ok"] = it.script_ok;
  }
  if (type != eval::OutputType::GenerateUntil) {
    j["logprob"] = it.logprob;
    j["tokens"] = it.tokens;
  }
  if (type == eval::OutputType::Loglikelihood) j["greedy"] = it.greedy;
  if (type == eval::OutputType::MultipleChoice) {
    j["choice_logprobs"] = it.choice_logprobs;
    j["pred"] = it.pred;
    j["pred_norm"] = it.pred_norm;
  }
  return j;
}

// --output: one JSON line per scored item, every task in order.
std::string scored_item_lines(const eval::ScoreReport& rep, const eval::Scorer& scorer) {
  std::string lines;
  for (size_t t = 0; t < rep.tasks.size(); ++t)
    for (const auto& it : rep.tasks[t].items)
      lines += item_json(rep.tasks[t], it, scorer.task(t).spec().output_type)
                   .dump(-1, ' ', false, json::error_handler_t::replace) +
               "\n";
  return lines;
}

// --json: the candidate, each task's score with its interval, and the weighted total.
json eval_report_json(const EvalOptions& opt, const std::string& what, const eval::ScoreReport& rep,
                      const eval::Scorer& scorer) {
  json out;
  out["model"] = opt.model;
  out["candidate"] = what;
  auto& list = out["tasks"] = json::array();
  for (size_t t = 0; t < rep.tasks.size(); ++t) {
    const auto& s = rep.tasks[t];
    json j;
    j["task"] = s.task;
    j["file"] = opt.tasks[t];
    j["split"] = s.split;
    j["weight"] = scorer.weight(t);
    j["metric"] = s.metric;
    j["higher_is_better"] = s.higher_is_better;
    j["n"] = s.scored;
    j["failed"] = s.failed;
    if (!s.note.empty()) j["note"] = s.note;
    if (s.failed) {
      j["error"] = s.error;
    } else {
      j["score"] = s.score;
      j["ci95"] = {s.ci.lo, s.ci.hi};
      j["metrics"] = s.metrics;
    }
    list.push_back(j);
  }
  out["failed"] = rep.failed;
  if (!std::isnan(rep.total)) {
    out["total"] = rep.total;
    out["total_ci95"] = {rep.total_ci.lo, rep.total_ci.hi};
  }
  return out;
}

int run_eval(const EvalOptions& opt) {
  if (!opt.weights.empty() && opt.weights.size() != opt.tasks.size())
    fail("eval", "--weight given {} times for {} --task files (give one weight per task, in order)",
         opt.weights.size(), opt.tasks.size());
  std::vector<eval::TaskEntry> entries;
  for (size_t i = 0; i < opt.tasks.size(); ++i)
    entries.push_back({opt.tasks[i], opt.weights.empty() ? 1.0 : opt.weights[i]});
  eval::Scorer scorer(entries,
                      opt.split);  // every task file is read and checked before any model work
  install_immediate_interrupt(fmt::format(
      "\nevomerge eval: interrupted; nothing was kept (the scores{} are written when scoring "
      "ends); run the same command to score again\n",
      opt.output.empty() ? "" : " and " + opt.output));

  bool needs_engine = false;
  for (size_t t = 0; t < scorer.num_tasks(); ++t)
    needs_engine = needs_engine || !scorer.task(t).spec().external;

  // The candidate: a folder, or a merge in memory.
  eval::Candidate cand;
  std::optional<Tokenizer> tok;
  std::unique_ptr<Engine> engine;
  std::unique_ptr<MergedCandidate> merged;
  std::optional<MergePlan> plan;  // external tasks only: the merge written to a folder
  ModelCache cache;
  Merger merger([&] {
    MergeOptions mo;
    mo.threads = opt.threads;
    mo.strict = opt.strict;
    mo.random_seed = opt.random_seed;
    return mo;
  }());
  EngineOptions eo;
  eo.threads = opt.threads;
  eo.device = opt.device;
  eo.precision = parse_precision_or_fail(opt.precision, "--precision");
  std::string what;
  if (is_merge_config(opt.model)) {
    MergeConfig mc = load_merge_config(opt.model);
    plan = build_plan(mc, cache, merger.options());
    for (const auto& w : plan->warnings) fmt::print(stderr, "warning: {}\n", w);
    const fs::path tokenizer_dir = plan->models.at(plan->donor)->folder().dir;
    what = fmt::format("merge {} ({}, {} models)", opt.model, plan->method, plan->models.size());
    if (needs_engine) {
      // Merged in memory in the plan's output dtype: the numbers a merged folder on disk holds.
      tok.emplace(Tokenizer::load(tokenizer_dir));
      merged = std::make_unique<MergedCandidate>(merger.options(), eo, *tok);
      Progress p("merge", plan->tensors.size(), "tensors", true);
      cand.engine = &merged->load(mc);
      p.add(plan->tensors.size());
      p.finish();
    }
    cand.write_folder = [&](const fs::path& dir) {
      FolderOptions fo;
      fo.write_model_card = false;
      merger.write_folder(*plan, dir, fo);
    };
  } else {
    const fs::path dir = resolve_model_path(opt.model);
    cand.folder = dir;
    what = dir.string();
    if (needs_engine) {
      tok.emplace(Tokenizer::load(dir));
      engine = make_candidate_engine(open_folder_weights(dir.string()), *tok, eo);
      cand.engine = engine.get();
    }
  }
  if (needs_engine) cand.tokenizer = &*tok;

  eval::ScoreOptions so;
  so.micro_batch = opt.batch;
  so.progress = true;
  so.keep_text = true;
  std::vector<std::vector<size_t>> items;
  for (size_t t = 0; t < scorer.num_tasks(); ++t) items.push_back(scorer.all_items(t, opt.limit));
  eval::ScoreReport rep;
  for (size_t t = 0; t < scorer.num_tasks(); ++t) {
    if (!scorer.task(t).spec().external && items[t].empty())
      fail("eval", "{}: no items to score", opt.tasks[t]);
    rep.tasks.push_back(scorer.score_task(t, cand, items[t], so));
  }
  std::vector<double> w;
  for (size_t t = 0; t < scorer.num_tasks(); ++t) w.push_back(scorer.weight(t));
  eval::aggregate_report(rep, w);

  if (!opt.output.empty()) write_file_atomic(opt.output, scored_item_lines(rep, scorer));
  if (opt.json) {
    fmt::print("{}\n", eval_report_json(opt, what, rep, scorer)
                           .dump(2, ' ', false, json::error_handler_t::replace));
  } else {
    std::vector<report::EvalTableTask> table_tasks;
    for (size_t t = 0; t < scorer.num_tasks(); ++t)
      table_tasks.push_back({scorer.weight(t), scorer.task(t).spec().external.has_value()});
    fmt::print("{}", report::eval_table_text(what, rep, table_tasks, opt.output));
  }
  return rep.failed ? 1 : 0;
}

const bool registered = register_command(
    {"eval", "Score a model folder or a merge config (merged in memory) on task files",
     [](CLI::App& app) -> Runner {
       auto opt = std::make_shared<EvalOptions>();
       app.add_option("model", opt->model,
                      "Model folder, HF-cache org/name, or a mergekit YAML config")
           ->required();
       app.add_option("--task", opt->tasks,
                      "Task file (lm-eval-style YAML, see docs/tasks.md); repeatable")
           ->required();
       app.add_option("--weight", opt->weights,
                      "Weight of each --task in the total, in order (default 1 each)");
       app.add_option("--split", opt->split, "Split to score (default: each task's test_split)");
       app.add_option("--limit", opt->limit, "Score only the first N items of each task");
       app.add_flag("--json", opt->json, "Machine-readable output");
       app.add_option("--output", opt->output,
                      "Write per-item results (prompt, output, answer, target, correct) as JSONL");
       app.add_option("--threads", opt->threads, "Engine threads (0: all cores)")->default_val(0);
       app.add_flag(
           "--strict", opt->strict,
           "For a merge config: keys and parameters with no effect are errors, not warnings");
       app.add_option("--device", opt->device, "Where the engine runs: cpu, cuda or cuda:N")
           ->default_val("cpu");
       app.add_option("--precision", opt->precision,
                      "Weight products: exact (default; f32-exact) or bf16 (activations rounded to "
                      "bf16 once, as "
                      "PyTorch bf16 autocast and llama.cpp; faster on AMX/AVX512-BF16 CPUs)")
           ->default_val("exact");
       app.add_option(
              "--random-seed", opt->random_seed,
              "Merge configs: seed of DARE/DELLA sampling, as `evomerge merge --random-seed` "
              "(an evolve recipe: the run's seed)")
           ->default_val(0);
       app.add_option("--batch", opt->batch, "Items per engine call")
           ->default_val(64)
           ->check(CLI::Range(1, 100000));
       return [opt] { return run_eval(*opt); };
     }});

}  // namespace
}  // namespace evomerge::cli
