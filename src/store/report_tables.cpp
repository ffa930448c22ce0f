#include "store/report_tables.h"

#include <fmt/format.h>

#include <cmath>
#include <string>
#include <vector>

#include "common/error.h"
#include "store/generation_row.h"
#include "store/sqlite_stmt.h"

namespace evomerge::store_detail {

namespace {

// Version 2's new tables and columns. `kind` and `phase` make the final table's rows data (what a
// report draws) instead of display labels; the CHECK lists every kind (FinalKind in run_store.h).
// `final_item_result` keeps the final rows' per-item results (paired comparisons), as
// `item_result` does for candidates.
constexpr const char* kV1ToV2 = R"sql(
CREATE TABLE generation (
  phase TEXT NOT NULL,
  generation INTEGER NOT NULL,
  restart INTEGER NOT NULL,
  lambda INTEGER NOT NULL,
  n_ok INTEGER NOT NULL,
  best REAL, q1 REAL, median REAL, q3 REAL, worst REAL,
  best_so_far REAL,
  sigma REAL,
  evaluations INTEGER NOT NULL,
  wall_seconds REAL,
  created TEXT NOT NULL,
  PRIMARY KEY (phase, generation)
);
ALTER TABLE final_result ADD COLUMN kind TEXT NOT NULL DEFAULT 'parent'
  CHECK (kind IN ('parent', 'uniform', 'evolved_ps', 'evolved_ps_dfs', 'evolved_dfs', 'finalist'));
ALTER TABLE final_result ADD COLUMN phase TEXT NOT NULL DEFAULT '';
ALTER TABLE run ADD COLUMN machine TEXT NOT NULL DEFAULT '';
CREATE TABLE final_item_result (
  final_id INTEGER NOT NULL REFERENCES final_result(id),
  task TEXT NOT NULL,
  split TEXT NOT NULL,
  n_items INTEGER NOT NULL,
  items BLOB NOT NULL,
  scores BLOB NOT NULL,
  PRIMARY KEY (final_id, task, split)
);
)sql";

// Version 1 wrote the row kind into the label only; these are the labels it wrote
// (evolve_run.cpp of 0.1.0), most specific first. NULL: a label it never wrote.
constexpr const char* kV1KindOfLabel = R"sql(CASE
    WHEN label GLOB 'parent: *' THEN 'parent'
    WHEN label GLOB 'uniform *' THEN 'uniform'
    WHEN label GLOB 'evolved PS+DFS*' THEN 'evolved_ps_dfs'
    WHEN label GLOB 'evolved DFS*' THEN 'evolved_dfs'
    WHEN label GLOB 'evolved PS*' THEN 'evolved_ps'
    WHEN label GLOB 'PS finalist *' OR label GLOB 'DFS finalist *' THEN 'finalist'
  END)sql";
constexpr const char* kV1PhaseOfLabel = R"sql(CASE
    WHEN label GLOB 'evolved PS (*' OR label GLOB 'PS finalist *' THEN 'ps'
    WHEN label GLOB 'evolved *DFS*' OR label GLOB 'DFS finalist *' THEN 'dfs'
    ELSE ''
  END)sql";

void exec(sqlite3* db, const char* sql, const std::filesystem::path& where) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    fail("store", "{}: {}", where.string(), msg);
  }
}

// One `generation` row per stored optimiser state of a version-1 database: the fitness statistics
// from its candidates, sigma / restart / evaluations from the CMA-ES state (CBOR of
// Cmaes::to_json(): "last" holds the generation's summary). Wall time was not recorded (NULL).
void backfill_generations(sqlite3* db, const std::filesystem::path& where) {
  Stmt states(
      db,
      "SELECT phase, generation, state, created FROM optimiser_state ORDER BY phase, generation",
      where);
  while (states.step()) {
    GenerationStats g;
    g.phase = states.text(0);
    g.generation = states.i64(1);
    g.created = states.text(3);
    std::vector<double> fitness;
    {
      Stmt c(db, "SELECT fitness, status FROM candidate WHERE phase = ? AND generation = ?", where);
      c.bind(1, g.phase).bind(2, g.generation);
      while (c.step()) {
        ++g.lambda;
        fitness.push_back(!c.is_null(0) && c.text(1) == "ok" ? c.f64(0) : std::nan(""));
      }
    }
    stats_from_state_blob(states.blob(2), g);
    summarise_fitness(fitness, g);
    insert_generation(db, where, g);
  }
}

}  // namespace

void migrate_v1_to_v2_report_tables(sqlite3* db, const std::filesystem::path& where) {
  exec(db, kV1ToV2, where);
  {
    Stmt unknown(
        db,
        fmt::format("SELECT label FROM final_result WHERE ({}) IS NULL LIMIT 1", kV1KindOfLabel),
        where);
    if (unknown.step())
      fail(
          "store",
          "{}: final_result row '{}' is not one evomerge 0.1.0 writes; cannot migrate it to schema "
          "version 2",
          where.string(), unknown.text(0));
  }
  exec(db,
       fmt::format("UPDATE final_result SET kind = {}, phase = {}", kV1KindOfLabel, kV1PhaseOfLabel)
           .c_str(),
       where);
  backfill_generations(db, where);
}

}  // namespace evomerge::store_detail
