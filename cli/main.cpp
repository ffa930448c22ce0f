// evomerge: merge open-weight LLMs and evolve merge recipes. Thin front end over libevomerge.
#include <algorithm>
#include <cstdio>
#include <map>

#include "command.h"
#include "common/error.h"
#include "common/progress.h"
#include "infer/kernel_info.h"

namespace evomerge::cli {

std::vector<CommandSpec>& command_table() {
  static std::vector<CommandSpec> table;
  return table;
}

bool register_command(CommandSpec spec) {
  command_table().push_back(std::move(spec));
  return true;
}

}  // namespace evomerge::cli

int main(int argc, char** argv) {
  using namespace evomerge::cli;
  CLI::App app{"evomerge: merge language models and evolve merge recipes (PS, DFS, PS+DFS)", "evomerge"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "evomerge 0.1.0");
  bool quiet = false;
  app.add_flag("-q,--quiet", quiet, "No progress bars");
  bool verbose = false;
  app.add_flag("-v,--verbose", verbose, "Log the CPU kernels the engine uses");

  auto& table = command_table();
  std::sort(table.begin(), table.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  std::map<CLI::App*, Runner> runners;
  for (auto& spec : table) {
    CLI::App* sub = app.add_subcommand(spec.name, spec.help);
    runners[sub] = spec.setup(*sub);
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  evomerge::Progress::set_global_enabled(!quiet);
  try {
    if (verbose) std::fprintf(stderr, "evomerge: %s\n", evomerge::cpu_kernel_summary().c_str());
    for (auto& [sub, runner] : runners)
      if (sub->parsed()) return runner();
  } catch (const evomerge::Error& e) {
    std::fprintf(stderr, "evomerge: error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "evomerge: error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    // Safety net: library code reports outside-input problems as evomerge::Error; anything else
    // (a std::filesystem error, say) still becomes one line and status 1, never terminate().
    std::fprintf(stderr, "evomerge: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
