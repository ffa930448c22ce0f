// External evaluators: a command that scores a model folder and prints a JSON object with the score
// (lm-eval-harness, vLLM, a human rating tool...). Run with fork/exec, no shell: argv is the task's
// command with the model folder appended; the working directory is the task file's folder (so
// `python3 my_eval.py` finds a script next to the YAML); stdin is /dev/null; the command runs in its
// own process group, which is killed (SIGKILL) at the timeout.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "eval/task.h"

namespace evomerge::eval {

struct ExternalResult {
  bool ok = false;            // a score was read; otherwise `error` says why, and there is no score
  double score = 0.0;
  nlohmann::json output;      // the JSON object the command printed (when one was found)
  std::string error;          // "timed out after 5 s", "exited with status 3", "printed no JSON object", ...
  std::string stderr_tail;    // the last few KiB of its stderr (also quoted in `error`)
  int exit_status = -1;       // exit code, or -signal
  bool timed_out = false;
  double seconds = 0.0;
};

// Runs the evaluator on `model_dir` (made absolute). Never throws for the command's own failures:
// they come back as ok=false. Reads at most 16 MiB of stdout; keeps the last 8 KiB of stderr.
ExternalResult run_external(const ExternalEvaluator& evaluator, const std::filesystem::path& model_dir,
                            const std::filesystem::path& working_dir);

// Finds the score in a command's stdout: the whole output as one JSON object, else the last line
// that is one. The score is the number under `score_key`, or the only number in the object.
// Returns false and sets *error when there is none.
bool parse_external_output(std::string_view stdout_text, const std::string& score_key, double* score,
                           nlohmann::json* object, std::string* error);

}  // namespace evomerge::eval
