// Schema version 2: the per-generation summaries, final-table row kinds, and the migration of a
// real version-1 database (tests/data/run_store_v1.sql).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/error.h"
#include "common/test_util.h"
#include "store/run_store.h"

namespace fs = std::filesystem;
using namespace evomerge;
using evomerge::testing_util::error_of;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("evomerge-schema-test-" + std::to_string(::getpid()) + "-" +
                                        std::to_string(reinterpret_cast<uintptr_t>(this)));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

RunInfo make_info() {
  RunInfo info;
  info.config = {{"seed", 1}};
  info.config_text = "seed: 1\n";
  info.seed = 1;
  info.evomerge_version = "test";
  return info;
}

CandidateRecord candidate(const std::string& phase, int64_t gen, int idx, double fitness) {
  CandidateRecord c;
  c.phase = phase;
  c.generation = gen;
  c.index = idx;
  c.genome = {0.5};
  c.params = {{"weight", {0.5}}};
  c.fitness = fitness;
  c.ok = !std::isnan(fitness);
  if (!c.ok) c.error = "merge failed";
  return c;
}

// Creates `dir/run.db` from an SQL dump.
void load_dump(const fs::path& dir, const fs::path& sql_file) {
  std::ifstream in(sql_file);
  ASSERT_TRUE(in) << sql_file;
  std::stringstream sql;
  sql << in.rdbuf();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir / "run.db").c_str(), &db), SQLITE_OK);
  char* err = nullptr;
  const int rc = sqlite3_exec(db, sql.str().c_str(), nullptr, nullptr, &err);
  EXPECT_EQ(rc, SQLITE_OK) << (err ? err : "");
  sqlite3_free(err);
  sqlite3_close(db);
}

int64_t user_version(const RunStore& store) {
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(store.handle(), "PRAGMA user_version", -1, &st, nullptr);
  sqlite3_step(st);
  const int64_t v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return v;
}

}  // namespace

TEST(StoreSchema, NewRunsAreVersionTwoAndRecordTheMachine) {
  TempDir dir;
  {
    auto store = RunStore::open(dir.path, make_info());
    EXPECT_EQ(user_version(store), 2);
  }
  auto store = RunStore::open_existing(dir.path);
  EXPECT_NE(store.info().machine.find("cores"), std::string::npos) << store.info().machine;
}

TEST(StoreSchema, GenerationSummaryFromCandidatesAndCaller) {
  TempDir dir;
  auto store = RunStore::open(dir.path, make_info());
  OptimiserState s1;
  s1.phase = "ps";
  s1.generation = 1;
  s1.wall_seconds = 3.5;
  s1.sigma = 0.3;
  s1.restart = 0;
  s1.evaluations = 5;
  // Fitness 0.2 0.4 0.6 0.8 and one failure: quartiles by linear interpolation over the four.
  store.commit_generation(
      {candidate("ps", 1, 0, 0.6), candidate("ps", 1, 1, 0.2), candidate("ps", 1, 2, NAN),
       candidate("ps", 1, 3, 0.8), candidate("ps", 1, 4, 0.4)},
      s1);
  // Generation 2 leaves restart / sigma / evaluations to the CMA-ES state blob.
  OptimiserState s2;
  s2.phase = "ps";
  s2.generation = 2;
  s2.state = nlohmann::json::to_cbor({{"fevals", 7}, {"last", {{"restart", 1}, {"sigma", 0.125}}}});
  store.commit_generation({candidate("ps", 2, 0, 0.7), candidate("ps", 2, 1, 0.1)}, s2);
  OptimiserState d1;
  d1.phase = "dfs";
  d1.generation = 1;
  store.commit_generation({candidate("dfs", 1, 0, NAN)}, d1);

  const auto g = store.generations("ps");
  ASSERT_EQ(g.size(), 2u);
  EXPECT_EQ(g[0].lambda, 5);
  EXPECT_EQ(g[0].n_ok, 4);
  EXPECT_DOUBLE_EQ(g[0].best, 0.8);
  EXPECT_DOUBLE_EQ(g[0].q3, 0.65);  // 0.6 + 0.25 * (0.8 - 0.6)
  EXPECT_DOUBLE_EQ(g[0].median, 0.5);
  EXPECT_DOUBLE_EQ(g[0].q1, 0.35);  // 0.2 + 0.75 * (0.4 - 0.2)
  EXPECT_DOUBLE_EQ(g[0].worst, 0.2);
  EXPECT_DOUBLE_EQ(g[0].best_so_far, 0.8);
  EXPECT_DOUBLE_EQ(g[0].sigma, 0.3);
  EXPECT_EQ(g[0].restart, 0);
  EXPECT_EQ(g[0].evaluations, 5);
  EXPECT_DOUBLE_EQ(g[0].wall_seconds, 3.5);
  EXPECT_DOUBLE_EQ(g[1].best, 0.7);
  EXPECT_DOUBLE_EQ(g[1].median, 0.4);
  EXPECT_DOUBLE_EQ(g[1].best_so_far, 0.8);
  EXPECT_EQ(g[1].restart, 1);
  EXPECT_DOUBLE_EQ(g[1].sigma, 0.125);
  EXPECT_EQ(g[1].evaluations, 7);
  EXPECT_TRUE(std::isnan(g[1].wall_seconds));
  const auto d = store.generations("dfs");
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].n_ok, 0);
  EXPECT_TRUE(std::isnan(d[0].best));
  EXPECT_TRUE(std::isnan(d[0].best_so_far));
  EXPECT_EQ(store.phases(), (std::vector<std::string>{"ps", "dfs"}));
}

