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
    w.markdown = write_results_markdown(store, run_dir);
  }
  // The page lists the files of the run: the store's artifacts and the table this call wrote.
  if (!w.markdown.empty()) w.data.artifacts.emplace_back("results", w.markdown.string());
  w.html = html_out.empty() ? run_dir / "report.html" : html_out;
  write_file_atomic(w.html, render_html(w.data));
  return w;
}

}  // namespace evomerge::report
