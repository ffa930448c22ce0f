#include "merge/adapter_config.h"

#include <gtest/gtest.h>

#include <string>

#include "common/error.h"
#include "common/test_util.h"

namespace evomerge {
namespace {

using testing_util::error_of;

TEST(AdapterConfig, ReadsTheFieldsAMergeNeeds) {
  const auto c = parse_adapter_config(
      R"({"r": 8, "lora_alpha": 16, "use_rslora": true, "alpha_pattern": {"q_proj": 32, "bad": "x"},
          "target_modules": ["q_proj"], "peft_type": "LORA"})",
      "a/adapter_config.json");
  EXPECT_EQ(c.r, 8);
  EXPECT_EQ(c.alpha, 16);
  EXPECT_TRUE(c.rslora);
  ASSERT_EQ(c.alpha_pattern.size(), 1u);
  EXPECT_EQ(c.alpha_pattern.at("q_proj"), 32);
  EXPECT_EQ(parse_adapter_config(R"({"r": 4})", "a").alpha, 4);  // lora_alpha defaults to r
}

// Found while writing the fuzz target: a flag of the wrong type threw nlohmann's type_error, not a
// message naming the file and field.
TEST(AdapterConfig, WrongTypesAreNamed) {
  const std::string f = "a/adapter_config.json";
  EXPECT_EQ(error_of([&] { parse_adapter_config(R"({"r": 8, "use_rslora": "yes"})", f); }),
            "[lora] a/adapter_config.json: field 'use_rslora' must be true or false");
  EXPECT_EQ(error_of([&] { parse_adapter_config(R"({"r": 8, "fan_in_fan_out": 1})", f); }),
            "[lora] a/adapter_config.json: field 'fan_in_fan_out' must be true or false");
  EXPECT_EQ(error_of([&] { parse_adapter_config(R"({"r": 8, "fan_in_fan_out": true})", f); }),
            "[lora] a/adapter_config.json: field 'fan_in_fan_out' = true is not supported");
  EXPECT_EQ(error_of([&] { parse_adapter_config(R"({"r": 0})", f); }),
            "[lora] a/adapter_config.json: field 'r' must be a positive integer");
  EXPECT_EQ(error_of([&] { parse_adapter_config(R"({"r": 2, "lora_alpha": "x"})", f); }),
            "[lora] a/adapter_config.json: field 'lora_alpha' must be a finite number");
  EXPECT_EQ(
      error_of([&] { parse_adapter_config(std::string(200, '[') + std::string(200, ']'), f); }),
      "[lora] a/adapter_config.json: JSON nested deeper than 128 levels");
  EXPECT_NE(error_of([&] {
              parse_adapter_config("{", f);
            }).find("[lora] a/adapter_config.json: not valid JSON"),
            std::string::npos);
}

}  // namespace
}  // namespace evomerge
