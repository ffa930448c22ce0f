#include "store/run_store.h"

#include <fmt/format.h>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstring>
#include <ctime>
#include <utility>

#include "common/error.h"

namespace evomerge {

namespace {

constexpr int kSchemaVersion = 1;

// Schema version 1 (docs/run-store.md).
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

std::string now_utc() {
  const auto t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// A prepared statement with positional binds; finalised on scope exit.
class Stmt {
 public:
  Stmt(sqlite3* db, const std::string& sql, const std::filesystem::path& where)
      : db_(db), where_(where) {
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &s_, nullptr) != SQLITE_OK)
      fail("store", "{}: {} (in: {})", where_.string(), sqlite3_errmsg(db), sql);
  }
  ~Stmt() { sqlite3_finalize(s_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Stmt& bind(int i, const std::string& v) {
    return check(sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
  }
  Stmt& bind(int i, int64_t v) { return check(sqlite3_bind_int64(s_, i, v)); }
  Stmt& bind(int i, double v) { return check(sqlite3_bind_double(s_, i, v)); }
  Stmt& bind_blob(int i, const void* p, size_t n) {
    // A zero-length blob must still be a blob, not NULL (the columns are NOT NULL).
    static const char empty = 0;
    return check(sqlite3_bind_blob64(s_, i, n ? p : &empty, n, SQLITE_TRANSIENT));
  }
  Stmt& bind_null(int i) { return check(sqlite3_bind_null(s_, i)); }

  // true while a row is available
  bool step() {
    const int rc = sqlite3_step(s_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    fail("store", "{}: {}", where_.string(), sqlite3_errmsg(db_));
  }
  int64_t i64(int c) const { return sqlite3_column_int64(s_, c); }
  double f64(int c) const { return sqlite3_column_double(s_, c); }
  bool is_null(int c) const { return sqlite3_column_type(s_, c) == SQLITE_NULL; }
  std::string text(int c) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(s_, c));
    return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(s_, c))) : std::string();
  }
  std::vector<uint8_t> blob(int c) const {
    const auto* p = static_cast<const uint8_t*>(sqlite3_column_blob(s_, c));
    const int n = sqlite3_column_bytes(s_, c);
    return p ? std::vector<uint8_t>(p, p + n) : std::vector<uint8_t>();
  }

 private:
  Stmt& check(int rc) {
    if (rc != SQLITE_OK) fail("store", "{}: bind: {}", where_.string(), sqlite3_errmsg(db_));
    return *this;
  }
  sqlite3* db_;
  sqlite3_stmt* s_ = nullptr;
  std::filesystem::path where_;
};

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

}  // namespace

std::string config_hash(const nlohmann::json& config) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : config.dump()) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return fmt::format("{:016x}", h);
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
}  // namespace

RunStore RunStore::open(const std::filesystem::path& dir, RunInfo info) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) fail("store", "{}: cannot create the run folder: {}", dir.string(), ec.message());
  RunStore store;
  store.path_ = dir / "run.db";
  const bool existed = std::filesystem::exists(store.path_);
  store.db_ = open_db(store.path_, true);
  store.exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;");
  info.config_hash = config_hash(info.config);
  if (existed) {
    RunStore old = open_existing(dir);
    if (old.info_.config_hash != info.config_hash) {
      // Name what differs (JSON-patch paths of the canonical configs).
      std::string fields;
      const auto patch = nlohmann::json::diff(old.info_.config, info.config);
      for (size_t i = 0; i < patch.size() && i < 8; ++i)
        fields += (i ? ", " : "") + patch[i].value("path", std::string("?"));
      if (patch.size() > 8) fields += fmt::format(", ... ({} in all)", patch.size());
      fail("store",
           "{}: this run folder was made by a different config (differs at {}); refusing to resume "
           "it: use a new --run folder, or the original config",
           store.path_.string(), fields.empty() ? "?" : fields);
    }
    store.info_ = old.info_;
    store.resumed_ = true;
    return store;
  }
  store.exec("BEGIN");
  store.exec(kSchema);
  store.exec(fmt::format("PRAGMA user_version={}", kSchemaVersion).c_str());
  info.created = now_utc();
  Stmt(store.db_,
       "INSERT INTO run (id, config_json, config_text, config_hash, created, evomerge_version, "
       "seed) "
       "VALUES (1, ?, ?, ?, ?, ?, ?)",
       store.path_)
      .bind(1, info.config.dump())
      .bind(2, info.config_text)
      .bind(3, info.config_hash)
      .bind(4, info.created)
      .bind(5, info.evomerge_version)
      .bind(6, static_cast<int64_t>(info.seed))
      .step();
  store.exec("COMMIT");
  store.info_ = std::move(info);
  return store;
}

