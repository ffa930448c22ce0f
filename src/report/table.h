// One table formatter for every table evomerge prints or writes (the final table in results.md and
// on the terminal, the report page's tables, `evomerge eval`'s scores): the caller fills cells with
// text, the formatter lays them out as Markdown, as aligned plain text, or as HTML.
#pragma once

#include <string>
#include <vector>

namespace evomerge::report {

struct Table {
  enum class Align { Left, Right };
  std::vector<std::string> headers;
  std::vector<Align> align;  // per column; columns without an entry are left-aligned
  std::vector<std::vector<std::string>> rows;  // a row with fewer cells than headers is padded
};

// GitHub pipe table: "| a | b |\n|---|---|\n| 1 | 2 |\n" ('|' in a cell written as "\|").
std::string to_markdown(const Table& table);

// Columns padded to their widest cell (in UTF-8 code points), two spaces apart, right-aligned
// columns padded on the left; no trailing spaces.
std::string to_text(const Table& table);

// <table> with <th> headers; cells escaped; right-aligned cells get class "num".
std::string to_html(const Table& table);

}  // namespace evomerge::report
