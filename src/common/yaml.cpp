#include "common/yaml.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/parser.h>

#include <map>
#include <sstream>
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

// Counts a stream's documents without building them, stopping at `cap`. yaml-cpp 0.7's LoadAll
// can keep appending empty documents to its result without consuming input (a fuzz finding: 399
// bytes of a merge config grew a 32 MB vector of nodes), so the count is bounded before any
// document is built.
class DocumentCounter : public YAML::EventHandler {
 public:
  size_t documents = 0;
  void OnDocumentStart(const YAML::Mark&) override { ++documents; }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

constexpr size_t kMaxYamlDocuments =
    64;  // beyond one it is an error anyway; lines named up to this

size_t count_documents(const std::string& text) {
  std::istringstream in(text);
  YAML::Parser parser(in);
  DocumentCounter counter;
  while (counter.documents < kMaxYamlDocuments && parser.HandleNextDocument(counter)) {
  }
  return counter.documents;
}

}  // namespace

YAML::Node load_yaml_document(std::string_view text, std::string_view where,
                              std::string_view stage) {
  std::vector<YAML::Node> docs;
  try {
    const std::string owned(text);
    const size_t documents = count_documents(owned);
    if (documents >= kMaxYamlDocuments)
      fail(stage, "{}: the file holds {} or more YAML documents; expected one", where,
           kMaxYamlDocuments);
    docs = YAML::LoadAll(owned);  // bounded now: the same parser loop stopped below the cap
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
