// Small helpers for writing SVG and HTML text: escaping and compact number formatting.
#pragma once

#include <string>
#include <string_view>

namespace evomerge::report {

// Text for HTML/SVG content and attribute values: & < > " ' escaped; bytes that are not printable
// ASCII or UTF-8 are left to the browser (the file is declared UTF-8).
std::string escape(std::string_view text);

// A coordinate with one decimal ("12.5"), "0" for NaN (never "nan" in an attribute).
std::string px(double v);

}  // namespace evomerge::report
