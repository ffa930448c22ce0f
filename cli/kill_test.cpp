// The kill test: a small search (PS, tiny models) is killed with SIGKILL at 8 moments (0, 10, 30
// and 50 ms after start, then 4 seeded-random moments over the length of an uninterrupted run,
// which covers store writes, the final table and the output files), resumed after each kill, and
// must end with exactly the store, table and outputs of the uninterrupted run. Then two processes
// started together on one folder: one is refused naming the other (or finds the run finished), and
// the result is again the uninterrupted one.
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "infer/random_model.h"
#include "io/files.h"
#include "test_support.h"
#include "tokenize/test_support.h"

namespace evomerge {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;
using testing::write_bytes;

void tiny_model(const fs::path& dir, uint64_t seed) {
  RandomModelSpec spec;
  spec.config = small_model_config("llama", 99, 32, 64, 2, 4, 2);
  spec.config["max_position_embeddings"] = 64;
  spec.seed = seed;
  spec.stddev = 0.3f;
  write_random_model(dir, spec);
  testing_util::write_char_tokenizer(dir);
}

// Starts `evomerge -q evolve CONFIG --run RUN` with stdout/stderr to files; returns the pid.
pid_t start_evolve(const fs::path& config, const fs::path& run, const fs::path& log) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    const std::string out = log.string() + ".out", err = log.string() + ".err";
    freopen(out.c_str(), "w", stdout);
    freopen(err.c_str(), "w", stderr);
    execl(EVOMERGE_CLI, EVOMERGE_CLI, "-q", "evolve", config.c_str(), "--run", run.c_str(),
          (char*)nullptr);
    ::_exit(127);
  }
  return pid;
}

int wait_status(pid_t pid) {
  int raw = 0;
  ::waitpid(pid, &raw, 0);
  return WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
}

// Everything a run leaves that must not depend on interruptions: every candidate (phase,
// generation, index, genome, fitness, status), every optimiser state, the final table, the
// artifacts, and the output files.
std::string run_digest(const fs::path& run) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2((run / "run.db").c_str(), &db, SQLITE_OPEN_READONLY, nullptr),
            SQLITE_OK);
  std::string out;
  auto dump = [&](const char* sql) {
    sqlite3_stmt* s = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, sql, -1, &s, nullptr), SQLITE_OK) << sql;
    while (sqlite3_step(s) == SQLITE_ROW) {
      for (int c = 0; c < sqlite3_column_count(s); ++c) {
        const void* p = sqlite3_column_blob(s, c);
        out.append(p ? static_cast<const char*>(p) : "NULL", p ? sqlite3_column_bytes(s, c) : 4);
        out += '|';
      }
      out += '\n';
    }
    sqlite3_finalize(s);
  };
  dump(
      "SELECT phase, generation, idx, genome, params, task_scores, fitness, status FROM candidate "
      "ORDER BY id");
  dump("SELECT phase, generation, state, extra FROM optimiser_state ORDER BY phase, generation");
  dump("SELECT name, status, result FROM phase ORDER BY name");
  dump(
      "SELECT label, split, task_scores, score, ci_low, ci_high, details FROM final_result ORDER "
      "BY id");
  dump("SELECT kind, path FROM artifact ORDER BY id");
  sqlite3_close(db);
  for (size_t p; (p = out.find(run.string())) != std::string::npos;)
    out.replace(p, run.string().size(), "RUN");
  for (const char* f : {"ps_best.yml", "results.md"})
    out += f + std::string(":") + read_text_file(run / f);
  return out;
}

class KillTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tiny_model(t_ / "base", 1);
    tiny_model(t_ / "ft1", 2);
    tiny_model(t_ / "ft2", 3);
    std::string data;
    for (int i = 0; i < 8; ++i)
      data += fmt::format("{{\"q\": \"q{}\", \"label\": {}}}\n", i, i % 2);
    write_bytes(t_ / "mc.jsonl", data);
    write_bytes(t_ / "mc.yaml",
                "task: mc\ndataset_path: json\ndataset_kwargs: {data_files: {opt: mc.jsonl, test: "
                "mc.jsonl}}\n"
                "test_split: test\noutput_type: multiple_choice\ndoc_to_text: \"Q: {{q}}\\nA:\"\n"
                "doc_to_target: \"{{label}}\"\ndoc_to_choice: [\"a\", \"b\"]\n");
    write_bytes(
        t_ / "run.yml",
        "seed: 5\ntasks: [{file: mc.yaml, weight: 1}]\nitems_per_generation: 4\nthreads: 1\n"
        "ps:\n  method: task_arithmetic\n  base_model: base\n  models: [ft1, ft2]\n  layer_groups: "
        "1\n"
        "  population: 4\n  generations: 4\nfinal: {top: 2, uniform_grid: [0.5]}\n");
  }
  TempDir t_{"kill"};
};

