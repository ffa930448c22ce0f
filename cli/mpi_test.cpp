// End-to-end under OpenMPI's mpirun (skipped when it is not installed or the binary was built
// without MPI): 2- and 3-rank searches on the tiny fixture (evolve/test_support.h) give exactly the
// single-process run store, and a worker rank killed mid-run, then a single-process resume, gives
// the uninterrupted result.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "common/error.h"
#include "dist/distributed.h"
#include "evolve/test_support.h"
#include "io/test_support.h"
#include "store/run_store.h"
#include "test_support.h"

namespace evomerge {
namespace {

namespace fs = std::filesystem;
using testing::evomerge_cli;
using testing::run_shell_cli;
using testing::TempDir;

// Shared memory only; ob1 named so that MPI_Init skips probing libfabric (~0.2 s per run).
const char* kMpirun =
    "mpirun --oversubscribe --allow-run-as-root --mca pml ob1 --mca btl self,vader";

bool have_mpirun() {
  return std::system("command -v mpirun >/dev/null 2>&1") == 0;
}

// Everything a run store says about results, as text: candidates (genome, parameters, task
// scores, fitness, status, per-item results), optimiser states, phase results and the final table
// with its per-item results. Timings and timestamps are left out.
std::string store_results(const fs::path& run) {
  const RunStore store = RunStore::open_existing(run);
  std::string s;
  for (const std::string phase : {"ps", "dfs"}) {
    for (const auto& c : store.candidates(phase, -1, /*with_items=*/true)) {
      s += fmt::format("{} {} {} {} {} {} {:a} {} {}\n", c.phase, c.generation, c.index,
                       c.genome.dump(), c.params.dump(), c.task_scores.dump(), c.fitness, c.ok,
                       c.error);
      for (const auto& ir : c.items) {
        s += ir.task + " " + ir.split;
        for (size_t i = 0; i < ir.items.size(); ++i)
          s += fmt::format(" {}:{:a}", ir.items[i], ir.scores[i]);
        s += "\n";
      }
    }
    if (const auto st = store.last_state(phase)) {
      s += fmt::format("state {} {} ", phase, st->generation);
      for (uint8_t b : st->state) s += fmt::format("{:02x}", b);
      s += "\n";
    }
    if (const auto r = store.phase_result(phase)) s += r->dump() + "\n";
  }
  for (const auto& r : store.final_results(/*with_items=*/true)) {
    s += fmt::format("{} {} {} {:a} {:a} {:a} {}\n", r.label, r.split, r.task_scores.dump(),
                     r.score, r.ci_low, r.ci_high, r.details.dump());
    for (const auto& ir : r.items)
      for (size_t i = 0; i < ir.items.size(); ++i)
        s += fmt::format(" {}:{:a}", ir.items[i], ir.scores[i]);
    s += "\n";
  }
  return s;
}

class MpiCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!mpi_available()) GTEST_SKIP() << "built without MPI";
    if (!have_mpirun()) GTEST_SKIP() << "mpirun not installed";
    testing_util::write_evolve_fixture(dir_.path());
  }
  void write_config(const std::string& text) { testing::write_bytes(dir_ / "run.yml", text); }
  testing::CliResult evolve(const std::string& prefix, const fs::path& run) {
    return run_shell_cli(
        prefix, fmt::format("-q evolve '{}' --run '{}'", (dir_ / "run.yml").string(), run.string()),
        dir_.path());
  }
  TempDir dir_{"mpicli"};
};

}  // namespace

TEST_F(MpiCli, TwoAndThreeRanksGiveTheSingleProcessStore) {
  // Micro-batches of 2: one process scores a candidate's 6 items in one job, 2 and 3 ranks cut
  // it into 2-item jobs spread over the ranks (evolve/scoring.h).
  write_config("micro_batch: 2\n" + testing_util::evolve_fixture_config());
  const auto one = evolve("", dir_ / "run1");
  ASSERT_EQ(one.status, 0) << one.err;
  const std::string expected = store_results(dir_ / "run1");
  ASSERT_NE(expected.find("evolved PS+DFS"), std::string::npos);
  for (int n : {2, 3}) {
    const fs::path run = dir_ / fmt::format("run{}", n);
    const auto r = evolve(fmt::format("{} -np {}", kMpirun, n), run);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.err.find(fmt::format("[dist] {} ranks", n)), std::string::npos) << r.err;
    // Every rank scored, and the summary accounts for each one.
    for (int k = 0; k < n; ++k)
      EXPECT_NE(r.err.find(fmt::format("[dist] rank {}: ", k)), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find(" 0 jobs, "), std::string::npos) << r.err;
    EXPECT_EQ(store_results(run), expected) << n << " ranks";
  }
}

TEST_F(MpiCli, RacingWithCandidatesKeptMergedGivesTheSingleProcessStore) {
  // Racing rounds of 2 items; one process keeping 1 candidate merged against 2 ranks keeping 4
  // each (a rank scores a candidate's next round where it has it merged).
  const std::string base = "micro_batch: 2\nracing: true\n" + testing_util::evolve_fixture_config();
  write_config(base);
  const auto one = evolve("", dir_ / "run1");
  ASSERT_EQ(one.status, 0) << one.err;
  write_config("cached_candidates: 4\n" + base);
  const auto two = evolve(fmt::format("{} -np 2", kMpirun), dir_ / "run2");
  ASSERT_EQ(two.status, 0) << two.err;
  EXPECT_EQ(store_results(dir_ / "run2"), store_results(dir_ / "run1"));
}

