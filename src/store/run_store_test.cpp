#include "store/run_store.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <thread>

#include <signal.h>
#include <sys/wait.h>

#include "common/error.h"
#include "common/test_util.h"

namespace fs = std::filesystem;
using namespace evomerge;
using evomerge::testing_util::error_of;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("evomerge-store-test-" + std::to_string(::getpid()) + "-" +
                                        std::to_string(reinterpret_cast<uintptr_t>(this)));
    fs::remove_all(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

RunInfo make_info(int granularity = 1) {
  RunInfo info;
  info.config = {{"seed", 7}, {"ps", {{"granularity", granularity}, {"method", "dare_ties"}}}};
  info.config_text = "seed: 7\nps:\n  granularity: 1\n";
  info.seed = 7;
  info.evomerge_version = "0.1.0";
  return info;
}

CandidateRecord make_candidate(const std::string& phase, int64_t gen, int idx, double fitness) {
  CandidateRecord c;
  c.phase = phase;
  c.generation = gen;
  c.index = idx;
  c.genome = {0.5, 0.25 + idx};
  c.params = {{"weight", {0.5}}};
  c.task_scores = {{"arith", fitness}};
  c.fitness = fitness;
  c.eval_seconds = 1.5;
  c.merge_seconds = 0.01;
  c.items.push_back({"arith", "train", {3, 1, 4}, {1.0f, 0.0f, 1.0f}});
  return c;
}

OptimiserState make_state(const std::string& phase, int64_t gen) {
  OptimiserState s;
  s.phase = phase;
  s.generation = gen;
  s.state = {1, 2, 3, static_cast<uint8_t>(gen)};
  s.extra = {{"subset_seed", 99 + gen}};
  return s;
}

}  // namespace

TEST(RunStore, CreatesWalDatabaseAndRoundTripsGenerations) {
  TempDir dir;
  {
    auto store = RunStore::open(dir.path, make_info());
    EXPECT_FALSE(store.resumed());
    EXPECT_EQ(store.info().config_hash, config_hash(make_info().config));
    EXPECT_FALSE(store.last_state("ps").has_value());
    store.commit_generation({make_candidate("ps", 1, 0, 0.5), make_candidate("ps", 1, 1, 0.75)},
                            make_state("ps", 1));
    auto failed = make_candidate("ps", 2, 0, 0.0);
    failed.ok = false;
    failed.error = "merge failed: tensor x";
    failed.items.clear();
    store.commit_generation({failed, make_candidate("ps", 2, 1, 0.6)}, make_state("ps", 2));
    sqlite3* db = store.handle();
    sqlite3_stmt* st = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, nullptr), SQLITE_OK);
    ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
    EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)), "wal");
    sqlite3_finalize(st);
  }
  auto store = RunStore::open(dir.path, make_info());
  EXPECT_TRUE(store.resumed());
  const auto last = store.last_state("ps");
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(last->generation, 2);
  EXPECT_EQ(last->state, (std::vector<uint8_t>{1, 2, 3, 2}));
  EXPECT_EQ(last->extra["subset_seed"], 101);

  const auto all = store.candidates("ps", -1, true);
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[1].genome, nlohmann::json({0.5, 1.25}));
  EXPECT_EQ(all[1].fitness, 0.75);
  ASSERT_EQ(all[1].items.size(), 1u);
  EXPECT_EQ(all[1].items[0].items, (std::vector<int32_t>{3, 1, 4}));
  EXPECT_EQ(all[1].items[0].scores, (std::vector<float>{1.0f, 0.0f, 1.0f}));
  EXPECT_FALSE(all[2].ok);
  EXPECT_EQ(all[2].error, "merge failed: tensor x");
  EXPECT_TRUE(std::isnan(all[2].fitness));
  EXPECT_EQ(store.candidates("ps", 2).size(), 2u);

  const auto best = store.best_candidate("ps");
  ASSERT_TRUE(best.has_value());
  EXPECT_EQ(best->generation, 1);
  EXPECT_EQ(best->index, 1);
  EXPECT_EQ(best->items.size(), 1u);
}

TEST(RunStore, GenerationIsAtomic) {
  TempDir dir;
  auto store = RunStore::open(dir.path, make_info());
  store.commit_generation({make_candidate("ps", 1, 0, 0.5)}, make_state("ps", 1));
  // A second commit of generation 1 fails and leaves nothing of itself behind.
  EXPECT_THROW(store.commit_generation({make_candidate("ps", 1, 5, 0.9)}, make_state("ps", 1)),
               Error);
  // A duplicate candidate index inside one generation violates UNIQUE: nothing of it is written.
  EXPECT_THROW(
      store.commit_generation({make_candidate("ps", 2, 0, 0.1), make_candidate("ps", 2, 0, 0.2)},
                              make_state("ps", 2)),
      Error);
  EXPECT_EQ(store.candidates("ps").size(), 1u);
  EXPECT_EQ(store.last_state("ps")->generation, 1);
  // The store is still usable afterwards.
  store.commit_generation({make_candidate("ps", 2, 0, 0.1)}, make_state("ps", 2));
  EXPECT_EQ(store.last_state("ps")->generation, 2);
}