TEST_F(KillTest, SigkillAtEightMomentsResumesToTheUninterruptedResult) {
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(wait_status(start_evolve(t_ / "run.yml", t_ / "ref", t_ / "ref")), 0)
      << read_text_file(t_ / "ref.err");
  const auto full_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  const std::string expected = run_digest(t_ / "ref");

  std::vector<int64_t> moments = {0, 10, 30, 50};
  std::mt19937 rng(15);
  for (int i = 0; i < 4; ++i)
    moments.push_back(
        std::uniform_int_distribution<int64_t>(50, std::max<int64_t>(60, full_ms))(rng));
  int killed = 0;
  for (size_t i = 0; i < moments.size(); ++i) {
    const pid_t pid = start_evolve(t_ / "run.yml", t_ / "run", t_ / fmt::format("kill{}", i));
    std::this_thread::sleep_for(std::chrono::milliseconds(moments[i]));
    ::kill(pid, SIGKILL);
    const int status = wait_status(pid);
    killed += status == 128 + SIGKILL;
    // Either killed, or it had already finished (0): never an error.
    EXPECT_TRUE(status == 128 + SIGKILL || status == 0)
        << "kill " << i << " at " << moments[i] << " ms: status " << status << ": "
        << read_text_file(t_ / fmt::format("kill{}.err", i));
  }
  // How many kills landed before the run had finished depends on the machine's speed; the result
  // must not depend on it.
  std::printf("kill test: uninterrupted run %lld ms, %d of %zu kills landed mid-run\n",
              static_cast<long long>(full_ms), killed, moments.size());
  const int last = wait_status(start_evolve(t_ / "run.yml", t_ / "run", t_ / "last"));
  ASSERT_EQ(last, 0) << read_text_file(t_ / "last.err");
  EXPECT_EQ(run_digest(t_ / "run"), expected);
  // No staging leftovers of the killed processes.
  for (const auto& e : fs::directory_iterator(t_ / "run"))
    EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();
}

// The final-table rows a log says were scored ("[final] LABEL: test S [lo, hi]") and read back
// from the store ("[final] LABEL: test S (from the store)").
struct FinalRowLines {
  std::vector<std::string> scored, reused;
};
FinalRowLines final_row_lines(const std::string& log) {
  FinalRowLines out;
  size_t start = 0;
  for (size_t end; (end = log.find('\n', start)) != std::string::npos; start = end + 1) {
    const std::string line = log.substr(start, end - start);
    const size_t split = line.find(": test ");
    if (line.rfind("[final] ", 0) != 0 || split == std::string::npos) continue;
    const std::string label = line.substr(8, split - 8);
    (line.find("(from the store)") != std::string::npos ? out.reused : out.scored).push_back(label);
  }
  return out;
}

// SIGKILL once the first final-table row is stored (its log line is out): the resume reads every
// row the killed process had scored from the store and scores only the others (each row once over
// both processes), and the run ends with the uninterrupted store and outputs.
TEST_F(KillTest, SigkillDuringTheFinalTableScoresNoRowTwice) {
  ASSERT_EQ(wait_status(start_evolve(t_ / "run.yml", t_ / "ref", t_ / "ref")), 0)
      << read_text_file(t_ / "ref.err");
  const FinalRowLines ref = final_row_lines(read_text_file(t_ / "ref.err"));
  ASSERT_GE(ref.scored.size(), 5u);
  const pid_t pid = start_evolve(t_ / "run.yml", t_ / "run", t_ / "killed");
  const auto log_so_far = [&] {
    return fs::exists(t_ / "killed.err") ? read_text_file(t_ / "killed.err") : std::string();
  };
  for (int i = 0; i < 50000 && final_row_lines(log_so_far()).scored.empty(); ++i)
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  ::kill(pid, SIGKILL);
  const int status = wait_status(pid);
  const FinalRowLines killed = final_row_lines(read_text_file(t_ / "killed.err"));
  ASSERT_FALSE(killed.scored.empty()) << read_text_file(t_ / "killed.err");
  ASSERT_EQ(wait_status(start_evolve(t_ / "run.yml", t_ / "run", t_ / "resumed")), 0)
      << read_text_file(t_ / "resumed.err");
  const FinalRowLines resumed = final_row_lines(read_text_file(t_ / "resumed.err"));
  std::printf("kill test: killed (status %d) after %zu of %zu final rows\n", status,
              killed.scored.size(), ref.scored.size());
  if (status == 128 + SIGKILL) {
    // Every row scored before the kill is read back (its line may be printed just before the
    // kill, after the row was committed: the store, not the log, is what counts); the others are
    // scored now.
    EXPECT_GE(resumed.reused.size(), killed.scored.size());
    for (const auto& label : killed.scored)
      EXPECT_NE(std::find(resumed.reused.begin(), resumed.reused.end(), label),
                resumed.reused.end())
          << label;
    for (const auto& label : resumed.scored)
      EXPECT_EQ(std::find(killed.scored.begin(), killed.scored.end(), label), killed.scored.end())
          << label << " scored twice";
  }
  EXPECT_EQ(run_digest(t_ / "run"), run_digest(t_ / "ref"));
}

