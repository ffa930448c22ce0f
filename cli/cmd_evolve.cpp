// evomerge evolve CONFIG.yml --run DIR: evolutionary model merging (PS, DFS, PS+DFS) with CMA-ES,
// resumable from the run folder's database (docs/run-store.md).
#include <fmt/format.h>

#include <filesystem>

#include "command.h"
#include "dist/distributed.h"
#include "evolve/evolve_config.h"
#include "evolve/evolve_run.h"
#include "infer/engine.h"
#include "io/files.h"

namespace evomerge::cli {
namespace {

struct EvolveOptions {
  std::string config;
  std::string run;
  int64_t stop_after = 0;
  std::string device;  // empty: the config's `device` (default cpu)
};

int run_evolve_command(const EvolveOptions& opt) {
  const std::filesystem::path config_path(opt.config);
  EvolveConfig cfg = load_evolve_config(config_path);
  // A device other than cpu is part of the run's identity (EvolveConfig::to_json).
  if (!opt.device.empty()) cfg.device = canonical_device(opt.device);
  EvolveRunOptions ro;
  ro.run_dir = opt.run;
  ro.config_text = read_text_file(config_path, 1u << 20);
  ro.stop_after_generations = opt.stop_after;
  // Under mpirun / srun with several ranks: rank 0 coordinates and reports, every rank scores.
  EvolveSummary s;
  if (launcher_world_size() > 1) {
    DistributedResult d = run_evolve_mpi(cfg, ro);
    if (d.rank != 0) return 0;
    s = std::move(d.summary);
  } else {
    s = run_evolve(cfg, ro);
  }
  if (!s.complete) {
    fmt::print("paused; run the same command again to continue from {}\n",
               (ro.run_dir / "run.db").string());
    return 0;
  }
  fmt::print("\n{}\n", format_final_table(s.table));
  for (const auto& [kind, path] : s.artifacts) fmt::print("{:<10} {}\n", kind, path);
  return 0;
}

const bool registered = register_command(
    {"evolve", "Evolve a merge recipe with CMA-ES (parameter space, data-flow space, or both)",
     [](CLI::App& app) -> Runner {
       auto opt = std::make_shared<EvolveOptions>();
       app.add_option("config", opt->config,
                      "Evolution config (YAML; see src/evolve/evolve_config.h)")
           ->required();
       app.add_option("--run", opt->run, "Run folder (created, or resumed when it exists)")
           ->required();
       app.add_option("--device", opt->device,
                      "Where candidates are scored: cpu, cuda or cuda:N (overrides the config)");
       app.add_option("--stop-after", opt->stop_after,
                      "Pause each phase after this many generations in this call (resume later)");
       return [opt] { return run_evolve_command(*opt); };
     }});

}  // namespace
}  // namespace evomerge::cli