TEST(StoreSchema, FinalRowKindsRoundTrip) {
  TempDir dir;
  auto store = RunStore::open(dir.path, make_info());
  for (auto kind : {FinalKind::Parent, FinalKind::Uniform, FinalKind::EvolvedPs,
                    FinalKind::EvolvedPsDfs, FinalKind::EvolvedDfs, FinalKind::Finalist}) {
    FinalResult r;
    r.kind = kind;
    r.phase = kind == FinalKind::EvolvedPs ? "ps" : "";
    r.label = final_kind_name(kind);
    r.split = "test";
    if (kind == FinalKind::EvolvedPs)
      r.items.push_back({"arith", "test", {0, 2, 1}, {1.0f, 0.0f, 1.0f}});
    store.add_final_result(r);
    EXPECT_EQ(final_kind_from_name(final_kind_name(kind)), kind);
  }
  const auto rows = store.final_results();
  ASSERT_EQ(rows.size(), 6u);
  EXPECT_EQ(rows[3].kind, FinalKind::EvolvedPsDfs);
  EXPECT_EQ(rows[2].phase, "ps");
  EXPECT_STREQ(final_kind_name(FinalKind::EvolvedPsDfs), "evolved_ps_dfs");
  EXPECT_FALSE(final_kind_from_name("ps best").has_value());
  EXPECT_TRUE(rows[2].items.empty());  // not asked for
  const auto with_items = store.final_results(/*with_items=*/true);
  ASSERT_EQ(with_items[2].items.size(), 1u);
  EXPECT_EQ(with_items[2].items[0].items, (std::vector<int32_t>{0, 2, 1}));
  EXPECT_EQ(with_items[2].items[0].scores, (std::vector<float>{1.0f, 0.0f, 1.0f}));
  EXPECT_TRUE(with_items[0].items.empty());
  store.clear_final_results();
  EXPECT_TRUE(store.final_results(true).empty());
}

