#include "report/table.h"

#include <algorithm>

#include "report/svg.h"

namespace evomerge::report {

namespace {

// Code points, not bytes: a UTF-8 continuation byte (10xxxxxx) starts no character.
size_t display_width(const std::string& s) {
  return static_cast<size_t>(std::count_if(
      s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

Table::Align align_of(const Table& t, size_t column) {
  return column < t.align.size() ? t.align[column] : Table::Align::Left;
}

const std::string& cell(const std::vector<std::string>& row, size_t column) {
  static const std::string empty;
  return column < row.size() ? row[column] : empty;
}

std::string markdown_cell(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '|') out += '\\';
    out += c == '\n' ? ' ' : c;
  }
  return out;
}

std::string markdown_row(const std::vector<std::string>& row, size_t columns) {
  std::string s = "|";
  for (size_t c = 0; c < columns; ++c) s += " " + markdown_cell(cell(row, c)) + " |";
  return s + "\n";
}

}  // namespace

std::string to_markdown(const Table& t) {
  const size_t columns = t.headers.size();
  std::string s = markdown_row(t.headers, columns) + "|";
  for (size_t c = 0; c < columns; ++c) s += "---|";
  s += "\n";
  for (const auto& row : t.rows) s += markdown_row(row, columns);
  return s;
}

std::string to_text(const Table& t) {
  const size_t columns = t.headers.size();
  std::vector<size_t> width(columns, 0);
  for (size_t c = 0; c < columns; ++c) {
    width[c] = display_width(t.headers[c]);
    for (const auto& row : t.rows) width[c] = std::max(width[c], display_width(cell(row, c)));
  }
  auto line = [&](const std::vector<std::string>& row) {
    std::string s;
    for (size_t c = 0; c < columns; ++c) {
      const std::string& v = cell(row, c);
      const std::string pad(width[c] - display_width(v), ' ');
      if (c) s += "  ";
      if (align_of(t, c) == Table::Align::Right) s += pad;
      s += v;
      if (align_of(t, c) == Table::Align::Left) s += pad;
    }
    s.erase(s.find_last_not_of(' ') + 1);
    return s + "\n";
  };
  std::string s = line(t.headers);
  for (const auto& row : t.rows) s += line(row);
  return s;
}

std::string to_html(const Table& t) {
  const size_t columns = t.headers.size();
  std::string s = "<table><tr>";
  for (const auto& h : t.headers) s += "<th>" + escape(h) + "</th>";
  s += "</tr>\n";
  for (const auto& row : t.rows) {
    s += "<tr>";
    for (size_t c = 0; c < columns; ++c)
      s += (align_of(t, c) == Table::Align::Right ? "<td class=\"num\">" : "<td>") +
           escape(cell(row, c)) + "</td>";
    s += "</tr>\n";
  }
  return s + "</table>\n";
}

}  // namespace evomerge::report
