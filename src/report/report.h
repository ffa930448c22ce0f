// Writing a run's report page from its store: report.html (report/html.h), written atomically
// (temporary file, then rename), so a browser never sees half a file, also while `--watch`
// rewrites it. (results.md, the final table as Markdown, is written by the evolve stage.)
#pragma once

#include <filesystem>

#include "report/report_data.h"

namespace evomerge::report {

struct WrittenReport {
  ReportData data;
  std::filesystem::path html;      // the report page
  std::filesystem::path markdown;  // the run's results.md when it exists
};

// Reads `<run_dir>/run.db` (read-only use; a version-1 store is migrated first) and writes the
// page to `html_out` (default `<run_dir>/report.html`).
WrittenReport write_report(const std::filesystem::path& run_dir,
                           const std::filesystem::path& html_out = {});

}  // namespace evomerge::report
