// The run store: one SQLite database (WAL mode) per run folder, `<run>/run.db`, holding the run's
// config, every candidate (genome, per-task scores, per-item results, timings), the optimiser state
// after each generation, the final results and the artifacts written. docs/run-store.md documents
// the schema with example queries.
//
// Atomicity: commit_generation() writes a generation's candidates, their item results and the
// optimiser state in one transaction, so after a crash the database holds whole generations only
// and resume continues from the last one (last_state()).
//
// Identity: a run folder belongs to one config. open() on an existing folder compares the config
// hash and refuses ("[store] runs/x/run.db: made by a different config (differs at /ps/granularity,
// /seed); use a new --run folder") naming the differing fields.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace evomerge {

// Stable 64-bit FNV-1a of the config's canonical JSON (json::dump(): keys sorted), as 16 hex
// digits. An identity check, not a security measure.
std::string config_hash(const nlohmann::json& config);

struct RunInfo {
  nlohmann::json config;    // canonical config (what the hash is computed from)
  std::string config_text;  // the config file as the user wrote it (YAML), for humans
  uint64_t seed = 0;
  std::string evomerge_version;
  // Filled by the store:
  std::string config_hash;
  std::string created;  // ISO 8601 UTC
};

// Per-item results of one candidate on one task and split, stored as two little-endian blobs
// (int32 item indices, float32 scores: 1/0 for correctness, or a metric value).
struct ItemResults {
  std::string task;
  std::string split;
  std::vector<int32_t> items;
  std::vector<float> scores;
};

struct CandidateRecord {
  std::string phase;  // "ps", "dfs", ...
  int64_t generation = 0;
  int index = 0;          // position in the generation's population
  nlohmann::json genome;  // the raw genome (array of numbers)
  nlohmann::json params;  // the decoded candidate (merge parameters or layer path), for queries
  nlohmann::json task_scores = nlohmann::json::object();  // {"task": score}
  double fitness = 0;                                     // the optimiser's view (higher is better)
  bool ok = true;
  std::string error;  // when !ok
  double eval_seconds = 0;
  double merge_seconds = 0;
  std::vector<ItemResults> items;
  int64_t id = 0;  // row id, filled when read back
};

struct OptimiserState {
  std::string phase;
  int64_t generation = 0;      // the generation this state follows (1 = after the first)
  std::vector<uint8_t> state;  // opaque (Cmaes::to_blob())
  nlohmann::json extra = nlohmann::json::object();  // e.g. item-subset RNG, evaluation counters
};

struct FinalResult {
  std::string label;  // "parent: A", "uniform best", "ps best #1", "ps mean", ...
  std::string split;
  nlohmann::json task_scores = nlohmann::json::object();
  double score = 0;                // weighted fitness
  double ci_low = 0, ci_high = 0;  // 95% interval of `score`
  nlohmann::json details = nlohmann::json::object();
};

class RunStore {
 public:
  // Creates `<dir>/run.db` (and dir) for a new run, or opens an existing one after checking its
  // config hash (Error naming the differing fields when it differs).
  static RunStore open(const std::filesystem::path& dir, RunInfo info);
  // Opens an existing run read-write without a config check (reports, tools).
  static RunStore open_existing(const std::filesystem::path& dir);

  RunStore(RunStore&& other) noexcept;
  RunStore& operator=(RunStore&& other) noexcept;
  RunStore(const RunStore&) = delete;
  RunStore& operator=(const RunStore&) = delete;
  ~RunStore();

  const RunInfo& info() const { return info_; }
  const std::filesystem::path& path() const { return path_; }
  bool resumed() const { return resumed_; }  // true when open() found an existing run

  // One transaction: the candidates (with item results) and the optimiser state. Fails (and writes
  // nothing) if that phase/generation is already stored.
  void commit_generation(const std::vector<CandidateRecord>& candidates,
                         const OptimiserState& state);
  // The state after the last complete generation of `phase`, if any.
  std::optional<OptimiserState> last_state(const std::string& phase) const;
  // Candidates of one generation (generation < 0: all of the phase), ordered by generation, index.
  std::vector<CandidateRecord> candidates(const std::string& phase, int64_t generation = -1,
                                          bool with_items = false) const;
  // The best ok candidate of a phase by fitness (ties: earliest).
  std::optional<CandidateRecord> best_candidate(const std::string& phase) const;

  // Phase bookkeeping for multi-phase runs (PS then DFS): "done" with a result JSON.
  void set_phase_done(const std::string& phase, const nlohmann::json& result);
  std::optional<nlohmann::json> phase_result(const std::string& phase) const;

  void add_final_result(const FinalResult& result);
  std::vector<FinalResult> final_results() const;
  void clear_final_results();  // a resumed run re-scores the finalists

  void add_artifact(const std::string& kind, const std::filesystem::path& path);
  std::vector<std::pair<std::string, std::string>> artifacts() const;

  sqlite3* handle() const { return db_; }  // for ad-hoc queries in tests and tools

 private:
  RunStore() = default;
  void exec(const char* sql) const;

  sqlite3* db_ = nullptr;
  std::filesystem::path path_;
  RunInfo info_;
  bool resumed_ = false;
};

}  // namespace evomerge
