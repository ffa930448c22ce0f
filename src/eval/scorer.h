// The scorer: tasks loaded once, candidates scored on chosen items. This is the fitness function of
// the evolution engine and the core of `evomerge eval`.
//
//   Scorer scorer({{"examples/tasks/ja_math.yaml", 1.0}}, "opt");   // load and render once
//   auto subset = scorer.sample_items(0, 200, generation_seed);       // same items for every candidate
//   Candidate c{&engine, &tokenizer};
//   ScoreOptions o; o.race = [&](const RaceUpdate& u) { return u.correct + (u.total - u.done) > best; };
//   TaskScore s = scorer.score_task(0, c, subset, o);                 // s.items[k] is subset[k]
//
// Items of a task go through Engine::generate / Engine::loglikelihood in micro-batches of
// ScoreOptions::micro_batch items; after each micro-batch the race callback may stop the task.
// Decoding is greedy (the engine's generate), so a score is a deterministic function of the weights.
// A Scorer is immutable after construction: several threads may score different candidates (each with
// its own Engine) through the same Scorer at once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "eval/metrics.h"
#include "eval/task.h"

namespace evomerge {
class Engine;
class Tokenizer;
}  // namespace evomerge

namespace evomerge::eval {

// What is scored. Engine tasks need `engine` and `tokenizer`; external-evaluator tasks need a model
// folder: `folder` if it exists on disk, else `write_folder` is called with an empty temporary folder
// to write the candidate into (e.g. a merge streamed to disk), which is removed afterwards.
struct Candidate {
  Engine* engine = nullptr;
  const Tokenizer* tokenizer = nullptr;
  std::filesystem::path folder;
  std::function<void(const std::filesystem::path& dir)> write_folder;
};

// One scored item.
struct ItemResult {
  size_t index = 0;       // index in the split
  double score = 0.0;     // accuracy tasks: 1 or 0; perplexity tasks: the summed log-probability
  bool correct = false;   // accuracy tasks: the primary metric's verdict (script check included)
  std::string prompt;     // the text given to the model (chat-wrapped when the task says so)
  std::string output;     // generated text (cut at a stop string); multiple_choice: the chosen choice
  std::string extracted;  // the answer after the filter pipeline
  std::string target;     // the reference answer (multiple_choice: the gold choice)
  bool answer_matches = false;  // the answer equals the target, before the script check
  double script_share = -1.0;   // share of letters in the required scripts; -1 when not checked
  bool script_ok = true;
  // Log-likelihood tasks: total log-prob (of the chosen choice for multiple_choice), whether every
  // continuation token was the argmax, and the counts perplexities are normalised by.
  double logprob = 0.0;
  bool greedy = false;
  int64_t tokens = 0;
  int64_t bytes = 0;
  int64_t words = 0;
  std::vector<double> choice_logprobs;  // multiple_choice: one per choice
  int pred = -1;                        // multiple_choice: argmax of the primary metric
  int pred_norm = -1;                   // multiple_choice: argmax of logprob / bytes
  // The log-probability of the gold answer (target_delimiter + target; multiple_choice: the gold
  // choice; loglikelihood_rolling: the text) and its token count: a dense signal beside the 0/1
  // verdict (evolve's tie-breaker). Log-likelihood tasks always fill it; generate_until tasks when
  // ScoreOptions::gold_logprob is set (one extra log-likelihood pass). NaN when not computed.
  double gold_logprob = std::numeric_limits<double>::quiet_NaN();
  int64_t gold_tokens = 0;
};

// A task's result on the scored items.
struct TaskScore {
  std::string task;
  std::string split;
  std::string metric;             // the primary metric's name
  bool higher_is_better = true;
  double score = 0.0;             // primary metric (accuracy in [0, 1], or a perplexity)
  Interval ci;                    // its 95% interval (Wilson for accuracies)
  double variance = 0.0;          // of `score`, for weighted totals (p(1-p)/n for accuracies)
  std::map<std::string, double> metrics;  // every metric of the task ("exact_match", "acc_norm", ...)
  size_t requested = 0;           // items asked for
  size_t scored = 0;              // items scored (fewer when the race stopped it)
  bool stopped_early = false;
  bool failed = false;            // external evaluator failed: no score (score is NaN)
  std::string error;              // why it failed
  std::string note;               // chat_template tasks: how the tokenizer rendered the template
  std::vector<ItemResult> items;  // in the order of the requested indices (first `scored` of them)
};

// All tasks of a Scorer, with the weighted total of the accuracy-like tasks.
struct ScoreReport {
  std::vector<TaskScore> tasks;
  double total = 0.0;  // weighted mean of the tasks' primary scores (higher-is-better tasks only)
  Interval total_ci;
  bool failed = false;  // some task failed: `total` is NaN and must not be used as a score
};

// After every micro-batch of a task. Return false to stop scoring this task (a lost race).
struct RaceUpdate {
  size_t task = 0;       // index of the task in the Scorer
  size_t done = 0;       // items scored so far
  size_t total = 0;      // items requested
  double correct = 0.0;  // sum of item scores so far
  std::span<const ItemResult> items;  // the items scored so far
};
using RaceCallback = std::function<bool(const RaceUpdate&)>;

struct ScoreOptions {
  size_t micro_batch = 64;  // items per engine call
  bool keep_text = true;    // fill ItemResult::prompt/output/target (off saves memory in searches)
  bool progress = false;    // a Progress bar (items/s) per task
  bool gold_logprob = false;  // generate_until: also score the gold answer's log-probability
  RaceCallback race;
};

struct TaskEntry {
  std::filesystem::path file;
  double weight = 1.0;
};

class Scorer {
 public:
  // Loads every task (Task::load). `split`, when not empty, overrides each task's test_split.
  explicit Scorer(std::span<const TaskEntry> tasks, std::string split = "");
  Scorer(std::initializer_list<TaskEntry> tasks, std::string split = "");
  // Tasks already loaded.
  Scorer(std::vector<std::shared_ptr<const Task>> tasks, std::vector<double> weights, std::string split = "");

