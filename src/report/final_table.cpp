#include "report/final_table.h"

#include <fmt/format.h>

#include <algorithm>

#include "io/files.h"

namespace evomerge::report {

namespace {

using json = nlohmann::json;

std::string task_scores_text(const json& task_scores) {
  std::string s;
  for (auto it = task_scores.begin(); it != task_scores.end(); ++it)
    s += fmt::format("{}{}: {}", s.empty() ? "" : ", ", it.key(),
                     it.value().is_number() ? fmt::format("{:.3f}", it.value().get<double>())
                                            : std::string("-"));
  return s;
}

double number_or(const json& j, double fallback) {
  return j.is_number() ? j.get<double>() : fallback;
}

const FinalResult* winner_row(const std::vector<FinalResult>& rows) {
  for (const auto& r : rows)
    if (r.details.value("winner", false)) return &r;
  return nullptr;
}

}  // namespace

Table final_table(const std::vector<FinalResult>& rows) {
  Table t;
  t.headers = {"model", "split", "score", "95% CI", "tasks"};
  t.align = {Table::Align::Left, Table::Align::Left, Table::Align::Right, Table::Align::Left};
  for (const auto& r : rows)
    t.rows.push_back({r.label, r.split, fmt::format("{:.3f}", r.score),
                      fmt::format("[{:.3f}, {:.3f}]", r.ci_low, r.ci_high),
                      task_scores_text(r.task_scores)});
  return t;
}

Table paired_table(const std::vector<FinalResult>& rows) {
  Table t;
  t.headers = {"comparison", "difference", "95% CI", "items"};
  t.align = {Table::Align::Left, Table::Align::Right, Table::Align::Left, Table::Align::Right};
  const FinalResult* winner = winner_row(rows);
  if (!winner || !winner->details.contains("paired") || !winner->details["paired"].is_object())
    return t;
  const json& paired = winner->details["paired"];
  for (const auto& r : rows) {
    if (&r == winner || !paired.contains(r.label)) continue;
    const json& d = paired[r.label];
    const json ci = d.value("ci", json::array());
    const double lo = ci.is_array() && ci.size() == 2 ? number_or(ci[0], NAN) : NAN;
    const double hi = ci.is_array() && ci.size() == 2 ? number_or(ci[1], NAN) : NAN;
    t.rows.push_back({"winner - " + r.label,
                      fmt::format("{:+.3f}", number_or(d.value("difference", json()), NAN)),
                      fmt::format("[{:+.3f}, {:+.3f}]", lo, hi),
                      fmt::format("{}", d.contains("items") && d["items"].is_number_integer()
                                            ? d["items"].get<int64_t>()
                                            : int64_t{0})});
  }
  return t;
}

std::string results_markdown(const std::vector<FinalResult>& rows, const json& config) {
  std::string s = "# evomerge evolve: final table\n\n" + to_markdown(final_table(rows));
  const Table paired = paired_table(rows);
  if (!paired.rows.empty())
    s += fmt::format("\nPaired differences on the {} split (the same items scored by both):\n\n{}",
                     rows.empty() ? std::string() : rows[0].split, to_markdown(paired));
  // A uniform grid was configured (slerp has none) but no row made it: every point scored 0.
  const json ps = config.value("ps", json::object());
  const json grid = config.value("final", json::object()).value("uniform_grid", json::array());
  const bool has_uniform = std::any_of(
      rows.begin(), rows.end(), [](const FinalResult& r) { return r.kind == FinalKind::Uniform; });
  if (ps.is_object() && !ps.empty() && ps.value("method", std::string()) != "slerp" &&
      grid.is_array() && !grid.empty() && !has_uniform) {
    std::string selection = "the selection items";
    for (const auto& r : rows)
      if (r.details.contains("selected_on") && r.details["selected_on"].is_string())
        selection = r.details["selected_on"].get<std::string>();
    s += fmt::format("\nNo best uniform merge: every grid point scores 0 on {}.\n", selection);
  }
  return s;
}

std::filesystem::path write_results_markdown(const RunStore& store,
                                             const std::filesystem::path& run_dir) {
  if (!store.final_stage("complete")) return {};
  const auto path = run_dir / "results.md";
  write_file_atomic(path, results_markdown(store.final_results(), store.info().config));
  return path;
}

}  // namespace evomerge::report
