#include "eval/extract.h"

#include <oniguruma.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <vector>

#include "common/error.h"

namespace evomerge::eval {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

std::string strip(std::string_view s) {
  size_t a = 0, b = s.size();
  while (a < b && std::isspace(static_cast<unsigned char>(s[a]))) ++a;
  while (b > a && std::isspace(static_cast<unsigned char>(s[b - 1]))) --b;
  return std::string(s.substr(a, b - a));
}

// Oniguruma is initialised once for UTF-8.
void init_onig() {
  static const bool done = [] {
    OnigEncoding enc = ONIG_ENCODING_UTF8;
    onig_initialize(&enc, 1);
    return true;
  }();
  (void)done;
}

struct Regex {
  regex_t* re = nullptr;
  Regex(std::string_view pattern, std::string_view where) {
    init_onig();
    OnigErrorInfo info;
    const auto* p = reinterpret_cast<const OnigUChar*>(pattern.data());
    int r = onig_new(&re, p, p + pattern.size(), ONIG_OPTION_CAPTURE_GROUP, ONIG_ENCODING_UTF8, ONIG_SYNTAX_PYTHON,
                     &info);
    if (r != ONIG_NORMAL) {
      OnigUChar msg[ONIG_MAX_ERROR_MESSAGE_LEN];
      onig_error_code_to_str(msg, r, &info);
      re = nullptr;
      fail("eval", "{}: regex_pattern '{}' does not compile: {}", where, pattern, reinterpret_cast<char*>(msg));
    }
  }
  ~Regex() {
    if (re) onig_free(re);
  }
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // findall as Python's re.findall: whole match without groups, else the first non-empty group
  // (lm-eval turns a tuple of groups into its first non-empty element).
  std::vector<std::string> findall(std::string_view text) const {
    std::vector<std::string> out;
    const auto* s = reinterpret_cast<const OnigUChar*>(text.data());
    const auto* end = s + text.size();
    OnigRegion* region = onig_region_new();
    size_t pos = 0;
    int groups = onig_number_of_captures(re);
    while (pos <= text.size()) {
      int r = onig_search(re, s, end, s + pos, end, region, ONIG_OPTION_NONE);
      if (r < 0) break;
      size_t b = static_cast<size_t>(region->beg[0]), e = static_cast<size_t>(region->end[0]);
      if (groups == 0) {
        out.emplace_back(text.substr(b, e - b));
      } else {
        std::string pick;
        for (int g = 1; g <= groups; ++g)
          if (region->beg[g] >= 0 && region->end[g] > region->beg[g]) {
            pick = std::string(text.substr(region->beg[g], region->end[g] - region->beg[g]));
            break;
          }
        out.push_back(pick);
      }
      if (e > b) {
        pos = e;
      } else {  // an empty match: step over one code point
        if (e >= text.size()) break;
        pos = e + 1;
        while (pos < text.size() && (static_cast<unsigned char>(text[pos]) & 0xC0) == 0x80) ++pos;
      }
    }
    onig_region_free(region, 1);
    return out;
  }
};

std::string pick(const std::vector<std::string>& matches, int group_select, std::string_view fallback) {
  long long n = static_cast<long long>(matches.size());
  long long i = group_select < 0 ? n + group_select : group_select;
  if (n == 0 || i < 0 || i >= n) return std::string(fallback);
  std::string s = strip(matches[static_cast<size_t>(i)]);
  return s.empty() ? std::string(fallback) : s;
}

}  // namespace

std::optional<std::string> last_number(std::string_view t) {
  // Leftmost non-overlapping matches of -?[0-9][0-9,]*(\.[0-9]+)? scanned left to right; keep the last.
  std::optional<std::string> last;
  size_t i = 0;
  while (i < t.size()) {
    size_t start = i;
    size_t d = (t[i] == '-' && i + 1 < t.size() && is_digit(t[i + 1])) ? i + 1 : i;
    if (!is_digit(t[d])) {
      ++i;
      continue;
    }
    size_t j = d + 1;
    while (j < t.size() && (is_digit(t[j]) || t[j] == ',')) ++j;
    if (j + 1 < t.size() && t[j] == '.' && is_digit(t[j + 1])) {
      j += 2;
      while (j < t.size() && is_digit(t[j])) ++j;
    }
    std::string m;
    for (size_t k = start; k < j; ++k)
      if (t[k] != ',') m += t[k];
    last = m;
    i = j;
  }
  return last;
}