  size_t num_tasks() const { return tasks_.size(); }
  const Task& task(size_t t) const { return *tasks_.at(t); }
  double weight(size_t t) const { return weights_.at(t); }
  const std::string& split(size_t t) const { return splits_.at(t); }
  size_t split_size(size_t t) const;
  // The items of task t's split, 0..n-1, or the first `limit` of them when limit > 0.
  std::vector<size_t> all_items(size_t t, size_t limit = 0) const;
  // `count` distinct items drawn with `seed` (deterministic across runs and machines), sorted.
  std::vector<size_t> sample_items(size_t t, size_t count, uint64_t seed) const;

  // Scores task t on `items` (indices into its split). An external-evaluator task ignores `items`
  // and reports the command's score (or failed=true with the reason).
  TaskScore score_task(size_t t, const Candidate& candidate, std::span<const size_t> items,
                       const ScoreOptions& options = {}) const;
  // Scores every task; items[t] empty means all items of task t.
  ScoreReport score(const Candidate& candidate, const std::vector<std::vector<size_t>>& items = {},
                    const ScoreOptions& options = {}) const;

 private:
  std::vector<std::shared_ptr<const Task>> tasks_;
  std::vector<double> weights_;
  std::vector<std::string> splits_;
};

// `count` distinct indices of [0, n) drawn with `seed` (partial Fisher-Yates over mt19937_64, so
// bit-exact across standard libraries), sorted; all of them when count >= n.
std::vector<size_t> sample_indices(size_t n, size_t count, uint64_t seed);

// Aggregates per-item results into a TaskScore's metrics (used by the scorer; exposed for tests and
// for combining results scored elsewhere, e.g. by distributed workers).
void aggregate_task_score(const Task& task, TaskScore& score);
// The weighted total of tasks' primary scores (accuracy-like tasks only).
void aggregate_report(ScoreReport& report, std::span<const double> weights);

}  // namespace evomerge::eval
