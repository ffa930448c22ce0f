// "Did you mean ...?" for a mistyped subcommand or option: the closest known name by edit
// distance, when it is close enough to be a typo.
#pragma once

#include <string>
#include <vector>

namespace evomerge::cli {

// The candidate nearest to `word` (Levenshtein distance, at most max(2, |word| / 3)), or "".
std::string closest_name(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace evomerge::cli
