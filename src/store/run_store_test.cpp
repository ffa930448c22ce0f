#include "store/run_store.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "common/error.h"

namespace fs = std::filesystem;
using namespace evomerge;

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
