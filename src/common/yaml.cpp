#include "common/yaml.h"

#include <map>
#include <string>
#include <vector>

#include "common/error.h"

namespace evomerge {

int yaml_line(const YAML::Node& node) {
  if (!node.IsDefined()) return 0;
  YAML::Mark m = node.Mark();
  return m.is_null() ? 0 : m.line + 1;
}

namespace {

// Walks every mapping: duplicate keys (compared as written, scalars only) and the depth bound.
void check_node(const YAML::Node& node, int depth, std::string_view where, std::string_view stage) {
  if (depth > kMaxYamlDepth)
    fail(stage, "{}:{}: YAML nested more than {} levels deep", where, yaml_line(node),
         kMaxYamlDepth);
  if (node.IsMap()) {
    std::map<std::string, int> seen;  // key -> line of its first occurrence
    for (const auto& kv : node) {
      if (kv.first.IsScalar()) {
        auto [it, fresh] = seen.emplace(kv.first.Scalar(), yaml_line(kv.first));
        if (!fresh)
          fail(stage,
               "{}:{}: key '{}' appears twice in the same mapping (lines {} and {}); give it once",
               where, yaml_line(kv.first), kv.first.Scalar(), it->second, yaml_line(kv.first));
      }
      check_node(kv.second, depth + 1, where, stage);
    }
  } else if (node.IsSequence()) {
    for (const auto& item : node) check_node(item, depth + 1, where, stage);
  }
}

}  // namespace

YAML::Node load_yaml_document(std::string_view text, std::string_view where,
                              std::string_view stage) {
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(std::string(text));
  } catch (const YAML::Exception& e) {
    fail(stage, "{}:{}: invalid YAML: {}", where, e.mark.line + 1, e.msg);
  }
  if (docs.size() > 1) {
    std::string lines;
    for (const auto& d : docs)
      lines += (lines.empty() ? "" : ", ") + std::to_string(std::max(1, yaml_line(d)));
    fail(stage,
         "{}: the file holds {} YAML documents (starting on lines {}); expected one (split it into "
         "one file per document)",
         where, docs.size(), lines);
  }
  YAML::Node root = docs.empty() ? YAML::Node() : docs.front();
  check_node(root, 0, where, stage);
  return root;
}

}  // namespace evomerge
