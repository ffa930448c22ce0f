// evomerge: merge open-weight LLMs and evolve merge recipes. Thin front end over libevomerge.
#include <fmt/format.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <map>
#include <string>
#include <string_view>

#include "command.h"
#include "common/error.h"
#include "common/progress.h"
#include "common/text.h"
#include "infer/kernel_info.h"
#include "suggest.h"

namespace evomerge::cli {

std::vector<CommandSpec>& command_table() {
  static std::vector<CommandSpec> table;
  return table;
}

bool register_command(CommandSpec spec) {
  command_table().push_back(std::move(spec));
  return true;
}

namespace {

// The command word: the first argument that is not an option (the top level's options are all
// flags, so none takes a value); "" when there is none.
std::string command_word(int argc, char** argv) {
  for (int i = 1; i < argc; ++i)
    if (argv[i][0] != '-') return argv[i];
  return "";
}

// A command word that names no command: one line saying so, with the closest command when it is
// close enough to be a typo, else the list (CLI11 alone says "A subcommand is required", as if
// none had been given). Returns whether it printed one.
bool report_unknown_command(CLI::App& app, int argc, char** argv) {
  const std::string word = command_word(argc, argv);
  std::vector<std::string> names;
  for (auto* sub : app.get_subcommands({})) names.push_back(sub->get_name());
  if (word.empty() || std::find(names.begin(), names.end(), word) != names.end()) return false;
  const std::string quoted = evomerge::printable(word);
  if (auto s = closest_name(word, names); !s.empty())
    std::fprintf(stderr,
                 "evomerge: unknown command '%s'; did you mean '%s'? (evomerge --help lists the "
                 "commands)\n",
                 quoted.c_str(), s.c_str());
  else
    std::fprintf(stderr, "evomerge: unknown command '%s' (commands: %s; evomerge --help)\n",
                 quoted.c_str(), fmt::format("{}", fmt::join(names, ", ")).c_str());
  return true;
}

// After a parse error: "did you mean" the closest option of the chosen subcommand, when the
// mistyped word is close to one.
void print_suggestion(CLI::App& app, int argc, char** argv) {
  std::map<std::string, CLI::App*> by_name;
  for (auto* sub : app.get_subcommands({})) by_name[sub->get_name()] = sub;
  CLI::App* chosen = nullptr;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (!chosen && !arg.empty() && arg[0] != '-') {
      chosen = by_name.count(arg) ? by_name[arg] : nullptr;
      if (!chosen) return;
      continue;
    }
    if (!chosen || arg.rfind("--", 0) != 0 || arg == "--") continue;
    const std::string name = arg.substr(0, arg.find('='));
    if (chosen->get_option_no_throw(name)) continue;
    std::vector<std::string> flags;
    for (const auto* opt : chosen->get_options())
      for (const auto& l : opt->get_lnames()) flags.push_back("--" + l);
    if (auto s = closest_name(name, flags); !s.empty()) {
      std::fprintf(stderr, "evomerge: did you mean '%s'? (evomerge %s --help lists its options)\n",
                   s.c_str(), chosen->get_name().c_str());
      return;
    }
  }
}

}  // namespace
}  // namespace evomerge::cli

int main(int argc, char** argv) {
  using namespace evomerge::cli;
  // A write past `ulimit -f` would kill the process by SIGXFSZ with no message; ignored, the write
  // fails with EFBIG, which io/files.h reports as "file too large" naming the file.
  std::signal(SIGXFSZ, SIG_IGN);
  CLI::App app{"evomerge: merge language models and evolve merge recipes (PS, DFS, PS+DFS)",
               "evomerge"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "evomerge 0.1.0");
  bool quiet = false;
  app.add_flag("-q,--quiet", quiet, "No progress bars");
  bool verbose = false;
  app.add_flag("-v,--verbose", verbose, "Log the CPU kernels the engine uses");

  auto& table = command_table();
  std::sort(table.begin(), table.end(),
            [](const auto& a, const auto& b) { return a.name < b.name; });
  std::map<CLI::App*, Runner> runners;
  for (auto& spec : table) {
    CLI::App* sub = app.add_subcommand(spec.name, spec.help);
    runners[sub] = spec.setup(*sub);
    // -q works after the subcommand too: `evomerge evolve -q ...` as `evomerge -q evolve ...`.
    if (!sub->get_option_no_throw("--quiet"))
      sub->add_flag("-q,--quiet", quiet, "No progress bars");
  }
  if (report_unknown_command(app, argc, argv)) return 2;
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int status = app.exit(e) == 0 ? 0 : 2;
    if (status != 0) print_suggestion(app, argc, argv);
    return status;
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
