// Internal: an Oniguruma regex (the engine HF tokenizers uses, so leftmost-first backtracking,
// Unicode \p{..}/\s and Unicode case folding behave as in the reference).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace evomerge::tok {

class Regex {
 public:
  // Throws evomerge::Error("[tokenizer] <where>: field '<field>': regex ... : <onig message>").
  Regex(std::string_view pattern, std::string_view where, std::string_view field);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Byte spans [begin, end) of all non-overlapping, non-empty matches in `text` (valid UTF-8),
  // scanning left to right; an empty match advances by one character.
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view text) const;

 private:
  void* regex_ = nullptr;  // OnigRegex
};

}  // namespace evomerge::tok
