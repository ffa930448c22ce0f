// Writing a run's report from its store: report.html (report/html.h) and, once the final table
// exists, results.md (report/final_table.h), each written atomically (temporary file, then rename),
// so a browser never sees half a file, also while `--watch` rewrites it.
#pragma once

#include <filesystem>

#include "report/report_data.h"

namespace evomerge::report {

struct WrittenReport {
  ReportData data;
  std::filesystem::path html;      // the report page
  std::filesystem::path markdown;  // results.md; empty while the final table is not written
};

// Reads `<run_dir>/run.db` (read-only use; a version-1 store is migrated first) and writes the
// page to `html_out` (default `<run_dir>/report.html`) and `<run_dir>/results.md`.
WrittenReport write_report(const std::filesystem::path& run_dir,
                           const std::filesystem::path& html_out = {});

}  // namespace evomerge::report
