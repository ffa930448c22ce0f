#include "common/yaml_fields.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "common/error.h"
#include "common/text.h"
#include "common/yaml.h"

namespace evomerge {

std::string YamlFields::at(const YAML::Node& n, std::string_view key) const {
  const int line = yaml_line(n);
  return line > 0 ? fmt::format("{}:{}: {}", where, line, key) : fmt::format("{}: {}", where, key);
}

void YamlFields::bad(const YAML::Node& n, std::string_view key, std::string_view what) const {
  fail(stage, "{}: {}", at(n, key), what);
}

void YamlFields::map(const YAML::Node& n, std::string_view key) const {
  if (!n.IsMap()) bad(n, key.empty() ? "(top level)" : key, "expected a mapping");
}

void YamlFields::only(const YAML::Node& n, std::string_view prefix,
                      std::initializer_list<std::string_view> known) const {
  map(n, prefix);
  for (const auto& kv : n) {
    const std::string key = key_of(kv.first, prefix);
    if (std::find(known.begin(), known.end(), key) != known.end()) continue;
    std::string list;
    for (auto k : known) list += (list.empty() ? "" : ", ") + std::string(k);
    bad(kv.first, prefix.empty() ? key : fmt::format("{}.{}", prefix, key),
        fmt::format("unknown key (known: {})", list));
  }
}

std::string YamlFields::key_of(const YAML::Node& k, std::string_view prefix) const {
  const std::string_view key = prefix.empty() ? "(top level)" : prefix;
  if (!k.IsScalar()) bad(k, key, "has a key that is not a string");
  std::string s = k.as<std::string>();
  if (!utf8_valid(s))
    bad(k, key, fmt::format("key '{}' is not valid UTF-8 (YAML files are UTF-8)", printable(s)));
  return s;
}

std::string YamlFields::utf8(const YAML::Node& n, std::string_view key, std::string s) const {
  if (!utf8_valid(s))
    bad(n, key, fmt::format("'{}' is not valid UTF-8 (YAML files are UTF-8)", printable(s)));
  return s;
}

std::string YamlFields::str(const YAML::Node& n, std::string_view key) const {
  if (!n.IsScalar()) bad(n, key, "expected a string");
  return utf8(n, key, n.as<std::string>());
}

std::vector<std::string> YamlFields::strings(const YAML::Node& n, std::string_view key,
                                             bool allow_scalar) const {
  if (allow_scalar && n.IsScalar()) return {str(n, key)};
  if (!n.IsSequence()) bad(n, key, "expected a list of strings");
  std::vector<std::string> out;
  for (size_t i = 0; i < n.size(); ++i) out.push_back(str(n[i], fmt::format("{}[{}]", key, i)));
  return out;
}

double YamlFields::number(const YAML::Node& n, std::string_view key) const {
  if (!n.IsScalar()) bad(n, key, "expected a number");
  double v;
  try {
    v = n.as<double>();
  } catch (const YAML::Exception&) {
    bad(n, key, "expected a number");
  }
  if (!std::isfinite(v)) bad(n, key, "must be finite");
  return v;
}

long long YamlFields::integer(const YAML::Node& n, std::string_view key, long long lo,
                              long long hi) const {
  if (!n.IsScalar()) bad(n, key, "expected an integer");
  long long v;
  try {
    v = n.as<long long>();
  } catch (const YAML::Exception&) {
    bad(n, key, "expected an integer");
  }
  if (v < lo || v > hi) bad(n, key, fmt::format("{} is not in [{}, {}]", v, lo, hi));
  return v;
}

bool YamlFields::boolean(const YAML::Node& n, std::string_view key) const {
  if (!n.IsScalar()) bad(n, key, "expected true or false");
  try {
    return n.as<bool>();
  } catch (const YAML::Exception&) {
    bad(n, key, "expected true or false");
  }
}

std::pair<double, double> YamlFields::range(const YAML::Node& n, std::string_view key) const {
  if (!n.IsSequence() || n.size() != 2) bad(n, key, "expected [min, max]");
  const double a = number(n[0], fmt::format("{}[0]", key));
  const double b = number(n[1], fmt::format("{}[1]", key));
  if (!(a < b)) bad(n, key, fmt::format("min {} must be below max {}", a, b));
  return {a, b};
}

}  // namespace evomerge
