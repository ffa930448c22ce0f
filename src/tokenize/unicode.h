// Internal UTF-8 and Unicode helpers of the tokenizer (not a public header of the stage).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/text.h"

namespace evomerge::tok {

// Decodes the code point at s[i] and returns its length in bytes (1..4). Invalid bytes decode as
// U+FFFD with length 1, so a scan over arbitrary bytes always advances.
uint32_t utf8_decode(std::string_view s, size_t i, size_t* len);
// Length in bytes of the (possibly invalid) sequence starting at s[i]; same rule as utf8_decode.
size_t utf8_len(std::string_view s, size_t i);
void utf8_append(std::string& out, uint32_t cp);
// Replaces every maximal invalid subsequence by U+FFFD (Rust's String::from_utf8_lossy).
std::string utf8_lossy(std::string_view bytes);
using ::evomerge::utf8_valid;  // common/text.h

// Unicode predicates (ICU tables).
bool is_whitespace(uint32_t cp);   // Unicode White_Space (Rust char::is_whitespace)
bool is_alnum_or_underscore(uint32_t cp);  // HF's "word" character for single_word added tokens
bool is_numeric(uint32_t cp);      // general category N* (Rust char::is_numeric)

enum class NormalForm { NFC, NFD, NFKC, NFKD };
std::string normalize(std::string_view utf8, NormalForm form);
std::string to_lower(std::string_view utf8);  // full Unicode lowercase mapping (root locale)

// GPT-2's byte <-> printable char table: bytes 33..126, 161..172, 174..255 map to themselves, the
// other 68 to U+0100 + n in increasing order (space -> U+0120 'Ġ', '\n' -> U+010A 'Ċ').
const std::array<uint32_t, 256>& byte_to_char();
// The inverse: -1 when the code point is not one of the 256 mapped chars.
int char_to_byte(uint32_t cp);
// Maps each byte of `bytes` to its char and returns the UTF-8 of those chars.
std::string bytes_to_bytelevel(std::string_view bytes);

}  // namespace evomerge::tok