RunStore RunStore::open_existing(const std::filesystem::path& dir) {
  RunStore store;
  store.path_ = dir / "run.db";
  if (!std::filesystem::exists(store.path_))
    fail("store", "{}: no run database here", store.path_.string());
  store.db_ = open_db(store.path_, false);
  store.exec("PRAGMA foreign_keys=ON;");
  {
    Stmt v(store.db_, "PRAGMA user_version", store.path_);
    v.step();
    if (v.i64(0) != kSchemaVersion)
      fail("store", "{}: schema version {} (this evomerge reads version {})", store.path_.string(),
           v.i64(0), kSchemaVersion);
  }
  Stmt q(store.db_,
         "SELECT config_json, config_text, config_hash, created, evomerge_version, seed FROM run "
         "WHERE id = 1",
         store.path_);
  if (!q.step()) fail("store", "{}: table 'run' has no row", store.path_.string());
  store.info_.config = parse_json_column(q.text(0), store.path_, "run.config_json");
  store.info_.config_text = q.text(1);
  store.info_.config_hash = q.text(2);
  store.info_.created = q.text(3);
  store.info_.evomerge_version = q.text(4);
  store.info_.seed = static_cast<uint64_t>(q.i64(5));
  store.resumed_ = true;
  return store;
}

RunStore::RunStore(RunStore&& o) noexcept
    : db_(std::exchange(o.db_, nullptr)),
      path_(std::move(o.path_)),
      info_(std::move(o.info_)),
      resumed_(o.resumed_) {}
RunStore& RunStore::operator=(RunStore&& o) noexcept {
  if (this != &o) {
    if (db_) sqlite3_close(db_);
    db_ = std::exchange(o.db_, nullptr);
    path_ = std::move(o.path_);
    info_ = std::move(o.info_);
    resumed_ = o.resumed_;
  }
  return *this;
}
RunStore::~RunStore() {
  if (db_) sqlite3_close(db_);
}

void RunStore::commit_generation(const std::vector<CandidateRecord>& candidates,
                                 const OptimiserState& state) {
  exec("BEGIN IMMEDIATE");
  try {
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
      const int64_t id = sqlite3_last_insert_rowid(db_);
      for (const auto& it : c.items) {
        EM_ASSERT(it.items.size() == it.scores.size());
        const auto ib = to_le_bytes(it.items), sb = to_le_bytes(it.scores);
        Stmt ir(db_,
                "INSERT INTO item_result (candidate_id, task, split, n_items, items, scores) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                path_);
        ir.bind(1, id)
            .bind(2, it.task)
            .bind(3, it.split)
            .bind(4, static_cast<int64_t>(it.items.size()));
        ir.bind_blob(5, ib.data(), ib.size()).bind_blob(6, sb.data(), sb.size());
        ir.step();
      }
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
    exec("COMMIT");
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
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
  if (with_items) {
    for (auto& c : out) {
      Stmt ir(db_,
              "SELECT task, split, n_items, items, scores FROM item_result WHERE candidate_id = ? "
              "ORDER BY task, split",
              path_);
      ir.bind(1, c.id);
      while (ir.step()) {
        ItemResults r;
        r.task = ir.text(0);
        r.split = ir.text(1);
        const auto n = ir.i64(2);
        if (n < 0 || n > (int64_t{1} << 31))
          fail("store", "{}: item_result n_items {} out of range", path_.string(), n);
        r.items = from_le_bytes<int32_t>(ir.blob(3), static_cast<size_t>(n), path_);
        r.scores = from_le_bytes<float>(ir.blob(4), static_cast<size_t>(n), path_);
        c.items.push_back(std::move(r));
      }
    }
  }
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
  Stmt(db_,
       "INSERT INTO final_result (label, split, task_scores, score, ci_low, ci_high, details) "
       "VALUES (?, ?, ?, ?, ?, ?, ?)",
       path_)
      .bind(1, r.label)
      .bind(2, r.split)
      .bind(3, r.task_scores.dump())
      .bind(4, r.score)
      .bind(5, r.ci_low)
      .bind(6, r.ci_high)
      .bind(7, r.details.dump())
      .step();
}

std::vector<FinalResult> RunStore::final_results() const {
  Stmt q(db_,
         "SELECT label, split, task_scores, score, ci_low, ci_high, details FROM final_result "
         "ORDER BY id",
         path_);
  std::vector<FinalResult> out;
  while (q.step()) {
    FinalResult r;
    r.label = q.text(0);
    r.split = q.text(1);
    r.task_scores = parse_json_column(q.text(2), path_, "final_result.task_scores");
    r.score = q.f64(3);
    r.ci_low = q.f64(4);
    r.ci_high = q.f64(5);
    r.details = parse_json_column(q.text(6), path_, "final_result.details");
    out.push_back(std::move(r));
  }
  return out;
}

void RunStore::clear_final_results() {
  exec("DELETE FROM final_result");
}

void RunStore::add_artifact(const std::string& kind, const std::filesystem::path& path) {
  Stmt(db_, "INSERT INTO artifact (kind, path, created) VALUES (?, ?, ?)", path_)
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