TEST_F(KillTest, ConcurrentSecondStartIsRefusedAndTheResultIsUnchanged) {
  ASSERT_EQ(wait_status(start_evolve(t_ / "run.yml", t_ / "ref", t_ / "ref")), 0)
      << read_text_file(t_ / "ref.err");
  const pid_t a = start_evolve(t_ / "run.yml", t_ / "run", t_ / "a");
  const pid_t b = start_evolve(t_ / "run.yml", t_ / "run", t_ / "b");
  const int sa = wait_status(a), sb = wait_status(b);
  int refused = 0;
  for (const auto& [status, log] : {std::pair{sa, t_ / "a.err"}, std::pair{sb, t_ / "b.err"}}) {
    const std::string err = read_text_file(log);
    if (status == 1) {
      // The holder is named by its pid, or, when the refused start read the lock file in the
      // instant between the holder's lock and its write, as "which is still starting".
      const bool named =
          err.find("in use by another evomerge process (pid ") != std::string::npos ||
          err.find("in use by another evomerge process (which is still starting)") !=
              std::string::npos;
      EXPECT_TRUE(named) << err;
      ++refused;
    } else {
      EXPECT_EQ(status, 0) << err;
    }
  }
  EXPECT_LE(refused, 1);
  // Whichever finished, the folder holds the uninterrupted result (no interleaved rows); a third
  // start finds the finished run.
  ASSERT_EQ(wait_status(start_evolve(t_ / "run.yml", t_ / "run", t_ / "c")), 0)
      << read_text_file(t_ / "c.err");
  EXPECT_EQ(run_digest(t_ / "run"), run_digest(t_ / "ref"));
}

// Ctrl-C (SIGINT) or SIGTERM: the generation in progress is finished and committed, the process
// says what was kept and how to resume and exits 128 + the signal; resuming gives the uninterrupted
// result. (A signal that arrives after the search phase finds nothing left to stop: exit 0.)
TEST_F(KillTest, InterruptCommitsSaysWhatWasKeptAndResumes) {
  ASSERT_EQ(wait_status(start_evolve(t_ / "run.yml", t_ / "ref", t_ / "ref")), 0)
      << read_text_file(t_ / "ref.err");
  for (const int sig : {SIGINT, SIGTERM}) {
    const fs::path run = t_ / fmt::format("run-{}", sig), log = t_ / fmt::format("sig{}", sig);
    const pid_t pid = start_evolve(t_ / "run.yml", run, log);
    // Once the first generation is committed (polled, no timing assumption), interrupt.
    for (int i = 0; i < 2000 && !fs::exists(run / "run.db"); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    ::kill(pid, sig);
    const int status = wait_status(pid);
    const std::string err = read_text_file(log.string() + ".err");
    if (status != 0) {
      EXPECT_EQ(status, 128 + sig) << err;
      EXPECT_NE(err.find("interrupted; finishing the current step and saving"), std::string::npos)
          << err;
      EXPECT_NE(err.find("run the same command to resume"), std::string::npos) << err;
    }
    ASSERT_EQ(wait_status(start_evolve(t_ / "run.yml", run, log)), 0)
        << read_text_file(log.string() + ".err");
    EXPECT_EQ(run_digest(run), run_digest(t_ / "ref")) << "signal " << sig;
  }
}

}  // namespace
}  // namespace evomerge
