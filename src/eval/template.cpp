#include "eval/template.h"

#include <fmt/format.h>

#include <cctype>

#include "common/error.h"

namespace evomerge::eval {
namespace {

// A parsed path: field, then .name / [int] / ["key"] steps.
struct Step {
  bool is_index = false;
  std::string key;
  long long index = 0;
};

bool ident_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

std::string trim(std::string_view s) {
  size_t a = 0, b = s.size();
  while (a < b && std::isspace(static_cast<unsigned char>(s[a]))) ++a;
  while (b > a && std::isspace(static_cast<unsigned char>(s[b - 1]))) --b;
  return std::string(s.substr(a, b - a));
}

std::vector<Step> parse_path(std::string_view expr, std::string_view where) {
  std::string e = trim(expr);
  auto bad = [&](std::string_view why) {
    fail("eval", "{}: template expression '{{{{{}}}}}' {} (supported: {{{{field}}}}, {{{{a.b}}}}, {{{{a[0]}}}}, "
                 "{{{{a[\"key\"]}}}})",
         where, expr, why);
  };
  std::vector<Step> steps;
  size_t i = 0;
  auto read_ident = [&]() {
    size_t s = i;
    while (i < e.size() && ident_char(e[i])) ++i;
    if (i == s) bad("is not a field path");
    return e.substr(s, i - s);
  };
  steps.push_back({false, read_ident(), 0});
  while (i < e.size()) {
    if (e[i] == '.') {
      ++i;
      steps.push_back({false, read_ident(), 0});
    } else if (e[i] == '[') {
      ++i;
      while (i < e.size() && e[i] == ' ') ++i;
      if (i < e.size() && (e[i] == '"' || e[i] == '\'')) {
        char q = e[i++];
        size_t s = i;
        while (i < e.size() && e[i] != q) ++i;
        if (i >= e.size()) bad("has an unterminated string");
        steps.push_back({false, e.substr(s, i - s), 0});
        ++i;
      } else {
        size_t s = i;
        if (i < e.size() && e[i] == '-') ++i;
        while (i < e.size() && std::isdigit(static_cast<unsigned char>(e[i]))) ++i;
        if (i == s || (i == s + 1 && e[s] == '-')) bad("has a bad index");
        if (i - s > 12) bad("has an index that is too large");
        steps.push_back({true, "", std::stoll(e.substr(s, i - s))});
      }
      while (i < e.size() && e[i] == ' ') ++i;
      if (i >= e.size() || e[i] != ']') bad("misses ']'");
      ++i;
    } else {
      bad("is not supported");
    }
  }
  return steps;
}

std::string path_string(const std::vector<Step>& steps, size_t upto) {
  std::string s;
  for (size_t k = 0; k <= upto && k < steps.size(); ++k) {
    if (steps[k].is_index)
      s += fmt::format("[{}]", steps[k].index);
    else
      s += (k ? "." : "") + steps[k].key;
  }
  return s;
}

const nlohmann::json& resolve(const std::vector<Step>& steps, const nlohmann::json& doc, const TemplateContext& where) {
  const nlohmann::json* v = &doc;
  for (size_t k = 0; k < steps.size(); ++k) {
    const Step& st = steps[k];
    if (st.is_index) {
      if (!v->is_array())
        fail("eval", "{}: field '{}' is not a list ({})", where.template_where, path_string(steps, k - 1), where.doc_where);
      long long n = static_cast<long long>(v->size());
      long long idx = st.index < 0 ? n + st.index : st.index;
      if (idx < 0 || idx >= n)
        fail("eval", "{}: field '{}': index {} out of range (list of {}) ({})", where.template_where,
             path_string(steps, k - 1), st.index, n, where.doc_where);
      v = &(*v)[static_cast<size_t>(idx)];
    } else {
      if (!v->is_object() || !v->contains(st.key))
        fail("eval", "{}: field '{}' is missing ({})", where.template_where, path_string(steps, k), where.doc_where);
      v = &(*v)[st.key];
    }
  }
  return *v;
}

// Calls on_text(literal) and on_expr(expression) in order; checks the syntax.
template <typename Text, typename Expr>
void scan(std::string_view t, std::string_view where, Text on_text, Expr on_expr) {
  size_t i = 0;
  while (i < t.size()) {
    size_t open = t.find("{{", i);
    size_t block = t.find("{%", i);
    size_t comment = t.find("{#", i);
    if (std::min(block, comment) < open)
      fail("eval", "{}: Jinja blocks and comments ('{{%', '{{#') are not supported; use {{{{field}}}} only", where);
    if (open == std::string_view::npos) {
      on_text(t.substr(i));
      return;
    }
    on_text(t.substr(i, open - i));
    size_t close = t.find("}}", open + 2);
    if (close == std::string_view::npos) fail("eval", "{}: '{{{{' without a closing '}}}}'", where);
    on_expr(t.substr(open + 2, close - open - 2));
    i = close + 2;
  }
}

}  // namespace

std::string json_to_text(const nlohmann::json& v) {
  switch (v.type()) {
    case nlohmann::json::value_t::string:
      return v.get<std::string>();
    case nlohmann::json::value_t::boolean:
      return v.get<bool>() ? "True" : "False";
    case nlohmann::json::value_t::null:
      return "None";
    case nlohmann::json::value_t::number_integer:
      return std::to_string(v.get<int64_t>());
    case nlohmann::json::value_t::number_unsigned:
      return std::to_string(v.get<uint64_t>());
    case nlohmann::json::value_t::number_float:
      return fmt::format("{}", v.get<double>());
    default:
      return v.dump();
  }
}

void check_template(std::string_view tmpl, std::string_view where) {
  scan(tmpl, where, [](std::string_view) {}, [&](std::string_view e) { parse_path(e, where); });
}

std::string render_template(std::string_view tmpl, const nlohmann::json& doc, const TemplateContext& where) {
  if (const nlohmann::json* v = template_value(tmpl, doc, where); v && tmpl.find("{{") == std::string_view::npos)
    return json_to_text(*v);  // bare field name
  std::string out;
  scan(
      tmpl, where.template_where, [&](std::string_view s) { out += s; },
      [&](std::string_view e) { out += json_to_text(resolve(parse_path(e, where.template_where), doc, where)); });
  return out;
}

const nlohmann::json* template_value(std::string_view tmpl, const nlohmann::json& doc, const TemplateContext& where) {
  if (tmpl.find("{{") == std::string_view::npos) {
    if (doc.is_object()) {
      auto it = doc.find(std::string(tmpl));
      if (it != doc.end()) return &*it;
    }
    return nullptr;
  }
  std::string t = trim(tmpl);
  if (t.size() < 4 || t.rfind("{{", 0) != 0 || t.substr(t.size() - 2) != "}}") return nullptr;
  std::string inner = t.substr(2, t.size() - 4);
  if (inner.find("{{") != std::string::npos || inner.find("}}") != std::string::npos) return nullptr;
  return &resolve(parse_path(inner, where.template_where), doc, where);
}

}  // namespace evomerge::eval
