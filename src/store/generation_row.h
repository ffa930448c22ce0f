// Rows of table `generation` (schema version 2): one per committed generation, written in the same
// transaction as its candidates. Internal to the store stage: RunStore::commit_generation() and
// the v1 -> v2 migration write them the same way.
#pragma once

#include <sqlite3.h>

#include <filesystem>
#include <vector>

#include "store/run_store.h"

namespace evomerge::store_detail {

// Fills n_ok, best, q1, median, q3, worst from a generation's fitness values (NaN: a failed
// candidate, not counted).
void summarise_fitness(const std::vector<double>& fitness, GenerationStats& g);

// Fills restart, sigma and evaluations from a CMA-ES state blob (CBOR of Cmaes::to_json(), whose
// "last" object is the generation's summary) where `g` leaves them unset; a malformed blob leaves
// them as they are.
void stats_from_state_blob(const std::vector<uint8_t>& blob, GenerationStats& g);

// Inserts `g`; best_so_far is computed from the phase's earlier rows and g.best.
void insert_generation(sqlite3* db, const std::filesystem::path& where, const GenerationStats& g);

}  // namespace evomerge::store_detail