// A run written by evomerge 0.1.0 (schema 1): its log said, per generation, best / median / sigma
//   [ps] gen 1  best 0.5000  median 0.3750  sigma 0.1463
//   [ps] gen 3  best 0.3750  median 0.3750  sigma 0.1331
//   [dfs] gen 1  best 0.3750  median 0.0625  sigma 0.4687   (fitness 0.375 0.125 0 0)
//   [dfs] gen 2  best 0.6250  median 0.0000  sigma 0.4495
TEST(StoreSchema, MigratesAVersionOneRun) {
  TempDir dir;
  load_dump(dir.path, "tests/data/run_store_v1.sql");
  {
    auto store = RunStore::open_existing(dir.path);
    EXPECT_EQ(user_version(store), 2);
    EXPECT_EQ(store.info().machine, "");  // not recorded by version 1
    const auto ps = store.generations("ps");
    ASSERT_EQ(ps.size(), 3u);
    EXPECT_DOUBLE_EQ(ps[0].best, 0.5);
    EXPECT_DOUBLE_EQ(ps[0].median, 0.375);
    EXPECT_NEAR(ps[0].sigma, 0.1463, 5e-5);
    EXPECT_NEAR(ps[2].sigma, 0.1331, 5e-5);
    EXPECT_DOUBLE_EQ(ps[2].best_so_far, 0.5);
    EXPECT_EQ(ps[2].evaluations, 12);
    EXPECT_EQ(ps[2].lambda, 4);
    EXPECT_TRUE(std::isnan(ps[0].wall_seconds));
    const auto dfs = store.generations("dfs");
    ASSERT_EQ(dfs.size(), 2u);
    EXPECT_DOUBLE_EQ(dfs[0].q3, 0.1875);  // 0.125 + 0.25 * (0.375 - 0.125)
    EXPECT_DOUBLE_EQ(dfs[0].median, 0.0625);
    EXPECT_DOUBLE_EQ(dfs[0].q1, 0.0);
    EXPECT_NEAR(dfs[1].sigma, 0.4495, 5e-5);
    EXPECT_DOUBLE_EQ(dfs[1].best_so_far, 0.625);
    EXPECT_EQ(dfs[1].evaluations, 8);
    EXPECT_EQ(store.phases(), (std::vector<std::string>{"ps", "dfs"}));

    const auto rows = store.final_results();
    ASSERT_EQ(rows.size(), 8u);
    const FinalKind kinds[] = {FinalKind::Parent,   FinalKind::Parent,    FinalKind::Parent,
                               FinalKind::Uniform,  FinalKind::EvolvedPs, FinalKind::EvolvedPsDfs,
                               FinalKind::Finalist, FinalKind::Finalist};
    const char* phases[] = {"", "", "", "", "ps", "dfs", "ps", "dfs"};
    for (size_t i = 0; i < rows.size(); ++i) {
      EXPECT_EQ(rows[i].kind, kinds[i]) << rows[i].label;
      EXPECT_EQ(rows[i].phase, phases[i]) << rows[i].label;
    }
  }
  // Opening it again finds version 2 and changes nothing.
  auto again = RunStore::open_existing(dir.path);
  EXPECT_EQ(again.generations("ps").size(), 3u);
}

TEST(StoreSchema, RefusesNewerAndForeignVersionsAndUnknownLabels) {
  TempDir dir;
  load_dump(dir.path, "tests/data/run_store_v1.sql");
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir.path / "run.db").c_str(), &db), SQLITE_OK);
  sqlite3_exec(
      db,
      "INSERT INTO final_result (label, split, task_scores, score, ci_low, ci_high, details) "
      "VALUES ('hand-made row', 'test', '{}', 0, 0, 0, '{}')",
      nullptr, nullptr, nullptr);
  sqlite3_close(db);
  const std::string unknown = error_of([&] { RunStore::open_existing(dir.path); });
  EXPECT_NE(unknown.find("'hand-made row'"), std::string::npos) << unknown;
  EXPECT_NE(unknown.find("run.db"), std::string::npos) << unknown;
  // Nothing half-migrated: still version 1, no generation table.
  ASSERT_EQ(sqlite3_open((dir.path / "run.db").c_str(), &db), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, nullptr);
  sqlite3_step(st);
  EXPECT_EQ(sqlite3_column_int64(st, 0), 1);
  sqlite3_finalize(st);
  sqlite3_exec(db, "PRAGMA user_version=3", nullptr, nullptr, nullptr);
  sqlite3_close(db);
  const std::string newer = error_of([&] { RunStore::open_existing(dir.path); });
  EXPECT_NE(newer.find("schema version 3 (this evomerge reads versions 1 and 2)"),
            std::string::npos)
      << newer;
  ASSERT_EQ(sqlite3_open((dir.path / "run.db").c_str(), &db), SQLITE_OK);
  sqlite3_exec(db, "PRAGMA user_version=0", nullptr, nullptr, nullptr);
  sqlite3_close(db);
  const std::string foreign = error_of([&] { RunStore::open_existing(dir.path); });
  EXPECT_NE(foreign.find("not an evomerge run database (schema version 0)"), std::string::npos)
      << foreign;
}
