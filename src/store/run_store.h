// The run store: one SQLite database (WAL mode) per run folder, `<run>/run.db`, holding the run's
// config, every candidate (genome, per-task scores, per-item results, timings), the optimiser state
// after each generation, the final results and the artifacts written. docs/run-store.md documents
// the schema with example queries.
//
// Atomicity: commit_generation() writes a generation's candidates, their item results and the
// optimiser state in one transaction, so after a crash the database holds whole generations only
// and resume continues from the last one (last_state()).
//
// Creation is atomic: the database is built under a temporary name and renamed into place, and a
// `run.db` left empty by a process killed while creating it is recreated, never fatal.
//
// Exclusive use: open() takes the folder's lock (run_lock.h) for the store's lifetime, so a second
// process on the same folder is refused naming the holder.
//
// Identity: a run folder belongs to one config. open() on an existing folder compares the config
// hash and refuses ("[store] runs/x/run.db: made by a different config (differs at /ps/granularity,
// /seed); use a new --run folder") naming the differing fields.
#pragma once

#include <sqlite3.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "store/run_lock.h"

namespace evomerge {

// Stable 64-bit FNV-1a of the config's canonical JSON (json::dump(): keys sorted), as 16 hex
// digits. An identity check, not a security measure.
std::string config_hash(const nlohmann::json& config);

struct RunInfo {
  nlohmann::json config;    // canonical config (what the hash is computed from)
  std::string config_text;  // the config file as the user wrote it (YAML), for humans
  uint64_t seed = 0;
  std::string evomerge_version;
  std::string machine;  // common/machine.h summary; filled by the store when empty
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
  std::vector<uint8_t> state;  // Cmaes::to_blob() (CBOR of Cmaes::to_json())
  nlohmann::json extra = nlohmann::json::object();  // e.g. item-subset RNG, evaluation counters
  // For the generation's summary row: the evaluation wall time of this generation; restart, sigma
  // and evaluations when the caller knows them (unset: read from `state`).
  double wall_seconds = NAN;
  int restart = -1;
  double sigma = NAN;
  int64_t evaluations = -1;
};

// One generation's summary (table `generation`), written by commit_generation() with it.
struct GenerationStats {
  std::string phase;
  int64_t generation = 0;
  int restart = -1;  // IPOP restarts before this generation
  int lambda = 0;    // candidates in the generation
  int n_ok = 0;      // of which have a finite fitness
  // Fitness (higher is better) of the ok candidates: maximum, quartiles (linear interpolation,
  // common/stats.h), minimum; NaN when none is ok.
  double best = NAN, q1 = NAN, median = NAN, q3 = NAN, worst = NAN;
  double best_so_far = NAN;   // over the phase up to this generation
  double sigma = NAN;         // the CMA-ES step size after this generation's update
  int64_t evaluations = -1;   // evaluations of the phase so far, this generation included
  double wall_seconds = NAN;  // evaluation wall time; NaN when not recorded (migrated runs)
  std::string created;        // ISO 8601 UTC
};

// What a final-table row is, as data (reports group and colour by it; labels are for people).
enum class FinalKind { Parent, Uniform, EvolvedPs, EvolvedPsDfs, EvolvedDfs, Finalist };
// "parent", "uniform", "evolved_ps", "evolved_ps_dfs", "evolved_dfs", "finalist": the stored form.
const char* final_kind_name(FinalKind kind);
std::optional<FinalKind> final_kind_from_name(const std::string& name);

struct FinalResult {
  FinalKind kind = FinalKind::Parent;
  std::string phase;  // "ps" / "dfs" for evolved and finalist rows, else empty
  std::string label;  // for people: "parent: A", "evolved PS (ps #1 (gen 3, idx 2))", ...
  std::string split;
  nlohmann::json task_scores = nlohmann::json::object();
  double score = 0;                // weighted fitness
  double ci_low = 0, ci_high = 0;  // 95% interval of `score`
  nlohmann::json details = nlohmann::json::object();
  std::vector<ItemResults> items;  // per task: every scored item (paired comparisons)
};

// One member of a Pareto front (table `pareto_front`, written by a multi-objective search):
// the candidate and its per-task scores on the selection items and on the test split.
struct ParetoMember {
  std::string label;
  nlohmann::json genome = nlohmann::json::array();
  nlohmann::json params = nlohmann::json::object();
  nlohmann::json selection_scores = nlohmann::json::object();  // {"task": score}
  nlohmann::json test_scores = nlohmann::json::object();       // {"task": score}
};

// What an input (a model folder, a task file) was when the run started: `fingerprint` for the
// whole, `detail` maps each part (file) to its own fingerprint so a change can be named.
struct InputFingerprint {
  std::string name;  // the reference as the config writes it
  std::string kind;  // "model", "task"
  std::string fingerprint;
  nlohmann::json detail = nlohmann::json::object();
};

// Human-readable differences between the recorded inputs and the current ones, e.g.
// "model 'models/a' changed (model.safetensors)"; empty when nothing changed.
std::vector<std::string> changed_inputs(const std::vector<InputFingerprint>& recorded,
                                        const std::vector<InputFingerprint>& now);

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
  // true when open() found a store whose creation never finished and made it anew
  bool recreated() const { return recreated_; }

