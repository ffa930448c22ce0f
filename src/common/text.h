// Outside text: quoting it in messages, checking it is UTF-8.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace evomerge {

// Outside text quoted in an error message (a JSON parser's complaint, a name read from a file),
// rendered as printable ASCII: other bytes become \xNN, so a hostile file cannot put raw bytes or
// control codes on a terminal.
std::string printable(std::string_view text);

// Length of the maximal valid prefix of a UTF-8 sequence at s[i] (Unicode's "maximal subpart"
// rule, as Rust and WHATWG use): returns the full length and sets *ok (and *cp, the code point)
// when the sequence is complete and valid (no overlong forms, surrogates or values past
// U+10FFFF), else the number of bytes that form one replacement character.
size_t utf8_sequence(std::string_view s, size_t i, bool* ok, uint32_t* cp);

// Whether `s` is well-formed UTF-8 (what nlohmann::json accepts in strings it dumps).
bool utf8_valid(std::string_view s);

}  // namespace evomerge
