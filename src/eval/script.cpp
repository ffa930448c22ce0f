#include "eval/script.h"

#include <algorithm>
#include <cctype>

#include "common/error.h"

namespace evomerge::eval {
namespace {

struct LetterRange {
  uint32_t first;
  uint32_t last;
  uint16_t script;
};
struct ScxRange {
  uint32_t first;
  uint32_t last;
  uint16_t scripts[12];
  int count;
};

#include "eval/unicode_scripts_table.inc"

constexpr size_t kNumScripts = sizeof(kScriptNames) / sizeof(kScriptNames[0]);

std::string fold_name(std::string_view s) {
  std::string out;
  for (char c : s)
    if (c != '_' && c != '-' && c != ' ') out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

int find_script(std::string_view name) {
  std::string f = fold_name(name);
  for (size_t i = 0; i < kNumScripts; ++i)
    if (fold_name(kScriptNames[i]) == f) return static_cast<int>(i);
  return -1;
}

const LetterRange* find_range(char32_t cp) {
  auto it = std::upper_bound(std::begin(kLetterRanges), std::end(kLetterRanges), static_cast<uint32_t>(cp),
                             [](uint32_t c, const LetterRange& r) { return c < r.first; });
  if (it == std::begin(kLetterRanges)) return nullptr;
  --it;
  return cp <= it->last ? &*it : nullptr;
}

const ScxRange* find_scx(char32_t cp) {
  for (const auto& r : kScxRanges)
    if (cp >= r.first && cp <= r.last) return &r;
  return nullptr;
}

}  // namespace

char32_t next_code_point(std::string_view s, size_t& pos) {
  EM_ASSERT(pos < s.size());
  auto b = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  unsigned char c = b(pos);
  int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
  if (len == 1) {
    ++pos;
    return c;
  }
  if (len == 0 || pos + len > s.size()) {
    ++pos;
    return 0xFFFD;
  }
  char32_t cp = c & (0x7F >> len);
  for (int k = 1; k < len; ++k) {
    if ((b(pos + k) & 0xC0) != 0x80) {
      ++pos;
      return 0xFFFD;
    }
    cp = (cp << 6) | (b(pos + k) & 0x3F);
  }
  // Overlong forms, surrogates and values past U+10FFFF are invalid.
  static constexpr char32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
    ++pos;
    return 0xFFFD;
  }
  pos += len;
  return cp;
}

std::vector<int> resolve_scripts(std::span<const std::string> names, std::string_view where) {
  std::vector<int> ids;
  auto add = [&](std::string_view n) {
    int id = find_script(n);
    EM_ASSERT(id >= 0);
    ids.push_back(id);
  };
  for (const auto& name : names) {
    std::string f = fold_name(name);
    if (f == "japanese") {
      add("Han"), add("Hiragana"), add("Katakana");
    } else if (f == "korean") {
      add("Hangul"), add("Han");
    } else {
      int id = find_script(name);
      if (id < 0)
        fail("eval", "{}: answer_script: unknown Unicode script '{}' (use a Unicode script name such as Han, "
                     "Hiragana, Katakana, Latin, Cyrillic, Greek, Arabic, Hangul, Devanagari, Thai, or 'Japanese')",
             where, name);
      ids.push_back(id);
    }
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

ScriptShare script_share(std::string_view text, std::span<const int> scripts) {
  ScriptShare r;
  auto wanted = [&](int id) { return std::find(scripts.begin(), scripts.end(), id) != scripts.end(); };
  size_t pos = 0;
  while (pos < text.size()) {
    char32_t cp = next_code_point(text, pos);
    const LetterRange* lr = find_range(cp);
    if (!lr) continue;
    ++r.letters;
    bool in = wanted(lr->script);
    if (!in)
      if (const ScxRange* x = find_scx(cp))
        for (int k = 0; k < x->count && !in; ++k) in = wanted(x->scripts[k]);
    if (in) ++r.in_scripts;
  }
  return r;
}

std::string_view letter_script(char32_t cp) {
  const LetterRange* lr = find_range(cp);
  return lr ? std::string_view(kScriptNames[lr->script]) : std::string_view();
}

std::string_view unicode_scripts_version() { return kUnicodeVersion; }

std::vector<std::string> known_scripts() { return {std::begin(kScriptNames), std::end(kScriptNames)}; }

}  // namespace evomerge::eval
