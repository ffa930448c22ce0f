#include "merge/adapter_config.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/json_limits.h"
#include "common/text.h"

namespace evomerge {

namespace {
constexpr const char* kLora = "lora";
}

AdapterConfig parse_adapter_config(std::string_view json_text, std::string_view where) {
  using json = nlohmann::json;
  check_json_depth(json_text, kLora, where);
  json cfg;
  try {
    cfg = json::parse(json_text);
  } catch (const json::exception& e) {
    fail(kLora, "{}: not valid JSON: {}", where, printable(e.what()));
  }
  if (!cfg.is_object() || !cfg.contains("r") || !cfg["r"].is_number_integer() ||
      cfg["r"].get<int64_t>() <= 0)
    fail(kLora, "{}: field 'r' must be a positive integer", where);
  AdapterConfig c;
  c.r = cfg["r"].get<double>();
  c.alpha = c.r;
  if (cfg.contains("lora_alpha")) {
    if (!cfg["lora_alpha"].is_number() || !std::isfinite(cfg["lora_alpha"].get<double>()))
      fail(kLora, "{}: field 'lora_alpha' must be a finite number", where);
    c.alpha = cfg["lora_alpha"].get<double>();
  }
  auto boolean = [&](const char* key) {
    auto it = cfg.find(key);
    if (it == cfg.end() || it->is_null()) return false;
    if (!it->is_boolean()) fail(kLora, "{}: field '{}' must be true or false", where, key);
    return it->get<bool>();
  };
  c.rslora = boolean("use_rslora");
  if (boolean("fan_in_fan_out"))
    fail(kLora, "{}: field 'fan_in_fan_out' = true is not supported", where);
  if (auto it = cfg.find("alpha_pattern"); it != cfg.end() && it->is_object())
    for (const auto& [k, v] : it->items())
      if (v.is_number() && std::isfinite(v.get<double>())) c.alpha_pattern[k] = v.get<double>();
  return c;
}

}  // namespace evomerge
