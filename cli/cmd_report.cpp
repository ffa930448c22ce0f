// evomerge report --run DIR [-o report.html] [--watch]: the run's report as one self-contained HTML
// file (inline SVG, no network), read from the run store only; --watch rewrites it whenever a
// generation is added, until the run is complete.
#include <fmt/format.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "command.h"
#include "common/progress.h"
#include "report/report.h"

namespace evomerge::cli {
namespace {

struct ReportCliOptions {
  std::string run;
  std::string output;
  bool watch = false;
  double interval = 5;
  bool json = false;
};

void print_result(const report::WrittenReport& w, bool json) {
  if (json) {
    nlohmann::json j = {
        {"report", w.html.string()},
        {"results", w.markdown.empty() ? nlohmann::json() : nlohmann::json(w.markdown.string())},
        {"complete", w.data.complete},
        {"status", w.data.status},
        {"generations", w.data.generations_done},
        {"generations_planned", w.data.generations_planned}};
    fmt::print("{}\n", j.dump(2));
    return;
  }
  fmt::print("report: {}\n", w.html.string());
  if (!w.markdown.empty()) fmt::print("final table: {}\n", w.markdown.string());
}

int run_report(const ReportCliOptions& opt) {
  const std::filesystem::path run_dir(opt.run);
  auto written = report::write_report(run_dir, opt.output);
  if (opt.watch && !written.data.complete) {
    // One bar over all phases' generations; rewritten (atomically) whenever the store moves.
    Progress progress("report --watch", static_cast<uint64_t>(written.data.generations_planned),
                      "gen");
    progress.add(static_cast<uint64_t>(written.data.generations_done));
    progress.set_note(written.data.status);
    int64_t shown = written.data.generations_done;
    while (!written.data.complete) {
      std::this_thread::sleep_for(
          std::chrono::milliseconds(static_cast<int64_t>(opt.interval * 1000)));
      written = report::write_report(run_dir, opt.output);
      progress.set_total(static_cast<uint64_t>(written.data.generations_planned));
      progress.set_note(written.data.status);
      if (written.data.generations_done > shown) {
        progress.add(static_cast<uint64_t>(written.data.generations_done - shown));
        shown = written.data.generations_done;
      } else {
        progress.add(0);
      }
    }
    progress.finish();
  }
  print_result(written, opt.json);
  return 0;
}

const bool registered = register_command(
    {"report",
     "Write a run's report: one self-contained HTML page (fitness, recipe, layer path, final "
     "comparison)",
     [](CLI::App& app) -> Runner {
       auto opt = std::make_shared<ReportCliOptions>();
       app.add_option("--run", opt->run, "Run folder (made by evomerge evolve)")->required();
       app.add_option("-o,--output", opt->output, "HTML file to write (default: RUN/report.html)");
       app.add_flag("--watch", opt->watch,
                    "Rewrite the report as the search runs, until the run is complete");
       app.add_option("--interval", opt->interval, "Seconds between checks with --watch")
           ->default_val(5)
           ->check(CLI::Range(0.1, 3600.0));
       app.add_flag("--json", opt->json, "Print where the files are and the run's state as JSON");
       return [opt] { return run_report(*opt); };
     }});

}  // namespace
}  // namespace evomerge::cli
