// Writing a run's report files from its store: report.html (report/html.h) and results.md (the
// final table as Markdown), each written atomically (temporary file, then rename), so a browser or
// a reader never sees half a file, also while `--watch` rewrites them.
#pragma once

#include <filesystem>

#include "report/report_data.h"

namespace evomerge::report {

struct WrittenReport {
  ReportData data;
  std::filesystem::path html;      // the report page
  std::filesystem::path markdown;  // results.md; empty when the final table is not written yet
};

// Reads `<run_dir>/run.db` (read-only use; a version-1 store is migrated first) and writes the
// page to `html_out` (default `<run_dir>/report.html`) and, once the final table exists,
// `<run_dir>/results.md`.
WrittenReport write_report(const std::filesystem::path& run_dir,
                           const std::filesystem::path& html_out = {});

}  // namespace evomerge::report