std::optional<double> parse_number(std::string_view text) {
  std::string s = strip(text);
  size_t i = 0;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
  size_t int_start = i;
  std::string digits(s.substr(0, i) == "+" ? "" : s.substr(0, i));
  bool any = false;
  while (i < s.size() && (is_digit(s[i]) || (s[i] == ',' && i > int_start))) {
    if (s[i] != ',') digits += s[i], any = true;
    ++i;
  }
  if (i < s.size() && s[i] == '.') {
    digits += '.';
    ++i;
    bool frac = false;
    while (i < s.size() && is_digit(s[i])) digits += s[i++], frac = true;
    if (!frac) return std::nullopt;
    any = true;
  }
  if (!any || i != s.size() || (i > 0 && s[i - 1] == ',')) return std::nullopt;
  return std::strtod(digits.c_str(), nullptr);
}

struct AnswerFilter::Impl {
  std::vector<FilterStep> steps;
  std::vector<std::unique_ptr<Regex>> regexes;  // one per step (null for non-regex steps)
};

AnswerFilter::AnswerFilter(std::span<const FilterStep> steps, std::string_view where) : impl_(std::make_unique<Impl>()) {
  for (const auto& st : steps) {
    impl_->steps.push_back(st);
    impl_->regexes.push_back(st.kind == FilterStep::Kind::Regex ? std::make_unique<Regex>(st.pattern, where) : nullptr);
  }
}
AnswerFilter::~AnswerFilter() = default;
AnswerFilter::AnswerFilter(AnswerFilter&&) noexcept = default;
AnswerFilter& AnswerFilter::operator=(AnswerFilter&&) noexcept = default;

std::string AnswerFilter::apply(std::string_view output) const {
  std::string s(output);
  for (size_t k = 0; k < impl_->steps.size(); ++k) {
    const FilterStep& st = impl_->steps[k];
    switch (st.kind) {
      case FilterStep::Kind::Regex:
        s = pick(impl_->regexes[k]->findall(s), st.group_select, st.fallback);
        break;
      case FilterStep::Kind::LastNumber:
        s = last_number(s).value_or(st.fallback);
        break;
      case FilterStep::Kind::TakeFirst:  // one output per item: nothing to choose
        break;
      case FilterStep::Kind::Lowercase:
        for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        break;
      case FilterStep::Kind::Uppercase:
        for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        break;
      case FilterStep::Kind::RemoveWhitespace: {  // lm-eval: leading whitespace
        size_t a = 0;
        while (a < s.size() && std::isspace(static_cast<unsigned char>(s[a]))) ++a;
        s.erase(0, a);
        break;
      }
      case FilterStep::Kind::Strip:
        s = strip(s);
        break;
    }
  }
  return s;
}

std::string regex_extract(std::string_view text, std::string_view pattern, int group_select, std::string_view fallback) {
  Regex re(pattern, "<regex>");
  return pick(re.findall(text), group_select, fallback);
}

bool answers_match(std::string_view answer, std::string_view target, const MetricSpec& metric) {
  auto a = parse_number(answer), t = parse_number(target);
  if (a && t) return std::fabs(*a - *t) <= 1e-9 * std::max({1.0, std::fabs(*a), std::fabs(*t)});
  auto norm = [&](std::string_view x) {
    std::string s(x);
    for (const auto& pat : metric.regexes_to_ignore) {
      Regex re(pat, "regexes_to_ignore");
      // Remove every match (re.sub(pat, "", s)).
      std::string out;
      const auto* b = reinterpret_cast<const OnigUChar*>(s.data());
      OnigRegion* region = onig_region_new();
      size_t pos = 0;
      while (pos <= s.size()) {
        int r = onig_search(re.re, b, b + s.size(), b + pos, b + s.size(), region, ONIG_OPTION_NONE);
        if (r < 0) break;
        size_t mb = region->beg[0], me = region->end[0];
        out.append(s, pos, mb - pos);
        if (me == mb) {
          if (mb >= s.size()) {
            pos = s.size();
            break;
          }
          out += s[mb];
          pos = mb + 1;
        } else {
          pos = me;
        }
      }
      if (pos < s.size()) out.append(s, pos, std::string::npos);
      onig_region_free(region, 1);
      s = out;
    }
    if (metric.ignore_case)
      for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (metric.ignore_punctuation) {
      std::string o;
      for (char c : s)
        if (!std::ispunct(static_cast<unsigned char>(c))) o += c;
      s = o;
    }
    return strip(s);
  };
  return norm(answer) == norm(target);
}

}  // namespace evomerge::eval
