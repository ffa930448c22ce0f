#include "report/svg.h"

#include <fmt/format.h>

#include <cmath>

namespace evomerge::report {

std::string escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string px(double v) {
  return std::isfinite(v) ? fmt::format("{:.1f}", v) : "0";
}

}  // namespace evomerge::report
