// Test helper (include from cli/*_test.cpp only): runs the evomerge binary built by this tree.
#pragma once

#include <fmt/format.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "io/test_support.h"

#ifndef EVOMERGE_CLI
#error "EVOMERGE_CLI (path of the evomerge binary) must be defined by the build"
#endif

namespace evomerge::testing {

struct CliResult {
  int status = -1;
  std::string out, err;
};

// Runs `command` through /bin/sh; stdout and stderr are kept in files under `io`.
inline CliResult run_shell(const std::string& command, const std::filesystem::path& io) {
  static int n = 0;
  const auto out = io / fmt::format("out{}", n), err = io / fmt::format("err{}", n);
  ++n;
  const std::string cmd = fmt::format("{} >'{}' 2>'{}'", command, out.string(), err.string());
  const int raw = std::system(cmd.c_str());
  CliResult r;
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
  r.out = read_bytes(out);
  r.err = read_bytes(err);
  return r;
}

// `prefix` goes before the binary: a launcher ("mpirun -np 2") or environment assignments
// ("HF_HUB_CACHE=/x"); `args` must be shell-safe already.
inline CliResult run_shell_cli(const std::string& prefix, const std::string& args,
                               const std::filesystem::path& io) {
  return run_shell(fmt::format("{} '{}' {}", prefix, EVOMERGE_CLI, args), io);
}

inline CliResult evomerge_cli(const std::string& args, const std::filesystem::path& io) {
  return run_shell_cli("", args, io);
}
inline CliResult evomerge_cli(const std::string& args, const TempDir& io) {
  return run_shell_cli("", args, io.path());
}

}  // namespace evomerge::testing
