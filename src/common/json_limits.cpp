#include "common/json_limits.h"

#include "common/error.h"

namespace evomerge {

size_t json_nesting_depth(std::string_view text, size_t stop_after) {
  size_t depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (const char c : text) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > deepest) deepest = depth;
      if (deepest > stop_after) return deepest;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

void check_json_depth(std::string_view text, std::string_view stage, std::string_view where,
                      size_t max_depth) {
  if (json_nesting_depth(text, max_depth) > max_depth)
    fail(stage, "{}: JSON nested deeper than {} levels", where, max_depth);
}

}  // namespace evomerge
