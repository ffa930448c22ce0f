#include "common/json_limits.h"

#include <gtest/gtest.h>

#include <string>

#include "common/test_util.h"

using namespace evomerge;
using evomerge::testing_util::error_of;

TEST(JsonLimits, DepthCountsBracketsOutsideStrings) {
  EXPECT_EQ(json_nesting_depth("1"), 0u);
  EXPECT_EQ(json_nesting_depth("{}"), 1u);
  EXPECT_EQ(json_nesting_depth(R"({"a": [1, {"b": [[]]}], "c": {}})"), 5u);
  // Brackets inside strings, also after escaped quotes and backslashes, do not count.
  EXPECT_EQ(json_nesting_depth(R"({"a": "[[[{{{", "b": "\"[[", "c": "\\", "d": [1]})"), 2u);
  // Unbalanced closers never go below zero.
  EXPECT_EQ(json_nesting_depth("]]]][]"), 1u);
}

TEST(JsonLimits, DeepDocumentIsRefusedBeforeParsing) {
  const std::string deep = std::string(150000, '[') + std::string(150000, ']');
  EXPECT_EQ(json_nesting_depth(deep), kMaxJsonDepth + 1);  // stops counting just past the bound
  EXPECT_EQ(error_of([&] { check_json_depth(deep, "eval", "tasks/x.jsonl:3"); }),
            "[eval] tasks/x.jsonl:3: JSON nested deeper than 128 levels");
  const std::string ok = std::string(128, '[') + std::string(128, ']');
  EXPECT_NO_THROW(check_json_depth(ok, "eval", "x"));
  EXPECT_THROW(check_json_depth("[" + ok + "]", "eval", "x"), Error);
}