TEST(RunStore, RefusesADifferentConfigAndNamesTheField) {
  TempDir dir;
  { RunStore::open(dir.path, make_info(1)); }
  try {
    RunStore::open(dir.path, make_info(4));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("different config"), std::string::npos) << msg;
    EXPECT_NE(msg.find("/ps/granularity"), std::string::npos) << msg;
    EXPECT_NE(msg.find("run.db"), std::string::npos) << msg;
  }
}

TEST(RunStore, PhasesFinalResultsArtifacts) {
  TempDir dir;
  auto store = RunStore::open(dir.path, make_info());
  EXPECT_FALSE(store.phase_result("ps").has_value());
  store.set_phase_done("ps", {{"best_genome", {0.1, 0.2}}});
  EXPECT_EQ((*store.phase_result("ps"))["best_genome"][1], 0.2);
  FinalResult r;
  r.label = "ps best";
  r.split = "test";
  r.task_scores = {{"arith", 0.6}};
  r.score = 0.6;
  r.ci_low = 0.5;
  r.ci_high = 0.7;
  store.add_final_result(r);
  ASSERT_EQ(store.final_results().size(), 1u);
  EXPECT_EQ(store.final_results()[0].label, "ps best");
  EXPECT_EQ(store.final_results()[0].ci_high, 0.7);
  store.clear_final_results();
  EXPECT_TRUE(store.final_results().empty());
  store.add_artifact("recipe", dir.path / "best.yml");
  ASSERT_EQ(store.artifacts().size(), 1u);
  EXPECT_EQ(store.artifacts()[0].first, "recipe");
}

TEST(RunStore, CorruptOrForeignDatabaseFailsClearly) {
  TempDir dir;
  fs::create_directories(dir.path);
  {
    std::FILE* f = std::fopen((dir.path / "run.db").c_str(), "wb");
    std::fputs("this is not a database, just text that is long enough to look like a header......",
               f);
    std::fclose(f);
  }
  EXPECT_THROW(RunStore::open(dir.path, make_info()), Error);
  EXPECT_THROW(RunStore::open_existing(dir.path / "missing"), Error);
}

TEST(RunStore, ConfigHashIsStableAndKeyOrderIndependent) {
  nlohmann::json a = {{"b", 1}, {"a", {1, 2}}};
  nlohmann::json b;
  b["a"] = {1, 2};
  b["b"] = 1;
  EXPECT_EQ(config_hash(a), config_hash(b));
  EXPECT_EQ(config_hash(a).size(), 16u);
  EXPECT_NE(config_hash(a), config_hash(nlohmann::json{{"b", 2}, {"a", {1, 2}}}));
  // FNV-1a 64 of the two bytes "{}" (computed independently in Python).
  EXPECT_EQ(config_hash(nlohmann::json::object()), "08f44b07b5901a25");
}

namespace {
void write_bytes(const fs::path& p, const std::string& bytes) {
  std::FILE* f = std::fopen(p.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  std::fwrite(bytes.data(), 1, bytes.size(), f);
  std::fclose(f);
}
int64_t count_rows(const RunStore& s, const char* sql) {
  sqlite3_stmt* q = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(s.handle(), sql, -1, &q, nullptr), SQLITE_OK);
  EXPECT_EQ(sqlite3_step(q), SQLITE_ROW);
  const int64_t n = sqlite3_column_int64(q, 0);
  sqlite3_finalize(q);
  return n;
}
}  // namespace

// A SIGKILL while an older evomerge created the store left a 0-byte run.db that every resume
// refused ("schema version 0"): it is now recreated, as is a leftover temporary from a creation
// that died before its rename.
TEST(RunStore, HalfCreatedStoreIsRecreated) {
  TempDir dir;
  fs::create_directories(dir.path);
  write_bytes(dir.path / "run.db", "");
  write_bytes(dir.path / "run.db.tmp-999999", "partial");
  {
    auto store = RunStore::open(dir.path, make_info());
    EXPECT_TRUE(store.recreated());
    EXPECT_FALSE(store.resumed());
    EXPECT_EQ(store.info().seed, 7u);
  }
  EXPECT_FALSE(fs::exists(dir.path / "run.db.tmp-999999"));
  auto again = RunStore::open(dir.path, make_info());
  EXPECT_TRUE(again.resumed());
  EXPECT_FALSE(again.recreated());
  EXPECT_EQ(count_rows(again, "PRAGMA user_version"), 2);
}

