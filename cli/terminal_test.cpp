// The terminal of long commands through the binary: `merge`'s progress is a plain line in a log
// and a redrawn bar on a terminal (a pseudo-terminal from script(1)), `-q` silences it, `--json`
// puts the result on stdout alone; Ctrl-C of `eval` says what was kept, exits 130 and takes the
// external evaluator's process group (which a terminal's Ctrl-C does not reach) down with it.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include "io/files.h"
#include "io/test_support.h"
#include "test_support.h"

namespace evomerge {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using testing::evomerge_cli;
using testing::run_shell;
using testing::TempDir;

const fs::path kModel = fs::path(EVOMERGE_SOURCE_DIR) / "examples" / "models" / "math_en";

void write_merge_config(const TempDir& io) {
  write_file_atomic(io / "c.yml", fmt::format("merge_method: linear\nmodels:\n  - {{model: {}, "
                                              "parameters: {{weight: 1}}}}\n",
                                              kModel.string()));
}

TEST(Terminal, MergeProgressIsALineInALogAndABarOnATerminal) {
  TempDir io("terminal");
  write_merge_config(io);
  const auto json_run = evomerge_cli(
      fmt::format("merge '{}' '{}' --json", (io / "c.yml").string(), (io / "a").string()), io);
  ASSERT_EQ(json_run.status, 0) << json_run.err;
  const json result = json::parse(json_run.out);  // stdout holds the JSON alone
  const auto tensors = result["tensors"].get<int64_t>();
  EXPECT_GT(tensors, 0);
  EXPECT_EQ(result["output"], (io / "a").string());
  EXPECT_GT(result["bytes_written"].get<int64_t>(), 0);
  // Not a terminal: the final progress line, plain (no redraws), on stderr.
  const std::regex line(
      fmt::format(R"((^|\n)merge: {0}/{0} tensors \([0-9.]+ tensors/s, [^\n]*\n)", tensors));
  EXPECT_TRUE(std::regex_search(json_run.err, line)) << json_run.err;
  EXPECT_EQ(json_run.err.find('\r'), std::string::npos) << json_run.err;

  const auto quiet = evomerge_cli(
      fmt::format("-q merge '{}' '{}'", (io / "c.yml").string(), (io / "b").string()), io);
  ASSERT_EQ(quiet.status, 0) << quiet.err;
  EXPECT_EQ(quiet.err.find("tensors ("), std::string::npos) << quiet.err;
  EXPECT_NE(quiet.err.find("merged "), std::string::npos) << "the summary stays: " << quiet.err;

  if (std::system("command -v script >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "script(1) (util-linux) is not installed: no pseudo-terminal for the bar";
  // On a terminal: the bar, redrawn in place from the line's start.
  const auto tty =
      run_shell(fmt::format("script -qec \"'{}' merge '{}' '{}'\" /dev/null </dev/null",
                            EVOMERGE_CLI, (io / "c.yml").string(), (io / "c").string()),
                io.path());
  ASSERT_EQ(tty.status, 0) << tty.out << tty.err;
  EXPECT_NE(tty.out.find(
                fmt::format("\r\033[Kmerge [########################] {0}/{0} tensors (", tensors)),
            std::string::npos)
      << tty.out;
}

TEST(Terminal, CtrlCOfEvalSaysNothingWasKeptAndStopsTheExternalEvaluator) {
  TempDir io("terminal-int");
  // The evaluator says it started (its process group id, written atomically), then waits.
  write_file_atomic(io / "ext.yaml",
                    "task: ext\nexternal: {command: [sh, -c, \"echo $$ > started.tmp && mv "
                    "started.tmp started && exec sleep 30\"], timeout_s: 60}\n");
  const auto r = run_shell(
      fmt::format("cd '{0}' && ('{1}' eval '{2}' --task ext.yaml --output items.jsonl & p=$!; "
                  "i=0; while [ ! -e started ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); "
                  "done; kill -INT $p; wait $p; echo status=$?)",
                  io.path().string(), EVOMERGE_CLI, kModel.string()),
      io.path());
  EXPECT_NE(r.out.find("status=130"), std::string::npos) << r.out << r.err;
  EXPECT_NE(r.err.find("evomerge eval: interrupted; nothing was kept (the scores and items.jsonl "
                       "are written when scoring ends); run the same command to score again"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(fs::exists(io / "items.jsonl"));
  ASSERT_TRUE(fs::exists(io / "started"));
  const long group = std::stol(read_text_file(io / "started"));
  // The evaluator (the group's leader, `exec sleep` keeps its pid) was sent SIGKILL before the
  // exit: wait (bounded) until it is gone or a zombie left for init to reap.
  auto dead = [&] {
    const std::string stat = testing::read_bytes(fmt::format("/proc/{}/stat", group));
    const auto close_paren = stat.rfind(')');
    return stat.empty() || (close_paren != std::string::npos && close_paren + 2 < stat.size() &&
                            stat[close_paren + 2] == 'Z');
  };
  bool gone = false;
  for (int i = 0; i < 200 && !(gone = dead()); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  if (!gone) ::kill(static_cast<pid_t>(-group), SIGKILL);
  EXPECT_TRUE(gone) << "the external evaluator's group " << group << " outlived eval";
}

}  // namespace
}  // namespace evomerge
