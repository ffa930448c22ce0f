// Answer extraction and comparison for generated outputs.
//
// Default (no filter_list): the last number in the output, as the paper scores math, but with
// commas and signs handled: the last match of  -?[0-9][0-9,]*(\.[0-9]+)?  with commas removed
// ("1,000" -> 1000, "-3" -> -3). The paper's code used \d*\.?\d+ and read "1,000" as 0.
// Numbers compare as numbers ("3.50" == "3.5"); anything else compares as stripped strings.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "eval/task.h"

namespace evomerge::eval {

// The last number in `text` with commas removed ("1,000.5" -> "1000.5"), or nullopt.
std::optional<std::string> last_number(std::string_view text);

// `text` as a number if the whole (trimmed) string is one: optional sign, digits with optional
// thousands commas, optional fraction ("1,000", "-3", "3.50", "+2", ".5"). Otherwise nullopt.
std::optional<double> parse_number(std::string_view text);

// A compiled filter pipeline (regexes compiled once, Oniguruma with Python syntax, UTF-8).
class AnswerFilter {
 public:
  // `where` names the task file for pattern errors.
  AnswerFilter(std::span<const FilterStep> steps, std::string_view where);
  ~AnswerFilter();
  AnswerFilter(AnswerFilter&&) noexcept;
  AnswerFilter& operator=(AnswerFilter&&) noexcept;
  AnswerFilter(const AnswerFilter&) = delete;
  AnswerFilter& operator=(const AnswerFilter&) = delete;

  std::string apply(std::string_view output) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// lm-eval's regex filter on one string: every non-overlapping match (findall); with capture groups
// a match stands for its first non-empty group; pick match `group_select` (negative from the end);
// the pick is stripped; nothing -> fallback. Compiles the pattern each call (tests, one-offs).
std::string regex_extract(std::string_view text, std::string_view pattern, int group_select, std::string_view fallback);

// exact_match of an extracted answer against a target under `metric`'s options: numerically when
// both parse as numbers (relative tolerance 1e-9), else as strings after stripping whitespace and
// the options (ignore_case, ignore_punctuation, regexes_to_ignore).
bool answers_match(std::string_view answer, std::string_view target, const MetricSpec& metric);

}  // namespace evomerge::eval