TEST_F(MpiCli, ARankThatCannotLoadAModelStopsTheRunBeforeAnythingIsWritten) {
  // One job, two programs (MPMD): rank 0 runs in the fixture folder, rank 1 in a copy of it
  // without ft2, so the config's relative "ft2" does not resolve there.
  write_config(testing_util::evolve_fixture_config());
  const fs::path other = dir_ / "elsewhere";
  fs::create_directories(other);
  for (const auto& e : fs::directory_iterator(dir_.path()))
    if (e.path().filename() != "ft2" && e.path() != other)
      fs::copy(e.path(), other / e.path().filename(), fs::copy_options::recursive);
  const fs::path run = dir_ / "run";
  const std::string args = fmt::format("-q evolve run.yml --run '{}'", run.string());
  const std::string cmd =
      fmt::format("{} -np 1 --wdir '{}' '{}' {} : -np 1 --wdir '{}' '{}' {} >'{}' 2>'{}'", kMpirun,
                  dir_.path().string(), EVOMERGE_CLI, args, other.string(), EVOMERGE_CLI, args,
                  (dir_ / "out").string(), (dir_ / "err").string());
  const int raw = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(raw));
  EXPECT_NE(WEXITSTATUS(raw), 0);
  const std::string err = testing::read_bytes(dir_ / "err");
  // Rank 0 speaks for the job: a first line, then one line for the failed rank naming the model.
  const std::string head = "evomerge: error: [dist] 1 of 2 ranks cannot start the run";
  ASSERT_NE(err.find(head), std::string::npos) << err;
  const size_t line = err.find("\n  rank 1 (");
  ASSERT_NE(line, std::string::npos) << err;
  const std::string rank1 = err.substr(line + 3, err.find('\n', line + 1) - line - 3);
  EXPECT_NE(rank1.find("ft2"), std::string::npos) << rank1;
  EXPECT_EQ(err.find("rank 0 ("), std::string::npos) << err;
  EXPECT_EQ(err.find("evomerge: error:"), err.rfind("evomerge: error:")) << err;  // once
  EXPECT_FALSE(fs::exists(run)) << "nothing is written when the run cannot start";
}

TEST_F(MpiCli, AKilledWorkerStopsTheRunAndAResumeGivesTheUninterruptedResult) {
  // Long enough to be caught mid-run: 40 PS generations.
  write_config(testing_util::evolve_fixture_config(40, 2));
  const auto full = evolve("", dir_ / "full");
  ASSERT_EQ(full.status, 0) << full.err;
  const fs::path run = dir_ / "killed";
  // mpirun in the background; its pid in a file.
  const std::string cmd =
      fmt::format("{} -np 2 '{}' -q evolve '{}' --run '{}' >'{}' 2>&1 & echo $! >'{}'", kMpirun,
                  EVOMERGE_CLI, (dir_ / "run.yml").string(), run.string(),
                  (dir_ / "killed.log").string(), (dir_ / "mpirun.pid").string());
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  // Rank 1 is the evomerge process whose environment says OMPI_COMM_WORLD_RANK=1 and whose
  // parent is that mpirun.
  pid_t mpirun = 0;
  std::ifstream(dir_ / "mpirun.pid") >> mpirun;
  ASSERT_GT(mpirun, 0);
  auto find_rank1 = [&]() -> pid_t {
    for (const auto& e : fs::directory_iterator("/proc")) {
      const std::string name = e.path().filename();
      if (name.find_first_not_of("0123456789") != std::string::npos) continue;
      std::ifstream stat(e.path() / "stat");
      std::string pid, comm, state;
      pid_t ppid = 0;
      stat >> pid >> comm >> state >> ppid;
      if (ppid != mpirun) continue;
      const std::string env = testing::read_bytes(e.path() / "environ");
      if (env.find(std::string("OMPI_COMM_WORLD_RANK=1") + '\0') != std::string::npos)
        return static_cast<pid_t>(std::stol(name));
    }
    return 0;
  };
  // Wait for the first committed PS generation, then kill the worker.
  pid_t worker = 0;
  for (int i = 0; i < 6000 && !worker; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    if (!fs::exists(run / "run.db")) continue;
    try {
      if (RunStore::open_existing(run).last_state("ps")) worker = find_rank1();
    } catch (const Error&) {
    }
  }
  ASSERT_GT(worker, 0) << testing::read_bytes(dir_ / "killed.log");
  ASSERT_EQ(::kill(worker, SIGKILL), 0);
  for (int i = 0; i < 6000 && ::kill(mpirun, 0) == 0; ++i) {
    ::waitpid(mpirun, nullptr, WNOHANG);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  // Stopped before the end: whole generations only, no final table.
  {
    const RunStore store = RunStore::open_existing(run);
    ASSERT_TRUE(store.final_results().empty());
    const auto last = store.last_state("ps");
    ASSERT_TRUE(last);
    EXPECT_LT(last->generation, 40);
  }
  const auto resumed = evolve("", run);
  ASSERT_EQ(resumed.status, 0) << resumed.err;
  EXPECT_EQ(store_results(run), store_results(dir_ / "full"));
}

}  // namespace evomerge
