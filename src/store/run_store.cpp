#include "store/run_store.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstring>
#include <ctime>
#include <map>
#include <utility>

#include <fcntl.h>
#include <unistd.h>

#include "common/error.h"
#include "common/hash.h"
#include "common/machine.h"
#include "io/files.h"
#include "store/generation_row.h"
#include "store/report_tables.h"
#include "store/sqlite_stmt.h"

namespace evomerge {

using store_detail::Stmt;

namespace {

constexpr int kSchemaVersion = 2;

// Schema version 1 (docs/run-store.md); a new store runs it and then the v1 -> v2 migration, so
// every store reaches version 2 through the same statements.
constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS run (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  config_json TEXT NOT NULL,
  config_text TEXT NOT NULL,
  config_hash TEXT NOT NULL,
  created TEXT NOT NULL,
  evomerge_version TEXT NOT NULL,
  seed INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS candidate (
  id INTEGER PRIMARY KEY,
  phase TEXT NOT NULL,
  generation INTEGER NOT NULL,
  idx INTEGER NOT NULL,
  genome TEXT NOT NULL,
  params TEXT NOT NULL,
  task_scores TEXT NOT NULL,
  fitness REAL,
  status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
  error TEXT,
  eval_seconds REAL NOT NULL,
  merge_seconds REAL NOT NULL,
  UNIQUE (phase, generation, idx)
);
CREATE TABLE IF NOT EXISTS item_result (
  candidate_id INTEGER NOT NULL REFERENCES candidate(id),
  task TEXT NOT NULL,
  split TEXT NOT NULL,
  n_items INTEGER NOT NULL,
  items BLOB NOT NULL,
  scores BLOB NOT NULL,
  PRIMARY KEY (candidate_id, task, split)
);
CREATE TABLE IF NOT EXISTS optimiser_state (
  phase TEXT NOT NULL,
  generation INTEGER NOT NULL,
  state BLOB NOT NULL,
  extra TEXT NOT NULL,
  created TEXT NOT NULL,
  PRIMARY KEY (phase, generation)
);
CREATE TABLE IF NOT EXISTS phase (
  name TEXT PRIMARY KEY,
  status TEXT NOT NULL,
  result TEXT NOT NULL,
  finished TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS final_result (
  id INTEGER PRIMARY KEY,
  label TEXT NOT NULL,
  split TEXT NOT NULL,
  task_scores TEXT NOT NULL,
  score REAL NOT NULL,
  ci_low REAL NOT NULL,
  ci_high REAL NOT NULL,
  details TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS artifact (
  id INTEGER PRIMARY KEY,
  kind TEXT NOT NULL,
  path TEXT NOT NULL,
  created TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS candidate_by_fitness ON candidate (phase, fitness);
)sql";

// The one v1 -> v2 migration (every schema change of version 2 goes here; docs/run-store.md):
//  - artifacts and final rows are recorded once (v1 stores could hold duplicates: resumes appended
//    artifacts, and two processes on one folder interleaved final rows; the first is kept);
//  - a final row's score and interval may be NULL: a task set of perplexities only has no weighted
//    accuracy (v1's NOT NULL made such a run fail at its last write);
//  - final_stage: the final stage's checkpoints (scored finalists, uniform-grid points), reused on
//    resume instead of re-scored;
//  - input_fingerprint: what the models and task files were when the run started;
//  - run_event: resumes with changed inputs allowed, interruptions, and the like.
constexpr const char* kMigrateV1ToV2 = R"sql(
DELETE FROM artifact WHERE id NOT IN (SELECT min(id) FROM artifact GROUP BY kind, path);
CREATE UNIQUE INDEX IF NOT EXISTS artifact_once ON artifact (kind, path);
CREATE TABLE final_result_v2 (
  id INTEGER PRIMARY KEY,
  label TEXT NOT NULL,
  split TEXT NOT NULL,
  task_scores TEXT NOT NULL,
  score REAL,
  ci_low REAL,
  ci_high REAL,
  details TEXT NOT NULL,
  UNIQUE (label, split)
);
INSERT INTO final_result_v2
  SELECT id, label, split, task_scores, score, ci_low, ci_high, details FROM final_result
  WHERE id IN (SELECT min(id) FROM final_result GROUP BY label, split);
DROP TABLE final_result;
ALTER TABLE final_result_v2 RENAME TO final_result;
CREATE TABLE IF NOT EXISTS final_stage (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL,
  created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS input_fingerprint (
  name TEXT PRIMARY KEY,
  kind TEXT NOT NULL,
  fingerprint TEXT NOT NULL,
  detail TEXT NOT NULL,
  recorded TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS run_event (
  id INTEGER PRIMARY KEY,
  kind TEXT NOT NULL,
  detail TEXT NOT NULL,
  created TEXT NOT NULL
);
PRAGMA user_version = 2;
)sql";

std::string now_utc() {
  const auto t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

nlohmann::json parse_json_column(const std::string& text, const std::filesystem::path& where,
                                 const char* column) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail("store", "{}: column '{}' holds invalid JSON: {}", where.string(), column, e.what());
  }
}

template <typename T>
std::vector<uint8_t> to_le_bytes(const std::vector<T>& v) {
  static_assert(std::endian::native == std::endian::little, "the store writes little-endian blobs");
  std::vector<uint8_t> out(v.size() * sizeof(T));
  if (!v.empty()) std::memcpy(out.data(), v.data(), out.size());
  return out;
}
template <typename T>
std::vector<T> from_le_bytes(const std::vector<uint8_t>& b, size_t n,
                             const std::filesystem::path& where) {
  if (b.size() != n * sizeof(T))
    fail("store", "{}: item_result blob of {} bytes for {} items", where.string(), b.size(), n);
  std::vector<T> out(n);
  if (n) std::memcpy(out.data(), b.data(), b.size());
  return out;
}

// Per-item results of one row of `table` (item_result: candidates, final_item_result: final rows).
void insert_items(sqlite3* db, const std::filesystem::path& where, const char* table,
                  const char* id_column, int64_t id, const std::vector<ItemResults>& items) {
  for (const auto& it : items) {
    EM_ASSERT(it.items.size() == it.scores.size());
    const auto ib = to_le_bytes(it.items), sb = to_le_bytes(it.scores);
    Stmt ir(db,
            fmt::format("INSERT INTO {} ({}, task, split, n_items, items, scores) VALUES (?, ?, ?, "
                        "?, ?, ?)",
                        table, id_column),
            where);
    ir.bind(1, id)
        .bind(2, it.task)
        .bind(3, it.split)
        .bind(4, static_cast<int64_t>(it.items.size()));
    ir.bind_blob(5, ib.data(), ib.size()).bind_blob(6, sb.data(), sb.size());
    ir.step();
  }
}

std::vector<ItemResults> read_items(sqlite3* db, const std::filesystem::path& where,
                                    const char* table, const char* id_column, int64_t id) {
  Stmt ir(db,
          fmt::format("SELECT task, split, n_items, items, scores FROM {} WHERE {} = ? ORDER BY "
                      "task, split",
                      table, id_column),
          where);
  ir.bind(1, id);
  std::vector<ItemResults> out;
  while (ir.step()) {
    ItemResults r;
    r.task = ir.text(0);
    r.split = ir.text(1);
    const auto n = ir.i64(2);
    if (n < 0 || n > (int64_t{1} << 31))
      fail("store", "{}: {} n_items {} out of range", where.string(), table, n);
    r.items = from_le_bytes<int32_t>(ir.blob(3), static_cast<size_t>(n), where);
    r.scores = from_le_bytes<float>(ir.blob(4), static_cast<size_t>(n), where);
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace

namespace {
constexpr std::pair<FinalKind, const char*> kFinalKinds[] = {
    {FinalKind::Parent, "parent"},          {FinalKind::Uniform, "uniform"},
    {FinalKind::EvolvedPs, "evolved_ps"},   {FinalKind::EvolvedPsDfs, "evolved_ps_dfs"},
    {FinalKind::EvolvedDfs, "evolved_dfs"}, {FinalKind::Finalist, "finalist"}};
}  // namespace

const char* final_kind_name(FinalKind kind) {
  for (const auto& [k, name] : kFinalKinds)
    if (k == kind) return name;
  EM_ASSERT_MSG(false, "unknown FinalKind");
  return "";
}

std::optional<FinalKind> final_kind_from_name(const std::string& name) {
  for (const auto& [k, n] : kFinalKinds)
    if (name == n) return k;
  return std::nullopt;
}

std::string config_hash(const nlohmann::json& config) {
  return fmt::format("{:016x}", fnv1a64(config.dump()));
}

void RunStore::transaction(const std::function<void()>& body) const {
  exec("BEGIN IMMEDIATE");
  try {
    body();
    exec("COMMIT");
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

void RunStore::exec(const char* sql) const {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    fail("store", "{}: {}", path_.string(), msg);
  }
}

namespace {
sqlite3* open_db(const std::filesystem::path& path, bool create) {
  sqlite3* db = nullptr;
  const int flags = SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0) | SQLITE_OPEN_NOMUTEX;
  if (sqlite3_open_v2(path.c_str(), &db, flags, nullptr) != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    fail("store", "{}: cannot open: {}", path.string(), msg);
  }
  sqlite3_busy_timeout(db, 5000);
  return db;
}

// One integer from a query such as "PRAGMA user_version"; nullopt when SQLite refuses the file.
std::optional<int64_t> query_int(sqlite3* db, const char* sql) {
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(db, sql, -1, &s, nullptr) != SQLITE_OK) return std::nullopt;
  std::optional<int64_t> v;
  if (sqlite3_step(s) == SQLITE_ROW) v = sqlite3_column_int64(s, 0);
  sqlite3_finalize(s);
  return v;
}

void remove_db_files(const std::filesystem::path& db) {
  std::error_code ec;
  for (const char* suffix : {"", "-wal", "-shm", "-journal"})
    std::filesystem::remove(db.string() + suffix, ec);
}

// A store whose creation never finished (killed before its first commit, or made by an evomerge
// that created it in place): empty, or a SQLite file with no tables and version 0. Anything else
// that is not a version-1/2 store is someone's file and is refused, never deleted.
bool is_half_created(const std::filesystem::path& db_path) {
  std::error_code ec;
  if (std::filesystem::file_size(db_path, ec) == 0 && !ec) return true;
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    sqlite3_close(db);
    return false;
  }
  const auto version = query_int(db, "PRAGMA user_version");
  const auto tables = query_int(db, "SELECT count(*) FROM sqlite_master");
  sqlite3_close(db);
  return version == 0 && tables == 0;
}

// Staging files of creations that died before their rename (`run.db.tmp-PID`). Only called while
// holding the folder lock, so no living process is writing them.
void remove_stale_creations(const std::filesystem::path& dir) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("run.db.tmp-", 0) == 0) std::filesystem::remove(e.path(), ec);
  }
}

void fsync_path(const std::filesystem::path& p) {
  const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}
}  // namespace

void RunStore::migrate() {
  const auto version = query_int(db_, "PRAGMA user_version");
  if (!version)
    fail("store", "{}: not a SQLite database ({}); move it away or use another --run folder",
         path_.string(), sqlite3_errmsg(db_));
  if (*version == kSchemaVersion) return;
  if (*version == 1) {
    transaction([&] {
      exec(kMigrateV1ToV2);
      store_detail::migrate_v1_to_v2_report_tables(db_, path_);
    });
    return;
  }
  if (*version == 0)
    fail("store",
         "{}: not an evomerge run database (schema version 0); move it away or use another "
         "--run folder",
         path_.string());
  fail("store",
       "{}: schema version {} (this evomerge reads versions 1 and {}); use a newer evomerge",
       path_.string(), *version, kSchemaVersion);
}

// Creates the database under a temporary name and renames it into place once it holds the schema
// and the run row, so `run.db` either does not exist or is complete.
void RunStore::create(const std::filesystem::path& dir, RunInfo& info) {
  const auto temp = dir / fmt::format("run.db.tmp-{}", ::getpid());
  remove_db_files(temp);
  db_ = open_db(temp, true);
  path_ = temp;
  exec("BEGIN");
  exec(kSchema);
  exec(kMigrateV1ToV2);
  store_detail::migrate_v1_to_v2_report_tables(db_, path_);
  info.created = now_utc();
  if (info.machine.empty()) info.machine = machine_summary();
  Stmt(db_,
       "INSERT INTO run (id, config_json, config_text, config_hash, created, evomerge_version, "
       "seed, machine) VALUES (1, ?, ?, ?, ?, ?, ?, ?)",
       path_)
      .bind(1, info.config.dump())
      .bind(2, info.config_text)
      .bind(3, info.config_hash)
      .bind(4, info.created)
      .bind(5, info.evomerge_version)
      .bind(6, static_cast<int64_t>(info.seed))
      .bind(7, info.machine)
      .step();
  exec("COMMIT");
  sqlite3_close(db_);
  db_ = nullptr;
  fsync_path(temp);
  path_ = dir / "run.db";
  rename_file(temp, path_);
  fsync_path(dir);
  db_ = open_db(path_, false);
}

RunStore RunStore::open(const std::filesystem::path& dir, RunInfo info) {
  std::error_code ec;
  if (std::filesystem::exists(dir, ec) && !std::filesystem::is_directory(dir, ec))
    fail("store", "{}: the run folder is a file; give a folder (new or of this run)", dir.string());
  std::filesystem::create_directories(dir, ec);
  if (ec) fail("store", "{}: cannot create the run folder: {}", dir.string(), ec.message());
  RunStore store;
  store.lock_ = RunFolderLock(dir);
  remove_stale_creations(dir);
  store.path_ = dir / "run.db";
  info.config_hash = config_hash(info.config);
  bool existed = std::filesystem::exists(store.path_);
  if (existed && is_half_created(store.path_)) {
    remove_db_files(store.path_);
    store.recreated_ = true;
    existed = false;
  }
  if (!existed) {
    store.create(dir, info);
    store.exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;");
    store.info_ = std::move(info);
    return store;
  }
  store.db_ = open_db(store.path_, false);
  store.migrate();  // first: names a file that is not a run store before anything writes to it
  store.exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;");
  store.read_info();
  if (store.info_.config_hash != info.config_hash) {
    // Name what differs (JSON-patch paths of the canonical configs).
    std::string fields;
    const auto patch = nlohmann::json::diff(store.info_.config, info.config);
    for (size_t i = 0; i < patch.size() && i < 8; ++i)
      fields += (i ? ", " : "") + patch[i].value("path", std::string("?"));
    if (patch.size() > 8) fields += fmt::format(", ... ({} in all)", patch.size());
    fail("store",
         "{}: this run folder was made by a different config (differs at {}); refusing to resume "
         "it: use a new --run folder, or the original config",
         store.path_.string(), fields.empty() ? "?" : fields);
  }
  store.resumed_ = true;
  return store;
}

RunStore RunStore::open_existing(const std::filesystem::path& dir) {
  RunStore store;
  store.path_ = dir / "run.db";
  if (!std::filesystem::exists(store.path_))
    fail("store", "{}: no run database here", store.path_.string());
  store.db_ = open_db(store.path_, false);
  store.exec("PRAGMA foreign_keys=ON;");
  store.migrate();
  store.read_info();
  store.resumed_ = true;
  return store;
}

void RunStore::read_info() {
  Stmt q(db_,
         "SELECT config_json, config_text, config_hash, created, evomerge_version, seed, machine "
         "FROM run WHERE id = 1",
         path_);
  if (!q.step()) fail("store", "{}: table 'run' has no row", path_.string());
  info_.config = parse_json_column(q.text(0), path_, "run.config_json");
  info_.config_text = q.text(1);
  info_.config_hash = q.text(2);
  info_.created = q.text(3);
  info_.evomerge_version = q.text(4);
  info_.seed = static_cast<uint64_t>(q.i64(5));
  info_.machine = q.text(6);
}

RunStore::RunStore(RunStore&& o) noexcept
    : db_(std::exchange(o.db_, nullptr)),
      path_(std::move(o.path_)),
      info_(std::move(o.info_)),
      resumed_(o.resumed_),
      recreated_(o.recreated_),
      lock_(std::move(o.lock_)) {}
RunStore& RunStore::operator=(RunStore&& o) noexcept {
  if (this != &o) {
    if (db_) sqlite3_close(db_);
    db_ = std::exchange(o.db_, nullptr);
    path_ = std::move(o.path_);
    info_ = std::move(o.info_);
    resumed_ = o.resumed_;
    recreated_ = o.recreated_;
    lock_ = std::move(o.lock_);
  }
  return *this;
}
RunStore::~RunStore() {
  if (db_) sqlite3_close(db_);
}

namespace {
GenerationStats generation_stats(const std::vector<CandidateRecord>& candidates,
                                 const OptimiserState& state) {
  GenerationStats g;
  g.phase = state.phase;
  g.generation = state.generation;
  g.lambda = static_cast<int>(candidates.size());
  g.restart = state.restart;
  g.sigma = state.sigma;
  g.evaluations = state.evaluations;
  g.wall_seconds = state.wall_seconds;
  g.created = now_utc();
  std::vector<double> fitness;
  for (const auto& c : candidates) fitness.push_back(c.ok ? c.fitness : std::nan(""));
  store_detail::summarise_fitness(fitness, g);
  store_detail::stats_from_state_blob(state.state, g);
  return g;
}
}  // namespace

void RunStore::commit_generation(const std::vector<CandidateRecord>& candidates,
                                 const OptimiserState& state) {
  transaction([&] {
    {
      Stmt dup(db_, "SELECT 1 FROM optimiser_state WHERE phase = ? AND generation = ?", path_);
      dup.bind(1, state.phase).bind(2, state.generation);
      if (dup.step())
        fail("store", "{}: generation {} of phase '{}' is already stored", path_.string(),
             state.generation, state.phase);
    }
    for (const auto& c : candidates) {
      EM_ASSERT(c.phase == state.phase && c.generation == state.generation);
      Stmt ins(db_,
               "INSERT INTO candidate (phase, generation, idx, genome, params, task_scores, "
               "fitness, status, error, "
               "eval_seconds, merge_seconds) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
               path_);
      ins.bind(1, c.phase).bind(2, c.generation).bind(3, static_cast<int64_t>(c.index));
      ins.bind(4, c.genome.dump()).bind(5, c.params.dump()).bind(6, c.task_scores.dump());
      if (c.ok && std::isfinite(c.fitness))
        ins.bind(7, c.fitness);
      else
        ins.bind_null(7);
      ins.bind(8, std::string(c.ok ? "ok" : "failed"));
      if (c.ok)
        ins.bind_null(9);
      else
        ins.bind(9, c.error);
      ins.bind(10, c.eval_seconds).bind(11, c.merge_seconds);
      ins.step();
      insert_items(db_, path_, "item_result", "candidate_id", sqlite3_last_insert_rowid(db_),
                   c.items);
    }
    Stmt st(db_,
            "INSERT INTO optimiser_state (phase, generation, state, extra, created) VALUES (?, ?, "
            "?, ?, ?)",
            path_);
    st.bind(1, state.phase)
        .bind(2, state.generation)
        .bind_blob(3, state.state.data(), state.state.size());
    st.bind(4, state.extra.dump()).bind(5, now_utc());
    st.step();
    store_detail::insert_generation(db_, path_, generation_stats(candidates, state));
  });
}

std::optional<OptimiserState> RunStore::last_state(const std::string& phase) const {
  Stmt q(db_,
         "SELECT generation, state, extra FROM optimiser_state WHERE phase = ? ORDER BY generation "
         "DESC LIMIT 1",
         path_);
  q.bind(1, phase);
  if (!q.step()) return std::nullopt;
  OptimiserState s;
  s.phase = phase;
  s.generation = q.i64(0);
  s.state = q.blob(1);
  s.extra = parse_json_column(q.text(2), path_, "optimiser_state.extra");
  return s;
}

namespace {
constexpr const char* kCandidateColumns =
    "id, phase, generation, idx, genome, params, task_scores, fitness, status, error, "
    "eval_seconds, merge_seconds";
}

std::vector<CandidateRecord> RunStore::candidates(const std::string& phase, int64_t generation,
                                                  bool with_items) const {
  std::string sql =
      fmt::format("SELECT {} FROM candidate WHERE phase = ?{} ORDER BY generation, idx",
                  kCandidateColumns, generation >= 0 ? " AND generation = ?" : "");
  Stmt q(db_, sql, path_);
  q.bind(1, phase);
  if (generation >= 0) q.bind(2, generation);
  std::vector<CandidateRecord> out;
  while (q.step()) {
    CandidateRecord c;
    c.id = q.i64(0);
    c.phase = q.text(1);
    c.generation = q.i64(2);
    c.index = static_cast<int>(q.i64(3));
    c.genome = parse_json_column(q.text(4), path_, "candidate.genome");
    c.params = parse_json_column(q.text(5), path_, "candidate.params");
    c.task_scores = parse_json_column(q.text(6), path_, "candidate.task_scores");
    c.fitness = q.is_null(7) ? std::nan("") : q.f64(7);
    c.ok = q.text(8) == "ok";
    c.error = q.text(9);
    c.eval_seconds = q.f64(10);
    c.merge_seconds = q.f64(11);
    out.push_back(std::move(c));
  }
  if (with_items)
    for (auto& c : out) c.items = read_items(db_, path_, "item_result", "candidate_id", c.id);
  return out;
}

std::vector<GenerationStats> RunStore::generations(const std::string& phase) const {
  Stmt q(
      db_,
      "SELECT generation, restart, lambda, n_ok, best, q1, median, q3, worst, best_so_far, sigma, "
      "evaluations, wall_seconds, created FROM generation WHERE phase = ? ORDER BY generation",
      path_);
  q.bind(1, phase);
  std::vector<GenerationStats> out;
  auto real = [&](int c) { return q.is_null(c) ? std::nan("") : q.f64(c); };
  while (q.step()) {
    GenerationStats g;
    g.phase = phase;
    g.generation = q.i64(0);
    g.restart = static_cast<int>(q.i64(1));
    g.lambda = static_cast<int>(q.i64(2));
    g.n_ok = static_cast<int>(q.i64(3));
    g.best = real(4), g.q1 = real(5), g.median = real(6), g.q3 = real(7), g.worst = real(8);
    g.best_so_far = real(9);
    g.sigma = real(10);
    g.evaluations = q.i64(11);
    g.wall_seconds = real(12);
    g.created = q.text(13);
    out.push_back(std::move(g));
  }
  return out;
}

std::vector<std::string> RunStore::phases() const {
  Stmt q(db_, "SELECT phase FROM generation GROUP BY phase ORDER BY min(created), min(rowid)",
         path_);
  std::vector<std::string> out;
  while (q.step()) out.push_back(q.text(0));
  return out;
}

std::optional<CandidateRecord> RunStore::best_candidate(const std::string& phase) const {
  Stmt q(db_,
         "SELECT generation, idx FROM candidate WHERE phase = ? AND status = 'ok' AND fitness IS "
         "NOT NULL "
         "ORDER BY fitness DESC, generation, idx LIMIT 1",
         path_);
  q.bind(1, phase);
  if (!q.step()) return std::nullopt;
  const int64_t g = q.i64(0), idx = q.i64(1);
  for (auto& c : candidates(phase, g, true))
    if (c.index == idx) return c;
  return std::nullopt;
}

void RunStore::set_phase_done(const std::string& phase, const nlohmann::json& result) {
  Stmt(db_,
       "INSERT OR REPLACE INTO phase (name, status, result, finished) VALUES (?, 'done', ?, ?)",
       path_)
      .bind(1, phase)
      .bind(2, result.dump())
      .bind(3, now_utc())
      .step();
}

std::optional<nlohmann::json> RunStore::phase_result(const std::string& phase) const {
  Stmt q(db_, "SELECT result FROM phase WHERE name = ? AND status = 'done'", path_);
  q.bind(1, phase);
  if (!q.step()) return std::nullopt;
  return parse_json_column(q.text(0), path_, "phase.result");
}

void RunStore::add_final_result(const FinalResult& r) {
  transaction([&] {
    Stmt(db_,
         "INSERT INTO final_result (label, split, task_scores, score, ci_low, ci_high, details, "
         "kind, phase) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (label, split) DO UPDATE SET "
         "task_scores = excluded.task_scores, score = excluded.score, ci_low = excluded.ci_low, "
         "ci_high = excluded.ci_high, details = excluded.details, kind = excluded.kind, "
         "phase = excluded.phase",
         path_)
        .bind(1, r.label)
        .bind(2, r.split)
        .bind(3, r.task_scores.dump())
        .bind(4, r.score)
        .bind(5, r.ci_low)
        .bind(6, r.ci_high)
        .bind(7, r.details.dump())
        .bind(8, std::string(final_kind_name(r.kind)))
        .bind(9, r.phase)
        .step();
    // The row's id (an upsert keeps the replaced row's id); its items are replaced too.
    Stmt id(db_, "SELECT id FROM final_result WHERE label = ? AND split = ?", path_);
    id.bind(1, r.label).bind(2, r.split);
    EM_ASSERT(id.step());
    Stmt(db_, "DELETE FROM final_item_result WHERE final_id = ?", path_).bind(1, id.i64(0)).step();
    insert_items(db_, path_, "final_item_result", "final_id", id.i64(0), r.items);
  });
}

std::vector<FinalResult> RunStore::read_final_results(const std::string& where,
                                                      const std::vector<std::string>& args,
                                                      bool with_items) const {
  Stmt q(db_,
         "SELECT label, split, task_scores, score, ci_low, ci_high, details, kind, phase, id FROM "
         "final_result " +
             where + " ORDER BY id",
         path_);
  for (size_t i = 0; i < args.size(); ++i) q.bind(static_cast<int>(i) + 1, args[i]);
  std::vector<FinalResult> out;
  while (q.step()) {
    FinalResult r;
    r.label = q.text(0);
    r.split = q.text(1);
    r.task_scores = parse_json_column(q.text(2), path_, "final_result.task_scores");
    r.score = q.is_null(3) ? std::nan("") : q.f64(3);
    r.ci_low = q.is_null(4) ? std::nan("") : q.f64(4);
    r.ci_high = q.is_null(5) ? std::nan("") : q.f64(5);
    r.details = parse_json_column(q.text(6), path_, "final_result.details");
    const auto kind = final_kind_from_name(q.text(7));
    if (!kind) fail("store", "{}: final_result.kind '{}' is unknown", path_.string(), q.text(7));
    r.kind = *kind;
    r.phase = q.text(8);
    if (with_items) r.items = read_items(db_, path_, "final_item_result", "final_id", q.i64(9));
    out.push_back(std::move(r));
  }
  return out;
}

std::vector<FinalResult> RunStore::final_results(bool with_items) const {
  return read_final_results("", {}, with_items);
}

std::optional<FinalResult> RunStore::final_result(const std::string& label,
                                                  const std::string& split) const {
  auto rows = read_final_results("WHERE label = ? AND split = ?", {label, split}, true);
  if (rows.empty()) return std::nullopt;
  return std::move(rows[0]);
}

void RunStore::put_final_stage(const std::string& key, const nlohmann::json& value) {
  Stmt(db_, "INSERT OR REPLACE INTO final_stage (key, value, created) VALUES (?, ?, ?)", path_)
      .bind(1, key)
      .bind(2, value.dump())
      .bind(3, now_utc())
      .step();
}

std::optional<nlohmann::json> RunStore::final_stage(const std::string& key) const {
  Stmt q(db_, "SELECT value FROM final_stage WHERE key = ?", path_);
  q.bind(1, key);
  if (!q.step()) return std::nullopt;
  return parse_json_column(q.text(0), path_, "final_stage.value");
}

void RunStore::set_input_fingerprints(const std::vector<InputFingerprint>& inputs) {
  transaction([&] {
    exec("DELETE FROM input_fingerprint");
    for (const auto& in : inputs)
      Stmt(
          db_,
          "INSERT INTO input_fingerprint (name, kind, fingerprint, detail, recorded) VALUES (?, ?, "
          "?, ?, ?)",
          path_)
          .bind(1, in.name)
          .bind(2, in.kind)
          .bind(3, in.fingerprint)
          .bind(4, in.detail.dump())
          .bind(5, now_utc())
          .step();
  });
}

std::vector<InputFingerprint> RunStore::input_fingerprints() const {
  Stmt q(db_, "SELECT name, kind, fingerprint, detail FROM input_fingerprint ORDER BY name", path_);
  std::vector<InputFingerprint> out;
  while (q.step())
    out.push_back({q.text(0), q.text(1), q.text(2),
                   parse_json_column(q.text(3), path_, "input_fingerprint.detail")});
  return out;
}

void RunStore::set_pareto_front(const std::string& phase,
                                const std::vector<ParetoMember>& members) {
  transaction([&] {
    exec(
        "CREATE TABLE IF NOT EXISTS pareto_front (id INTEGER PRIMARY KEY, phase TEXT NOT NULL, "
        "rank INTEGER NOT NULL, label TEXT NOT NULL, genome TEXT NOT NULL, params TEXT NOT NULL, "
        "selection_scores TEXT NOT NULL, test_scores TEXT NOT NULL, created TEXT NOT NULL)");
    Stmt(db_, "DELETE FROM pareto_front WHERE phase = ?", path_).bind(1, phase).step();
    for (size_t i = 0; i < members.size(); ++i)
      Stmt(db_,
           "INSERT INTO pareto_front (phase, rank, label, genome, params, selection_scores, "
           "test_scores, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
           path_)
          .bind(1, phase)
          .bind(2, static_cast<int64_t>(i))
          .bind(3, members[i].label)
          .bind(4, members[i].genome.dump())
          .bind(5, members[i].params.dump())
          .bind(6, members[i].selection_scores.dump())
          .bind(7, members[i].test_scores.dump())
          .bind(8, now_utc())
          .step();
  });
}

std::vector<ParetoMember> RunStore::pareto_front(const std::string& phase) const {
  std::vector<ParetoMember> out;
  Stmt exists(db_, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'pareto_front'",
              path_);
  if (!exists.step()) return out;
  Stmt q(db_,
         "SELECT label, genome, params, selection_scores, test_scores FROM pareto_front WHERE "
         "phase = ? ORDER BY rank",
         path_);
  q.bind(1, phase);
  while (q.step())
    out.push_back({q.text(0), parse_json_column(q.text(1), path_, "pareto_front.genome"),
                   parse_json_column(q.text(2), path_, "pareto_front.params"),
                   parse_json_column(q.text(3), path_, "pareto_front.selection_scores"),
                   parse_json_column(q.text(4), path_, "pareto_front.test_scores")});
  return out;
}

void RunStore::add_event(const std::string& kind, const nlohmann::json& detail) {
  Stmt(db_, "INSERT INTO run_event (kind, detail, created) VALUES (?, ?, ?)", path_)
      .bind(1, kind)
      .bind(2, detail.dump())
      .bind(3, now_utc())
      .step();
}

std::vector<std::pair<std::string, nlohmann::json>> RunStore::events() const {
  Stmt q(db_, "SELECT kind, detail FROM run_event ORDER BY id", path_);
  std::vector<std::pair<std::string, nlohmann::json>> out;
  while (q.step())
    out.emplace_back(q.text(0), parse_json_column(q.text(1), path_, "run_event.detail"));
  return out;
}

std::vector<std::string> changed_inputs(const std::vector<InputFingerprint>& recorded,
                                        const std::vector<InputFingerprint>& now) {
  std::map<std::string, const InputFingerprint*> old;
  for (const auto& r : recorded) old[r.name] = &r;
  std::vector<std::string> out;
  for (const auto& n : now) {
    const auto it = old.find(n.name);
    if (it == old.end()) {
      out.push_back(fmt::format("{} '{}' is new", n.kind, n.name));
      continue;
    }
    if (it->second->fingerprint != n.fingerprint) {
      // The detail maps parts (files) to their own fingerprints: name the parts that changed.
      std::vector<std::string> parts;
      const auto& a = it->second->detail;
      for (auto p = n.detail.begin(); p != n.detail.end(); ++p)
        if (!a.contains(p.key()) || a[p.key()] != p.value()) parts.push_back(p.key());
      for (auto p = a.begin(); p != a.end(); ++p)
        if (!n.detail.contains(p.key())) parts.push_back(p.key() + " (gone)");
      out.push_back(fmt::format(
          "{} '{}' changed{}", n.kind, n.name,
          parts.empty() ? std::string() : fmt::format(" ({})", fmt::join(parts, ", "))));
    }
    old.erase(it);
  }
  for (const auto& [name, r] : old)
    out.push_back(fmt::format("{} '{}' is no longer used", r->kind, name));
  return out;
}

void RunStore::clear_final_results() {
  exec("DELETE FROM final_item_result; DELETE FROM final_result;");
}

void RunStore::add_artifact(const std::string& kind, const std::filesystem::path& path) {
  Stmt(db_, "INSERT OR IGNORE INTO artifact (kind, path, created) VALUES (?, ?, ?)", path_)
      .bind(1, kind)
      .bind(2, path.string())
      .bind(3, now_utc())
      .step();
}

std::vector<std::pair<std::string, std::string>> RunStore::artifacts() const {
  Stmt q(db_, "SELECT kind, path FROM artifact ORDER BY id", path_);
  std::vector<std::pair<std::string, std::string>> out;
  while (q.step()) out.emplace_back(q.text(0), q.text(1));
  return out;
}

}  // namespace evomerge
