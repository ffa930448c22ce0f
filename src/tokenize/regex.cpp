#include "tokenize/regex.h"

#include <oniguruma.h>

#include <mutex>

#include "common/error.h"
#include "tokenize/unicode.h"

namespace evomerge::tok {

namespace {
void init_onig() {
  static std::once_flag once;
  std::call_once(once, [] {
    OnigEncoding encodings[1] = {ONIG_ENCODING_UTF8};
    onig_initialize(encodings, 1);
  });
}

// Oniguruma's backtracking is bounded so that a hostile pattern in a tokenizer.json cannot hang a
// run: a pre-tokenizer regex over one text segment needs far fewer steps than this.
constexpr unsigned long kRetryLimit = 10'000'000;
}  // namespace

Regex::Regex(std::string_view pattern, std::string_view where, std::string_view field) {
  init_onig();
  OnigRegex re = nullptr;
  OnigErrorInfo info;
  const auto* p = reinterpret_cast<const OnigUChar*>(pattern.data());
  int r = onig_new(&re, p, p + pattern.size(), ONIG_OPTION_NONE, ONIG_ENCODING_UTF8, ONIG_SYNTAX_DEFAULT, &info);
  if (r != ONIG_NORMAL) {
    OnigUChar msg[ONIG_MAX_ERROR_MESSAGE_LEN];
    onig_error_code_to_str(msg, r, &info);
    fail("tokenizer", "{}: field '{}': regex '{}' does not compile: {}", where, field, pattern,
         reinterpret_cast<const char*>(msg));
  }
  regex_ = re;
}

Regex::~Regex() {
  if (regex_) onig_free(static_cast<OnigRegex>(regex_));
}

std::vector<std::pair<size_t, size_t>> Regex::find_all(std::string_view text) const {
  std::vector<std::pair<size_t, size_t>> out;
  auto re = static_cast<OnigRegex>(regex_);
  OnigRegion* region = onig_region_new();
  OnigMatchParam* mp = onig_new_match_param();
  onig_initialize_match_param(mp);
  onig_set_retry_limit_in_match_of_match_param(mp, kRetryLimit);
  const auto* start = reinterpret_cast<const OnigUChar*>(text.data());
  const auto* end = start + text.size();
  size_t pos = 0;
  while (pos <= text.size()) {
    int r = onig_search_with_param(re, start, end, start + pos, end, region, ONIG_OPTION_NONE, mp);
    if (r < 0) break;  // ONIG_MISMATCH, or the retry limit: treat the rest as unmatched
    const auto b = static_cast<size_t>(region->beg[0]), e = static_cast<size_t>(region->end[0]);
    if (e > b) {
      out.emplace_back(b, e);
      pos = e;
    } else {
      if (b >= text.size()) break;
      pos = b + utf8_len(text, b);
    }
  }
  onig_free_match_param(mp);
  onig_region_free(region, 1);
  return out;
}

}  // namespace evomerge::tok
