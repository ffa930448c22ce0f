// `evomerge eval`'s result for people: per task its split, items, weight, primary metric, score
// with its 95% interval and the task's other metrics, then the weighted total and the notes, laid
// out by the one table formatter (report/table.h).
#pragma once

#include <string>
#include <vector>

#include "eval/scorer.h"

namespace evomerge::report {

struct EvalTableTask {
  double weight = 1;
  bool external = false;  // scored by an external evaluator: no split or item count of ours
};

// `tasks` is parallel to `report.tasks`; `items_file` is the --output JSONL path (empty: none).
std::string eval_table_text(const std::string& candidate, const eval::ScoreReport& report,
                            const std::vector<EvalTableTask>& tasks, const std::string& items_file);

}  // namespace evomerge::report