TEST(RunStore, EmptySqliteFileIsRecreatedButForeignDatabaseIsKept) {
  TempDir dir;
  fs::create_directories(dir.path);
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((dir.path / "run.db").c_str(), &db), SQLITE_OK);
    sqlite3_exec(db, "PRAGMA journal_mode=WAL", nullptr, nullptr, nullptr);  // file, no tables
    sqlite3_close(db);
  }
  EXPECT_TRUE(RunStore::open(dir.path, make_info()).recreated());

  TempDir other;
  fs::create_directories(other.path);
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((other.path / "run.db").c_str(), &db), SQLITE_OK);
    sqlite3_exec(db, "CREATE TABLE precious (x)", nullptr, nullptr, nullptr);
    sqlite3_close(db);
  }
  EXPECT_NE(error_of([&] {
              RunStore::open(other.path, make_info());
            }).find("not an evomerge run database (schema version 0)"),
            std::string::npos);
  EXPECT_TRUE(fs::exists(other.path / "run.db"));
}

TEST(RunStore, SecondOpenIsRefusedNamingTheHolder) {
  TempDir dir;
  auto first = RunStore::open(dir.path, make_info());
  const std::string msg = error_of([&] { RunStore::open(dir.path, make_info()); });
  EXPECT_NE(msg.find("this run folder is in use by another evomerge process (pid " +
                     std::to_string(::getpid()) + " on host "),
            std::string::npos)
      << msg;
  // Readers (reports, tools) do not take the lock.
  EXPECT_EQ(RunStore::open_existing(dir.path).info().seed, 7u);
}

// The kernel releases the lock of a process that dies, however it dies.
TEST(RunStore, LockOfAKilledProcessIsReleased) {
  TempDir dir;
  RunStore::open(dir.path, make_info());  // create, then release
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    RunFolderLock lock(dir.path);
    const char c = 'x';
    [[maybe_unused]] auto w = ::write(ready[1], &c, 1);
    ::pause();
    ::_exit(0);
  }
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  EXPECT_NE(error_of([&] {
              RunStore::open(dir.path, make_info());
            }).find("pid " + std::to_string(child) + " on host"),
            std::string::npos);
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  ::close(ready[0]);
  ::close(ready[1]);
  EXPECT_TRUE(RunStore::open(dir.path, make_info()).resumed());
}

TEST(RunStore, ArtifactsAndFinalRowsAreRecordedOnce) {
  TempDir dir;
  auto store = RunStore::open(dir.path, make_info());
  for (int i = 0; i < 3; ++i) store.add_artifact("recipe", dir.path / "best.yml");
  store.add_artifact("report", dir.path / "results.md");
  ASSERT_EQ(store.artifacts().size(), 2u);
  FinalResult r;
  r.label = "parent: a";
  r.split = "test";
  r.score = 0.25;
  store.add_final_result(r);
  FinalResult other = r;
  other.label = "ps best";
  store.add_final_result(other);
  r.score = 0.5;
  store.add_final_result(r);  // replaced in place: order kept
  const auto rows = store.final_results();
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].label, "parent: a");
  EXPECT_EQ(rows[0].score, 0.5);
  EXPECT_EQ(store.final_result("ps best", "test")->score, 0.25);
  EXPECT_FALSE(store.final_result("ps best", "train"));
  // A task set of perplexities only has no weighted accuracy: stored as NULL, read back as NaN
  // (v1 failed here on a NOT NULL column).
  FinalResult ppl;
  ppl.label = "parent: ppl";
  ppl.split = "test";
  ppl.score = ppl.ci_low = ppl.ci_high = std::nan("");
  ppl.task_scores = {{"wiki", 12.5}};
  store.add_final_result(ppl);
  const auto back = store.final_result("parent: ppl", "test");
  ASSERT_TRUE(back);
  EXPECT_TRUE(std::isnan(back->score) && std::isnan(back->ci_low) && std::isnan(back->ci_high));
  EXPECT_EQ(back->task_scores["wiki"], 12.5);
}

TEST(RunStore, FinalStageCheckpointsSurviveReopening) {
  TempDir dir;
  {
    auto store = RunStore::open(dir.path, make_info());
    store.put_final_stage("finalist/ps/#1/opt", {{"score", 0.75}});
  }
  auto store = RunStore::open(dir.path, make_info());
  ASSERT_TRUE(store.final_stage("finalist/ps/#1/opt"));
  EXPECT_EQ((*store.final_stage("finalist/ps/#1/opt"))["score"], 0.75);
  EXPECT_FALSE(store.final_stage("finalist/ps/#2/opt"));
}

