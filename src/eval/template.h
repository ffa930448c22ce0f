// `{{field}}` templates over a JSON document (the subset of lm-eval-harness's Jinja templates that
// tasks over local data need): `{{question}}`, `{{ a.b }}`, `{{choices[0]}}`, `{{meta["key"]}}`,
// `{{items[-1]}}`. Anything else inside `{{ }}` (filters, calls, `{% %}` blocks) is an error rather
// than a silently wrong prompt. A template that is exactly a top-level field name with no braces
// (lm-eval's `doc_to_target: answer`) means that field.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace evomerge::eval {

// Where a template is used, for messages: "tasks/x.yaml: doc_to_text" and the doc's "data.jsonl:12".
struct TemplateContext {
  std::string_view template_where;
  std::string_view doc_where;
};

// Checks the template's syntax (no document needed); Error naming template_where.
void check_template(std::string_view tmpl, std::string_view template_where);

// Renders the template. Strings are inserted as is; integers as digits; other numbers in shortest
// round-trip form; booleans as True/False and null as None (as Jinja prints Python values).
// A missing field: Error naming the field, the template and the document.
std::string render_template(std::string_view tmpl, const nlohmann::json& doc, const TemplateContext& where);

// The JSON value a template denotes when it is one expression (`{{choices}}`) or a bare field name;
// nullptr when it is not a single expression. Missing fields: Error as above.
const nlohmann::json* template_value(std::string_view tmpl, const nlohmann::json& doc, const TemplateContext& where);

// Renders one JSON value as render_template inserts it.
std::string json_to_text(const nlohmann::json& value);

}  // namespace evomerge::eval
