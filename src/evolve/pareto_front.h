// The Pareto front of a multi-objective PS run (ps.objective: pareto; the search: evolve/pareto.h),
// built once the search has finished:
//  1. the searched candidates not dominated on the scores they got during the search (each
//     generation scored its own items, so this is a coarse pre-filter), distinct genomes, at most
//     `max_members` (those with the best mean objective);
//  2. those re-scored on the selection items (the same items for all: comparable) and filtered
//     again: the front;
//  3. the front scored on the test split.
// Stored in the run store's pareto_front table and reused when a finished run is resumed.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "evolve/search_context.h"
#include "evolve/work.h"
#include "store/run_store.h"

namespace evomerge {

std::vector<ParetoMember> build_pareto_front(RunStore& store, const SearchContext& context,
                                             WorkRunner& runner, size_t max_members,
                                             const std::function<void(const std::string&)>& log);

// A Markdown table: one row per member, its per-task scores on the selection items and the test
// split (columns in the order of `tasks`).
std::string format_pareto_table(const std::vector<ParetoMember>& front,
                                const std::vector<std::string>& tasks,
                                const std::string& selection_name, const std::string& test_name);

}  // namespace evomerge
