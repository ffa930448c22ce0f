#include "eval/extract.h"

#include <gtest/gtest.h>

#include "common/error.h"

namespace evomerge::eval {
namespace {

TEST(LastNumber, HandWrittenOutputs) {
  EXPECT_EQ(last_number(" 37 + 25 = 62"), "62");
  EXPECT_EQ(last_number("The answer is 1,000."), "1000");
  EXPECT_EQ(last_number("it was -3 degrees"), "-3");
  EXPECT_EQ(last_number("costs 3.50 yen"), "3.50");
  EXPECT_EQ(last_number("1,000,000 and 2,5"), "25");  // a comma inside digits is a separator
  EXPECT_EQ(last_number("答えは 42 です。"), "42");
  EXPECT_EQ(last_number("5-3"), "-3");          // as the regex -?[0-9]... reads it
  EXPECT_EQ(last_number("version 1.2.3"), "3");  // "1.2", then "3"
  EXPECT_EQ(last_number("ends with 7."), "7");
  EXPECT_EQ(last_number("62,"), "62");
  EXPECT_EQ(last_number("no digits here"), std::nullopt);
  EXPECT_EQ(last_number(""), std::nullopt);
  EXPECT_EQ(last_number("- 5"), "5");
  // Full-width digits are not ASCII digits (as Python's [0-9]).
  EXPECT_EQ(last_number("６２"), std::nullopt);
}

TEST(ParseNumber, AcceptsOnlyWholeNumbers) {
  EXPECT_EQ(parse_number("62"), 62.0);
  EXPECT_EQ(parse_number(" 1,000 "), 1000.0);
  EXPECT_EQ(parse_number("-3"), -3.0);
  EXPECT_EQ(parse_number("+2"), 2.0);
  EXPECT_EQ(parse_number("3.50"), 3.5);
  EXPECT_EQ(parse_number(".5"), 0.5);
  EXPECT_EQ(parse_number("3."), std::nullopt);
  EXPECT_EQ(parse_number("12a"), std::nullopt);
  EXPECT_EQ(parse_number(",5"), std::nullopt);
  EXPECT_EQ(parse_number("5,"), std::nullopt);
  EXPECT_EQ(parse_number(""), std::nullopt);
  EXPECT_EQ(parse_number("-"), std::nullopt);
  EXPECT_EQ(parse_number("[invalid]"), std::nullopt);
}

TEST(AnswersMatch, NumbersAndStrings) {
  MetricSpec m;
  EXPECT_TRUE(answers_match("3.50", "3.5", m));
  EXPECT_TRUE(answers_match("1000", "1,000", m));
  EXPECT_FALSE(answers_match("-3", "3", m));
  EXPECT_FALSE(answers_match("[invalid]", "62", m));
  EXPECT_TRUE(answers_match(" Paris ", "Paris", m));
  EXPECT_FALSE(answers_match("paris", "Paris", m));
  m.ignore_case = true;
  EXPECT_TRUE(answers_match("paris", "Paris", m));
  m.ignore_punctuation = true;
  EXPECT_TRUE(answers_match("paris!", "Paris", m));
  MetricSpec r;
  r.regexes_to_ignore = {"^The answer is ", "\\.$"};
  EXPECT_TRUE(answers_match("The answer is Tokyo.", "Tokyo", r));
}

TEST(RegexExtract, FindallSemanticsLikeLmEval) {
  // gsm8k's strict-match filter.
  EXPECT_EQ(regex_extract("so 5+5=10\n#### 10", "#### (\\-?[0-9\\.\\,]+)", 0, "[invalid]"), "10");
  EXPECT_EQ(regex_extract("nothing", "#### (\\-?[0-9\\.\\,]+)", 0, "[invalid]"), "[invalid]");
  // flexible-extract: last match of alternatives, the first non-empty group wins.
  const char* flex = "(-?[$0-9.,]{2,})|(-?[0-9]+)";
  EXPECT_EQ(regex_extract("a 12 b 7", flex, -1, "[invalid]"), "7");
  EXPECT_EQ(regex_extract("a 12 b 7", flex, 0, "[invalid]"), "12");
  EXPECT_EQ(regex_extract("a 12 b 7", flex, 5, "[invalid]"), "[invalid]");
  // No groups: the whole match; Unicode classes work (Oniguruma, UTF-8).
  EXPECT_EQ(regex_extract("答え: 東京 です", "\\p{Han}+", 0, "x"), "答");
  EXPECT_EQ(regex_extract("答え: 東京 です", "\\p{Han}+", -1, "x"), "東京");
  EXPECT_THROW(regex_extract("x", "(unclosed", 0, ""), Error);
  // The paper's extraction (docs/tasks.md): \d*\.?\d+, last match; "1,000" reads as "000", i.e. 0.
  EXPECT_EQ(regex_extract("the total is 1,000", "\\d*\\.?\\d+", -1, "[invalid]"), "000");
  EXPECT_FALSE(answers_match("000", "1000", MetricSpec{}));
  EXPECT_EQ(regex_extract("costs 3.50", "\\d*\\.?\\d+", -1, "[invalid]"), "3.50");
}

TEST(AnswerFilter, Pipeline) {
  std::vector<FilterStep> steps(3);
  steps[0].kind = FilterStep::Kind::Regex;
  steps[0].pattern = "answer is ([A-Za-z]+)";
  steps[1].kind = FilterStep::Kind::TakeFirst;
  steps[2].kind = FilterStep::Kind::Lowercase;
  AnswerFilter f(steps, "t.yaml");
  EXPECT_EQ(f.apply("I think the answer is Tokyo, really"), "tokyo");
  EXPECT_EQ(f.apply("no idea"), "[invalid]");
  std::vector<FilterStep> ln(1);
  AnswerFilter d(ln, "t.yaml");
  EXPECT_EQ(d.apply(" 37 + 25 = 62"), "62");
  EXPECT_EQ(d.apply("わかりません"), "[invalid]");
}

}  // namespace
}  // namespace evomerge::eval
