// Typed reads of the fields of a YAML file from outside (evolve configs, task files, mergekit
// configs): every failure is one Error naming the stage, the file, the line and the key path,
//   "[evolve-config] run.yml:7: ps.layer_groups[1]: expected a number",
// in the same words for every file type. Strings must be UTF-8: they reach JSON (run stores,
// --json output), which holds nothing else.
#pragma once

#include <yaml-cpp/yaml.h>

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace evomerge {

struct YamlFields {
  std::string_view stage;  // the error's [stage]
  std::string where;       // the file, as the user named it

  // "file:LINE: key" (the line when the node has one).
  std::string at(const YAML::Node& n, std::string_view key) const;
  [[noreturn]] void bad(const YAML::Node& n, std::string_view key, std::string_view what) const;

  void map(const YAML::Node& n, std::string_view key) const;
  // `n` is a mapping whose keys are all in `known`.
  void only(const YAML::Node& n, std::string_view prefix,
            std::initializer_list<std::string_view> known) const;
  // A key of the mapping at `prefix`: a string (YAML allows a list or mapping as a key; no key
  // evomerge reads is one).
  std::string key_of(const YAML::Node& k, std::string_view prefix) const;
  std::string str(const YAML::Node& n, std::string_view key) const;
  // `s`, checked to be UTF-8 (for text read from a node some other way).
  std::string utf8(const YAML::Node& n, std::string_view key, std::string s) const;
  // A list of strings, or with allow_scalar one string as a list of one.
  std::vector<std::string> strings(const YAML::Node& n, std::string_view key,
                                   bool allow_scalar = false) const;
  double number(const YAML::Node& n, std::string_view key) const;  // finite
  long long integer(const YAML::Node& n, std::string_view key, long long lo, long long hi) const;
  bool boolean(const YAML::Node& n, std::string_view key) const;
  // [min, max] with min < max.
  std::pair<double, double> range(const YAML::Node& n, std::string_view key) const;
};

}  // namespace evomerge
