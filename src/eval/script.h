// Which Unicode script a text's letters are written in: our stand-in for the paper's fastText
// language check (see docs/tasks.md for the difference). Only letters (General_Category L*) count;
// digits, punctuation, symbols and spaces are ignored. A letter belongs to a script by its Script
// property, or by Script_Extensions when its Script is Common/Inherited (U+30FC 'ー' counts as both
// Hiragana and Katakana). The table is generated from the Unicode Character Database (version in
// unicode_scripts_version()) by gen_unicode_scripts.pl.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace evomerge::eval {

// Script ids for names: Unicode long names ("Han", "Hiragana", "Old_Italic"), matched ignoring case,
// '_', '-' and ' ', plus the aliases "Japanese" (Han + Hiragana + Katakana) and "Korean" (Hangul + Han).
// Unknown names: Error naming `where` and the name.
std::vector<int> resolve_scripts(std::span<const std::string> names, std::string_view where);

struct ScriptShare {
  int64_t letters = 0;     // letters in the text
  int64_t in_scripts = 0;  // of which in the requested scripts
  double share() const { return letters > 0 ? static_cast<double>(in_scripts) / static_cast<double>(letters) : 0.0; }
};
// Counts letters of UTF-8 `text` (invalid bytes are skipped) and those in `scripts`.
ScriptShare script_share(std::string_view text, std::span<const int> scripts);

// The script name of a code point if it is a letter, else "" (tests, diagnostics).
std::string_view letter_script(char32_t cp);
std::string_view unicode_scripts_version();
std::vector<std::string> known_scripts();

// Decodes one UTF-8 code point at text[pos], advancing pos; invalid or truncated sequences yield
// U+FFFD and advance one byte.
char32_t next_code_point(std::string_view text, size_t& pos);

}  // namespace evomerge::eval
