#include "report/report.h"

#include "io/files.h"
#include "report/final_table.h"
#include "report/html.h"

namespace evomerge::report {

WrittenReport write_report(const std::filesystem::path& run_dir,
                           const std::filesystem::path& html_out) {
  WrittenReport w;
  {
    const RunStore store = RunStore::open_existing(run_dir);
    w.data = build_report_data(store, run_dir);
    const auto rows = store.final_results();
    if (!rows.empty() && w.data.complete) {
      w.markdown = run_dir / "results.md";
      write_file_atomic(w.markdown,
                        "# evomerge evolve: final table\n\n" + format_final_table(rows));
    }
  }
  w.html = html_out.empty() ? run_dir / "report.html" : html_out;
  write_file_atomic(w.html, render_html(w.data));
  return w;
}

}  // namespace evomerge::report
