#include "report/final_table.h"

#include <fmt/format.h>

namespace evomerge::report {

std::string format_final_table(const std::vector<FinalResult>& rows) {
  std::string s = "| model | split | score | 95% CI | tasks |\n|---|---|---|---|---|\n";
  for (const auto& r : rows) {
    std::string tasks;
    for (auto it = r.task_scores.begin(); it != r.task_scores.end(); ++it)
      tasks += fmt::format("{}{}: {}", tasks.empty() ? "" : ", ", it.key(),
                           it.value().is_number() ? fmt::format("{:.3f}", it.value().get<double>())
                                                  : std::string("-"));
    s += fmt::format("| {} | {} | {:.3f} | [{:.3f}, {:.3f}] | {} |\n", r.label, r.split, r.score,
                     r.ci_low, r.ci_high, tasks);
  }
  return s;
}

}  // namespace evomerge::report
