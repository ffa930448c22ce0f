#include "report/html.h"

#include <fmt/format.h>

#include <cmath>

#include "common/progress.h"
#include "report/final_table.h"
#include "report/html_charts.h"
#include "report/svg.h"

namespace evomerge::report {

namespace {

constexpr const char* kStyle = R"css(
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",sans-serif;margin:24px auto;max-width:1100px;color:#222;padding:0 16px}
h1{font-size:1.5em;margin-bottom:4px} h2{font-size:1.15em;margin-top:32px;border-bottom:1px solid #ddd;padding-bottom:4px}
.status{display:inline-block;padding:2px 8px;border-radius:4px;background:#eee} .status.complete{background:#d8f0d8}
table{border-collapse:collapse;font-size:.9em} td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums} pre{background:#f6f6f6;padding:8px;overflow-x:auto;font-size:.85em}
.chart{max-width:100%;height:auto;display:block;margin:8px 0} .chart .grid{stroke:#eee} .chart .tick,.chart .legend{font-size:11px;fill:#444}
.chart .axis-label{font-size:12px;fill:#222} .chart .cell{font-size:10px} .chart .winner{font-weight:bold} .note{color:#555;font-size:.9em}
)css";

std::string fmt_num(double v, int decimals = 4) {
  return std::isfinite(v) ? fmt::format("{:.{}f}", v, decimals) : "-";
}

std::string header(const ReportData& d) {
  std::string s = fmt::format(
      "<h1>evomerge run report</h1>\n<p><code>{}</code> &nbsp; <span "
      "class=\"status{}\">{}</span></p>\n",
      escape(d.run_dir.string()), d.complete ? " complete" : "", escape(d.status));
  s += fmt::format(
      "<p class=\"note\">created {} by evomerge {}, seed {}, config {}.{}</p>\n",
      escape(d.info.created), escape(d.info.evomerge_version), d.info.seed,
      escape(d.info.config_hash),
      d.complete ? "" : " This page reloads itself every 10 s while the run is not complete.");
  return s;
}

std::string fitness_section(const ReportData& d) {
  std::string s =
      "<h2>Fitness by generation</h2>\n<p class=\"note\">Fitness is the weighted task score on the "
      "generation's items of the optimisation split (higher is better). Lines: the best and median "
      "candidate of each generation and the best so far; band: the middle half of the population "
      "(quartiles); sigma, CMA-ES's step size, on the right axis.</p>\n";
  for (const auto& p : d.panels) {
    s += fmt::format("<h3>{}</h3>\n", escape(p.title));
    s += p.series.empty() || p.series[0].points.empty()
             ? "<p class=\"note\">no generation stored yet</p>\n"
             : fitness_svg(p);
  }
  return s;
}

std::string recipe_sections(const ReportData& d) {
  std::string s;
  if (d.heatmap) {
    s += fmt::format(
        "<h2>Best PS recipe</h2>\n<p class=\"note\">{}: each merge parameter per layer group and "
        "per source model.</p>\n",
        escape(d.heatmap->source));
    s += heatmap_svg(*d.heatmap);
  }
  if (d.path) {
    s += fmt::format(
        "<h2>DFS layer path</h2>\n<p class=\"note\">{}: the sequence of (model, layer) hops, "
        "coloured by source model, each with the scale applied to its input; above it, model A's "
        "plain path.</p>\n",
        escape(d.path->source));
    s += path_svg(*d.path);
  }
  return s;
}

std::string final_section(const ReportData& d) {
  if (!d.final_chart)
    return "<h2>Final comparison</h2>\n<p class=\"note\">not yet: the final table is written when "
           "every phase has finished.</p>\n";
  const auto& c = *d.final_chart;
  std::string s = fmt::format(
      "<h2>Final comparison on the held-out {} split</h2>\n<p class=\"note\">Every model scored on "
      "the same held-out items; bars with 95% intervals. The winner was selected on the "
      "optimisation split only.</p>\n",
      escape(c.split));
  s += final_svg(c);
  if (c.paired) {
    const auto& p = *c.paired;
    s += fmt::format(
        "<p><b>Paired difference</b>, {} minus the best parent ({}), on the same {} items: "
        "<b>{:+.4f}</b>, 95% interval [{:+.4f}, {:+.4f}]{}.</p>\n",
        escape(p.winner), escape(p.parent), p.items, p.diff, p.lo, p.hi,
        p.lo > 0   ? " (the winner is better)"
        : p.hi < 0 ? " (the parent is better)"
                   : " (not distinguishable at this size)");
    s += paired_svg(c);
  }
  s += "<h3>Final table</h3>\n" + to_html(final_table(d.final_rows));
  return s;
}

std::string tables(const ReportData& d) {
  std::string s =
      "<h2>Top "
      "candidates</h2>\n<table><tr><th>phase</th><th>gen</th><th>#</th><th>fitness</th><th>recipe</"
      "th></tr>\n";
  for (const auto& t : d.top)
    s += fmt::format(
        "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td "
        "class=\"num\">{}</td><td>{}</td></tr>\n",
        escape(t.phase), t.generation, t.index, fmt_num(t.fitness), escape(t.recipe));
  s += "</table>\n<h2>Timings</h2>\n<table><tr><th>phase</th><th>generations</th><th>evaluations</"
       "th><th>wall (evaluation)</th><th>merging</th><th>scoring</th><th>state</th></tr>\n";
  for (const auto& t : d.timings)
    s += fmt::format(
        "<tr><td>{}</td><td class=\"num\">{} / {}</td><td class=\"num\">{}</td><td "
        "class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>\n",
        escape(t.phase), t.generations, t.planned, t.evaluations, format_duration(t.wall_seconds),
        format_duration(t.merge_seconds), format_duration(t.eval_seconds),
        t.done ? "done" : "running or paused");
  s += "</table>\n<h2>Reproduce</h2>\n";
  for (const auto& [what, cmd] : d.commands)
    s += fmt::format("<p class=\"note\">{}</p><pre>{}</pre>\n", escape(what), escape(cmd));
  if (!d.artifacts.empty()) {
    s += "<p>Files of the run:</p><ul>\n";
    for (const auto& [kind, path] : d.artifacts)
      s += fmt::format("<li>{}: <code>{}</code></li>\n", escape(kind), escape(path));
    s += "</ul>\n";
  }
  s += fmt::format(
      "<h2>Run config</h2>\n<pre>{}</pre>\n<h2>Machine</h2>\n<p>{}</p>\n",
      escape(d.info.config_text),
      escape(d.info.machine.empty() ? "not recorded (a run made before schema version 2)"
                                    : d.info.machine));
  return s;
}

}  // namespace

std::string render_html(const ReportData& d) {
  std::string s = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n";
  if (!d.complete) s += "<meta http-equiv=\"refresh\" content=\"10\">\n";
  s += fmt::format("<title>evomerge report: {}</title>\n<style>{}</style></head><body>\n",
                   escape(d.run_dir.string()), kStyle);
  s += header(d) + fitness_section(d) + recipe_sections(d) + final_section(d) + tables(d);
  return s + "</body></html>\n";
}

}  // namespace evomerge::report