TEST(RunStore, InputFingerprintsAndEvents) {
  TempDir dir;
  auto store = RunStore::open(dir.path, make_info());
  const std::vector<InputFingerprint> before = {
      {"models/a", "model", "aaaa", {{"model.safetensors", "11"}, {"config.json", "22"}}},
      {"tasks/t.yml", "task", "tttt", {{"t.yml", "33"}}},
  };
  store.set_input_fingerprints(before);
  ASSERT_EQ(store.input_fingerprints().size(), 2u);
  EXPECT_EQ(store.input_fingerprints()[0].detail["config.json"], "22");
  EXPECT_TRUE(changed_inputs(store.input_fingerprints(), before).empty());
  auto after = before;
  after[0].fingerprint = "bbbb";
  after[0].detail["model.safetensors"] = "12";
  after[1] = {"tasks/u.yml", "task", "uuuu", {}};
  const auto changes = changed_inputs(before, after);
  ASSERT_EQ(changes.size(), 3u);
  EXPECT_EQ(changes[0], "model 'models/a' changed (model.safetensors)");
  EXPECT_EQ(changes[1], "task 'tasks/u.yml' is new");
  EXPECT_EQ(changes[2], "task 'tasks/t.yml' is no longer used");
  store.add_event("changed-inputs-allowed", {{"changes", changes}});
  ASSERT_EQ(store.events().size(), 1u);
  EXPECT_EQ(store.events()[0].first, "changed-inputs-allowed");
}

// A version-1 store (made by an earlier evomerge) is migrated in place to version 2, keeping the
// first of duplicated artifacts and final rows.
TEST(RunStore, VersionOneStoreIsMigrated) {
  TempDir dir;
  {
    auto store = RunStore::open(dir.path, make_info());
    store.commit_generation({make_candidate("ps", 1, 0, 0.5)}, make_state("ps", 1));
    const char* to_v1 =
        "DROP INDEX artifact_once; DROP TABLE final_stage; "
        "DROP TABLE input_fingerprint; DROP TABLE run_event; DROP TABLE generation; "
        "DROP TABLE final_item_result; DROP TABLE final_result; CREATE TABLE final_result (id "
        "INTEGER PRIMARY KEY, label TEXT NOT NULL, split TEXT NOT NULL, task_scores TEXT NOT NULL, "
        "score REAL NOT NULL, ci_low REAL NOT NULL, ci_high REAL NOT NULL, details TEXT NOT NULL); "
        "ALTER TABLE run DROP COLUMN machine; "
        "PRAGMA user_version = 1; "
        "INSERT INTO artifact (kind, path, created) VALUES ('recipe', 'a.yml', 'x'), "
        "('recipe', 'a.yml', 'y'), ('report', 'r.md', 'z'); "
        "INSERT INTO final_result (label, split, task_scores, score, ci_low, ci_high, details) "
        "VALUES ('parent: p', 'test', '{}', 0.1, 0, 0, '{}'), ('parent: p', 'test', '{}', 0.2, 0, "
        "0, "
        "'{}')";
    ASSERT_EQ(sqlite3_exec(store.handle(), to_v1, nullptr, nullptr, nullptr), SQLITE_OK);
  }
  auto store = RunStore::open(dir.path, make_info());
  EXPECT_EQ(count_rows(store, "PRAGMA user_version"), 2);
  EXPECT_EQ(store.artifacts().size(), 2u);
  ASSERT_EQ(store.final_results().size(), 1u);
  EXPECT_EQ(store.final_results()[0].score, 0.1);
  FinalResult ppl;  // NULL-able since v2 (perplexity-only task sets)
  ppl.label = "parent: ppl";
  ppl.split = "test";
  ppl.score = ppl.ci_low = ppl.ci_high = std::nan("");
  store.add_final_result(ppl);
  EXPECT_TRUE(std::isnan(store.final_result("parent: ppl", "test")->score));
  EXPECT_EQ(store.candidates("ps").size(), 1u);
  store.put_final_stage("k", 1);
  EXPECT_TRUE(store.final_stage("k"));
}

TEST(RunStore, NewerSchemaIsRefused) {
  TempDir dir;
  {
    auto store = RunStore::open(dir.path, make_info());
    sqlite3_exec(store.handle(), "PRAGMA user_version = 9", nullptr, nullptr, nullptr);
  }
  EXPECT_NE(error_of([&] {
              RunStore::open_existing(dir.path);
            }).find("schema version 9 (this evomerge reads versions 1 and 2)"),
            std::string::npos);
}
