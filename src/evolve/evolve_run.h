// A whole `evomerge evolve` run: check everything (tasks, splits, models, architectures, the run
// folder's config) before any work; PS search; its finalists (the best few candidates and the final
// distribution mean) re-scored on the selection items (the validation part of the opt split when
// `validation_items` is set, else the whole opt split) to pick the winner; DFS search (with the PS
// winner as model A when configured); the same for DFS, whose start (model A's plain path) is a
// finalist too; the run's winner is the phase winner with the higher selection score (PS on a
// tie). Then the final table on the held-out test split with the parents and the best uniform
// merge of a small grid beside them (none when every grid point scores 0), with 95% intervals, the
// winner marked, and paired differences (winner vs best parent, vs best uniform merge); outputs
// (recipe YAML, model folders) in the run folder, all recorded in the run store; the report stage
// turns the stored final table into results.md and report.html (report/report.h).
// Interrupted runs resume where they stopped (finished phases are not re-run). docs/evolve.md.
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "evolve/evolve_config.h"
#include "evolve/search.h"
#include "evolve/work.h"
#include "store/run_store.h"

namespace evomerge {

struct EvolveRunOptions {
  std::filesystem::path run_dir;
  std::string config_text;             // as written, stored for humans
  int64_t stop_after_generations = 0;  // per phase and call (time boxing, tests); 0: run to the end
  bool progress = true;
  // Resume even when a model folder or task file changed since the run started (the changes are
  // logged and recorded in the store); without it such a resume is refused, naming what changed.
  bool allow_changed_inputs = false;
  std::function<void(const std::string&)> log;  // one line per event; default: stderr
};

struct EvolveSummary {
  bool complete = false;  // every phase finished and the final table written
  std::optional<PhaseOutcome> ps, dfs;
  std::vector<FinalResult> table;
  std::vector<std::pair<std::string, std::string>> artifacts;
};

EvolveSummary run_evolve(const EvolveConfig& config, const EvolveRunOptions& options);
// The same with a context already built and the scoring done by `runner` (the MPI coordinator hands
// the jobs to its ranks, dist/). Owns the run store and every output.
EvolveSummary run_evolve_with(const SearchContext& context, WorkRunner& runner,
                              const EvolveRunOptions& options);

}  // namespace evomerge
