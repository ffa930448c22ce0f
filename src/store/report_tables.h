// The report's part of schema version 2 (docs/run-store.md): per-generation summaries (table
// `generation`), final-table row kinds as data (`final_result.kind` / `.phase`), the final rows'
// per-item results (`final_item_result`) and the machine (`run.machine`). Internal to the store
// stage: RunStore's one v1 -> v2 migration runs it, inside its transaction, after its own
// statements, on every migrated and every new store.
#pragma once

#include <sqlite3.h>

#include <filesystem>

namespace evomerge::store_detail {

void migrate_v1_to_v2_report_tables(sqlite3* db, const std::filesystem::path& where);

}  // namespace evomerge::store_detail
