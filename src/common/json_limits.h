// Bounds for JSON read from outside files. nlohmann::json builds, copies and destroys documents
// recursively, so a line such as `[[[[...]]]]` nested 150,000 deep overflows the stack before any
// parser error: the depth is checked first, by a flat scan that never recurses.
#pragma once

#include <cstddef>
#include <string_view>

namespace evomerge {

// Deeper than any real config, index, tokenizer or task record (tokenizer.json nests about 6).
inline constexpr size_t kMaxJsonDepth = 128;

// The deepest nesting of arrays and objects in `text` (0 for a scalar), counting brackets outside
// strings; stops counting once past `stop_after`. Malformed text is the parser's business: this
// only bounds the depth it will see.
size_t json_nesting_depth(std::string_view text, size_t stop_after = kMaxJsonDepth);

// Throws Error "[stage] where: JSON nested deeper than N levels" when `text` nests deeper than
// `max_depth`.
void check_json_depth(std::string_view text, std::string_view stage, std::string_view where,
                      size_t max_depth = kMaxJsonDepth);

}  // namespace evomerge
