// evomerge evolve CONFIG.yml --run DIR [--json]: evolutionary model merging (PS, DFS, PS+DFS) with
// CMA-ES, resumable from the run folder's database (docs/run-store.md). Every call ends by writing
// the run's report (report.html, and results.md once the final table exists) from the store.
#include <fmt/format.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "command.h"
#include "common/interrupt.h"
#include "dist/distributed.h"
#include "evolve/evolve_config.h"
#include "evolve/evolve_run.h"
#include "infer/engine.h"
#include "io/files.h"
#include "report/final_table.h"
#include "report/report.h"

namespace evomerge::cli {
namespace {

struct EvolveOptions {
  std::string config;
  std::string run;
  int64_t stop_after = 0;
  std::string device;  // empty: the config's `device` (default cpu)
  bool json = false;
  bool allow_changed_inputs = false;
};

// The result for scripts: state, the final table's rows (kind, label, score, interval), the files.
void print_json(const EvolveSummary& s, const report::WrittenReport& w) {
  nlohmann::json j = {
      {"complete", s.complete}, {"status", w.data.status}, {"report", w.html.string()}};
  j["results"] = w.markdown.empty() ? nlohmann::json() : nlohmann::json(w.markdown.string());
  j["table"] = nlohmann::json::array();
  for (const auto& r : s.table)
    j["table"].push_back({{"kind", final_kind_name(r.kind)},
                          {"phase", r.phase},
                          {"label", r.label},
                          {"split", r.split},
                          {"score", r.score},
                          {"ci95", {r.ci_low, r.ci_high}},
                          {"tasks", r.task_scores}});
  j["artifacts"] = nlohmann::json::object();
  for (const auto& [kind, path] : s.artifacts) j["artifacts"][kind] = path;
  fmt::print("{}\n", j.dump(2));
}

int run_evolve_command(const EvolveOptions& opt) {
  const std::filesystem::path config_path(opt.config);
  EvolveConfig cfg = load_evolve_config(config_path);
  // A device other than cpu is part of the run's identity (EvolveConfig::to_json).
  if (!opt.device.empty()) cfg.device = canonical_device(opt.device);
  EvolveRunOptions ro;
  ro.run_dir = opt.run;
  ro.config_text = read_text_file(config_path, 1u << 20);
  ro.stop_after_generations = opt.stop_after;
  ro.allow_changed_inputs = opt.allow_changed_inputs;
  install_interrupt_handlers();  // polled by the search after each committed generation
  // Under mpirun / srun with several ranks: rank 0 coordinates and reports, every rank scores.
  EvolveSummary s;
  if (launcher_world_size() > 1) {
    DistributedResult d = run_evolve_mpi(cfg, ro);
    if (d.rank != 0) return d.stopped ? 1 : 0;
    s = std::move(d.summary);
  } else {
    s = run_evolve(cfg, ro);
  }
  if (interrupt_requested() && !s.complete) {
    std::string kept;
    for (const auto& [name, phase] : {std::pair{"ps", &s.ps}, std::pair{"dfs", &s.dfs}})
      if (*phase)
        kept += fmt::format("{}{}: {} generations ({} evaluations)", kept.empty() ? "" : ", ", name,
                            (*phase)->generations, (*phase)->evaluations);
    fmt::print(stderr,
               "evomerge: interrupted; kept in {}: {}; run the same command to resume: evomerge "
               "evolve {} --run {}\n",
               (ro.run_dir / "run.db").string(), kept.empty() ? "the run's inputs" : kept,
               opt.config, opt.run);
    return interrupt_exit_status();
  }
  const report::WrittenReport w = report::write_report(ro.run_dir);
  if (opt.json) {
    print_json(s, w);
    return 0;
  }
  if (!s.complete) {
    fmt::print("paused; run the same command again to continue from {}\nreport so far: {}\n",
               (ro.run_dir / "run.db").string(), w.html.string());
    return 0;
  }
  // The final table as aligned text (the same formatter as results.md), then where things are.
  fmt::print("\n{}", report::to_text(report::final_table(s.table)));
  if (const auto paired = report::paired_table(s.table); !paired.rows.empty())
    fmt::print("\npaired on the same {} items:\n{}", s.table[0].split, report::to_text(paired));
  fmt::print("\n");
  for (const auto& [kind, path] : s.artifacts) fmt::print("{:<10} {}\n", kind, path);
  if (!w.markdown.empty()) fmt::print("{:<10} {}\n", "results", w.markdown.string());
  fmt::print("{:<10} {}\n", "report", w.html.string());
  return 0;
}

const bool registered = register_command(
    {"evolve", "Evolve a merge recipe with CMA-ES (parameter space, data-flow space, or both)",
     [](CLI::App& app) -> Runner {
       auto opt = std::make_shared<EvolveOptions>();
       app.add_option(
              "config", opt->config,
              "Evolution config (YAML; every key with its default and bounds: docs/evolve.md)")
           ->required();
       app.add_option("--run", opt->run, "Run folder (created, or resumed when it exists)")
           ->required();
       app.add_option("--device", opt->device,
                      "Where candidates are scored: cpu, cuda or cuda:N (overrides the config)");
       app.add_flag("--allow-changed-inputs", opt->allow_changed_inputs,
                    "Resume although model weights or task files changed since the run started "
                    "(recorded in the run store)");
       app.add_option("--stop-after", opt->stop_after,
                      "Pause each phase after this many generations in this call (resume later)");
       app.add_flag("--json", opt->json,
                    "Print the result as JSON (state, final table with kinds, files) for scripts");
       app.footer(
           "Config keys, defaults and bounds: docs/evolve.md. The run's report: RUN/report.html "
           "(evomerge report --run RUN [--watch]).");
       return [opt] { return run_evolve_command(*opt); };
     }});

}  // namespace
}  // namespace evomerge::cli
