// The final table as Markdown (results.md and the terminal): label, split, score with its 95%
// interval, per-task scores.
#pragma once

#include <string>
#include <vector>

#include "store/run_store.h"

namespace evomerge::report {

std::string format_final_table(const std::vector<FinalResult>& rows);

}  // namespace evomerge::report
