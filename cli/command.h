// The subcommand table. Each cmd_*.cpp registers one subcommand at static-initialisation time:
//
//   static const bool registered = evomerge::cli::register_command({"inspect", "Describe a model",
//       [](CLI::App& app) -> evomerge::cli::Runner { auto opts = ...; app.add_option(...); return [opts] { ...; return 0; }; }});
//
// setup() declares the options on the subcommand and returns the function that runs it; main()
// parses, runs the chosen one, and turns evomerge::Error into one line on stderr and exit status 1.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

namespace evomerge::cli {

using Runner = std::function<int()>;

struct CommandSpec {
  std::string name;
  std::string help;
  std::function<Runner(CLI::App&)> setup;
};

bool register_command(CommandSpec spec);
std::vector<CommandSpec>& command_table();

}  // namespace evomerge::cli