  // One transaction: the candidates (with item results) and the optimiser state. Fails (and writes
  // nothing) if that phase/generation is already stored.
  void commit_generation(const std::vector<CandidateRecord>& candidates,
                         const OptimiserState& state);
  // The state after the last complete generation of `phase`, if any.
  std::optional<OptimiserState> last_state(const std::string& phase) const;
  // Candidates of one generation (generation < 0: all of the phase), ordered by generation, index.
  std::vector<CandidateRecord> candidates(const std::string& phase, int64_t generation = -1,
                                          bool with_items = false) const;
  // Per-generation summaries of a phase, in generation order.
  std::vector<GenerationStats> generations(const std::string& phase) const;
  // The phases with stored generations, in the order they started.
  std::vector<std::string> phases() const;
  // The best ok candidate of a phase by fitness (ties: earliest).
  std::optional<CandidateRecord> best_candidate(const std::string& phase) const;

  // Phase bookkeeping for multi-phase runs (PS then DFS): "done" with a result JSON.
  void set_phase_done(const std::string& phase, const nlohmann::json& result);
  std::optional<nlohmann::json> phase_result(const std::string& phase) const;

  // A final row is stored once per (label, split): adding it again replaces it in place.
  void add_final_result(const FinalResult& result);
  std::vector<FinalResult> final_results(bool with_items = false) const;
  std::optional<FinalResult> final_result(const std::string& label, const std::string& split) const;
  void clear_final_results();

  // The final stage's checkpoints (a finalist's score on the optimisation split, a uniform-grid
  // point, ...), stored once under a caller-chosen key and reused by a resumed run.
  void put_final_stage(const std::string& key, const nlohmann::json& value);
  std::optional<nlohmann::json> final_stage(const std::string& key) const;

  // Recorded once per (kind, path): recording it again is a no-op.
  void add_artifact(const std::string& kind, const std::filesystem::path& path);
  std::vector<std::pair<std::string, std::string>> artifacts() const;

  // The inputs' fingerprints (replaces what was recorded).
  void set_input_fingerprints(const std::vector<InputFingerprint>& inputs);
  std::vector<InputFingerprint> input_fingerprints() const;

  // A phase's Pareto front, in order (replaces what was stored for the phase). The table is made
  // on first use: a store without a multi-objective run has none (no schema version change).
  void set_pareto_front(const std::string& phase, const std::vector<ParetoMember>& members);
  std::vector<ParetoMember> pareto_front(const std::string& phase) const;

  // The run's history of notable events ("changed-inputs-allowed", "interrupted", ...).
  void add_event(const std::string& kind, const nlohmann::json& detail);
  std::vector<std::pair<std::string, nlohmann::json>> events() const;

  sqlite3* handle() const { return db_; }  // for ad-hoc queries in tests and tools

 private:
  RunStore() = default;
  void exec(const char* sql) const;
  // body() inside BEGIN IMMEDIATE ... COMMIT; rolled back (and the exception passed on) if it
  // throws.
  void transaction(const std::function<void()>& body) const;
  void create(const std::filesystem::path& dir, RunInfo& info);
  void migrate();  // to kSchemaVersion (the v1 -> v2 migration), or an Error naming the version
  void read_info();
  std::vector<FinalResult> read_final_results(const std::string& where,
                                              const std::vector<std::string>& args,
                                              bool with_items) const;

  sqlite3* db_ = nullptr;
  std::filesystem::path path_;
  RunInfo info_;
  bool resumed_ = false;
  bool recreated_ = false;
  RunFolderLock lock_;  // declared last: released after the database is closed
};

}  // namespace evomerge
