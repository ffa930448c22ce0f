// The run report as one self-contained HTML file: inline CSS and SVG, no scripts, no fonts, no
// network. While the run is not complete the page asks the browser to reload it every 10 s (the
// file is rewritten by `evomerge report --watch`).
#pragma once

#include <string>

#include "report/report_data.h"

namespace evomerge::report {

std::string render_html(const ReportData& data);

}  // namespace evomerge::report
