// The final table of a run (every row scored on the held-out split) and the paired differences of
// the winner, from the rows the run store keeps: one formatter (report/table.h) behind results.md,
// the terminal at the end of `evomerge evolve`, and the report page.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <vector>

#include "report/table.h"
#include "store/run_store.h"

namespace evomerge::report {

// model | split | score | 95% CI | tasks (scores with 3 decimals, tasks as "name: score, ...").
Table final_table(const std::vector<FinalResult>& rows);

// comparison | difference | 95% CI | items: the winner row's stored paired differences
// (details.paired, keyed by the other row's label), in the order of those rows in the table.
Table paired_table(const std::vector<FinalResult>& rows);

// results.md: the final table, the paired differences, and a note when the config asked for a
// uniform grid but no uniform row exists (every grid point scored 0). `config` is the run's
// canonical config (RunInfo::config).
std::string results_markdown(const std::vector<FinalResult>& rows, const nlohmann::json& config);

// Writes results.md into `run_dir` (atomically) from the store's final rows; returns its path, or
// an empty path when the store has no final table yet (nothing written).
std::filesystem::path write_results_markdown(const RunStore& store,
                                             const std::filesystem::path& run_dir);

}  // namespace evomerge::report
