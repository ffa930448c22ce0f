#include "report/eval_table.h"

#include <fmt/format.h>

#include <cmath>

#include "report/table.h"

namespace evomerge::report {

namespace {

std::string pct(double x) {
  return std::isnan(x) ? "-" : fmt::format("{:.2f}%", 100 * x);
}

// Accuracies as percentages; perplexities and bits per byte as plain numbers.
std::string score_text(const eval::TaskScore& s) {
  return s.higher_is_better ? pct(s.score) : fmt::format("{:.4f}", s.score);
}

std::string ci_text(const eval::TaskScore& s) {
  if (s.failed || std::isnan(s.score)) return "";
  if (s.higher_is_better) return fmt::format("[{}, {}]", pct(s.ci.lo), pct(s.ci.hi));
  return fmt::format("[{:.4f}, {:.4f}]", s.ci.lo, s.ci.hi);
}

std::string metric_text(const std::string& name, double v) {
  const bool plain = name.find("perplexity") != std::string::npos || name == "bits_per_byte";
  return plain ? fmt::format("{:.4f}", v) : pct(v);
}

}  // namespace

std::string eval_table_text(const std::string& candidate, const eval::ScoreReport& rep,
                            const std::vector<EvalTableTask>& tasks,
                            const std::string& items_file) {
  using A = Table::Align;
  Table t;
  t.headers = {"task", "split", "n", "weight", "metric", "score", "95% CI"};
  t.align = {A::Left, A::Left, A::Right, A::Right, A::Left, A::Right, A::Left};
  for (size_t i = 0; i < rep.tasks.size(); ++i) {
    const auto& s = rep.tasks[i];
    const EvalTableTask info = i < tasks.size() ? tasks[i] : EvalTableTask{};
    const std::string weight = fmt::format("{:g}", info.weight);
    if (s.failed) {
      t.rows.push_back({s.task, s.split, "-", weight, s.metric, "FAILED", s.error});
      continue;
    }
    t.rows.push_back({s.task, info.external ? "-" : s.split,
                      info.external ? "-" : std::to_string(s.scored), weight, s.metric,
                      score_text(s), ci_text(s)});
    for (const auto& [name, v] : s.metrics)
      if (name != s.metric) t.rows.push_back({"", "", "", "", name, metric_text(name, v), ""});
  }
  std::string out = fmt::format("candidate  {}\n\n{}", candidate, to_text(t));
  if (rep.tasks.size() > 1) {
    if (rep.failed)
      out += "\ntotal: none (a task failed; a failed evaluation is never a score)\n";
    else if (!std::isnan(rep.total))
      out += fmt::format("\ntotal (weighted mean of accuracy tasks) {}  95% CI [{}, {}]\n",
                         pct(rep.total), pct(rep.total_ci.lo), pct(rep.total_ci.hi));
  }
  for (const auto& s : rep.tasks)
    if (!s.note.empty()) out += fmt::format("\nnote ({}): {}\n", s.task, s.note);
  if (!items_file.empty()) out += fmt::format("\nper-item results: {}\n", items_file);
  return out;
}

}  // namespace evomerge::report
