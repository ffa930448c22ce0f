#include "common/text.h"

#include <fmt/format.h>

namespace evomerge {

std::string printable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    if (c >= 0x20 && c < 0x7f)
      out.push_back(static_cast<char>(c));
    else
      out += fmt::format("\\x{:02x}", c);
  }
  return out;
}

size_t utf8_sequence(std::string_view s, size_t i, bool* ok, uint32_t* cp) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  *ok = false;
  if (b0 < 0x80) {
    *ok = true;
    *cp = b0;
    return 1;
  }
  size_t need;
  unsigned char lo = 0x80, hi = 0xBF;
  uint32_t value;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 1;
    value = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 2;
    value = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;  // no surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 3;
    value = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;  // <= U+10FFFF
  } else {
    return 1;
  }
  size_t j = i + 1;
  for (size_t k = 0; k < need; ++k, ++j) {
    if (j >= s.size()) return j - i;
    const auto b = static_cast<unsigned char>(s[j]);
    const unsigned char l = k == 0 ? lo : 0x80, h = k == 0 ? hi : 0xBF;
    if (b < l || b > h) return j - i;
    value = (value << 6) | (b & 0x3F);
  }
  *ok = true;
  *cp = value;
  return need + 1;
}

bool utf8_valid(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    bool ok;
    uint32_t cp;
    i += utf8_sequence(s, i, &ok, &cp);
    if (!ok) return false;
  }
  return true;
}

}  // namespace evomerge
