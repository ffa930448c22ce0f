#include "merge/chat_templates.h"

#include <nlohmann/json.hpp>

#include <algorithm>

#include "common/error.h"
#include "io/files.h"

namespace evomerge {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr std::string_view kStage = "chat-template";
constexpr size_t kMaxTemplateFileBytes = size_t{8}
                                         << 20;  // real tokenizer_config.json files are < 1 MiB

json read_json(const fs::path& path) {
  try {
    return json::parse(read_text_file(path, kMaxTemplateFileBytes));
  } catch (const json::exception& e) {
    fail(kStage, "{}: not valid JSON: {}", path.string(), e.what());
  }
}

// tokenizer_config.json's field: a string, or [{name, template}, ...] (transformers keeps
// "default").
std::optional<std::string> template_field(const json& j, const fs::path& path) {
  if (!j.is_object()) fail(kStage, "{}: not a JSON object", path.string());
  auto it = j.find("chat_template");
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (!it->is_array())
    fail(kStage, "{}: field 'chat_template' must be a string or a list of {{name, template}}",
         path.string());
  for (const auto& entry : *it) {
    if (!entry.is_object() || !entry.contains("name") || !entry.contains("template") ||
        !entry["name"].is_string() || !entry["template"].is_string())
      fail(kStage,
           "{}: field 'chat_template': every entry must be {{name: string, template: string}}",
           path.string());
    if (entry["name"] == "default") return entry["template"].get<std::string>();
  }
  return std::nullopt;
}

std::string strip(std::string_view s) {
  const char* ws = " \t\n\r\f\v";
  size_t b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return "";
  size_t e = s.find_last_not_of(ws);
  return std::string(s.substr(b, e - b + 1));
}

}  // namespace

std::optional<std::string> model_chat_template(const fs::path& dir) {
  std::error_code ec;
  if (fs::path p = dir / "chat_template.jinja"; fs::is_regular_file(p, ec))
    return read_text_file(p, kMaxTemplateFileBytes);
  if (fs::path p = dir / "chat_template.json"; fs::is_regular_file(p, ec))
    return template_field(read_json(p), p);
  if (fs::path p = dir / "tokenizer_config.json"; fs::is_regular_file(p, ec))
    return template_field(read_json(p), p);
  return std::nullopt;
}

std::string resolve_chat_template(std::string_view setting, std::span<const fs::path> model_dirs,
                                  std::string_view where, std::vector<std::string>& warnings) {
  if (setting == "auto") {
    std::vector<std::pair<std::string, int>>
        counts;  // stripped template -> models using it, first seen first
    for (const auto& dir : model_dirs) {
      std::optional<std::string> t;
      try {
        t = model_chat_template(dir);
      } catch (const Error& e) {
        warnings.push_back(
            fmt::format("{}: chat_template: auto: skipping {}: {}", where, dir.string(), e.what()));
        continue;
      }
      if (!t) continue;
      std::string s = strip(*t);
      if (s.empty()) continue;
      auto it =
          std::find_if(counts.begin(), counts.end(), [&](const auto& c) { return c.first == s; });
      if (it == counts.end())
        counts.emplace_back(std::move(s), 1);
      else
        ++it->second;
    }
    // Counter.most_common(1): the highest count, the first seen among equals.
    const std::pair<std::string, int>* best = nullptr;
    for (const auto& c : counts)
      if (!best || c.second > best->second) best = &c;
    return best ? best->first : std::string();
  }
  if (auto builtin = builtin_chat_template(setting)) return std::string(*builtin);
  if (setting.size() < 20 || setting.find('{') == std::string_view::npos) {
    std::string names;
    for (const auto& n : builtin_chat_template_names()) names += ", " + n;
    fail(kStage,
         "{}: chat_template: '{}' is neither a built-in name (auto{}) nor a Jinja template (>= 20 "
         "characters with '{{')",
         where, setting, names);
  }
  return std::string(setting);
}

}  // namespace evomerge
