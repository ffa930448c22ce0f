// Reading YAML from outside files (merge configs, evolve configs, task files) the way Python tools
// built on PyYAML see it, with the checks yaml-cpp does not make:
//  - exactly one document: a second `---` document is an error naming the line of each document
//    (yaml-cpp's Load silently returns the first; PyYAML's safe_load refuses);
//  - no key twice in one mapping, at any depth: an error naming both lines (yaml-cpp keeps both
//    entries and node["key"] finds the first, where PyYAML keeps the last: either would be a silent
//    divergence);
//  - nesting bounded (kMaxYamlDepth), so a hostile file cannot make later recursive readers
//  overflow.
// Errors read "[stage] file:LINE: what".
#pragma once

#include <yaml-cpp/yaml.h>

#include <string_view>

namespace evomerge {

inline constexpr int kMaxYamlDepth = 64;

// The single document of `text`; `where` names the file and `stage` the error stage.
YAML::Node load_yaml_document(std::string_view text, std::string_view where,
                              std::string_view stage);

// 1-based line of a node, 0 when unknown (nodes built in code).
int yaml_line(const YAML::Node& node);

}  // namespace evomerge
