#include "tokenize/unicode.h"

#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>

#include "common/error.h"
#include "common/text.h"

namespace evomerge::tok {

namespace {

constexpr uint32_t kReplacement = 0xFFFD;

std::u16string to_utf16(std::string_view utf8) {
  std::u16string out(utf8.size() + 1, u'\0');
  int32_t len = 0;
  UErrorCode err = U_ZERO_ERROR;
  u_strFromUTF8WithSub(reinterpret_cast<UChar*>(out.data()), static_cast<int32_t>(out.size()), &len, utf8.data(),
                       static_cast<int32_t>(utf8.size()), kReplacement, nullptr, &err);
  EM_ASSERT(U_SUCCESS(err));
  out.resize(static_cast<size_t>(len));
  return out;
}

std::string from_utf16(const std::u16string& s) {
  std::string out(s.size() * 3 + 1, '\0');
  int32_t len = 0;
  UErrorCode err = U_ZERO_ERROR;
  u_strToUTF8WithSub(out.data(), static_cast<int32_t>(out.size()), &len, reinterpret_cast<const UChar*>(s.data()),
                     static_cast<int32_t>(s.size()), kReplacement, nullptr, &err);
  EM_ASSERT(U_SUCCESS(err));
  out.resize(static_cast<size_t>(len));
  return out;
}

bool all_ascii(std::string_view s) {
  for (char c : s)
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  return true;
}

}  // namespace

uint32_t utf8_decode(std::string_view s, size_t i, size_t* len) {
  bool ok;
  uint32_t cp = 0;
  *len = utf8_sequence(s, i, &ok, &cp);
  return ok ? cp : kReplacement;
}

size_t utf8_len(std::string_view s, size_t i) {
  bool ok;
  uint32_t cp;
  return utf8_sequence(s, i, &ok, &cp);
}

void utf8_append(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::string utf8_lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (size_t i = 0; i < bytes.size();) {
    bool ok;
    uint32_t cp;
    size_t n = utf8_sequence(bytes, i, &ok, &cp);
    if (ok)
      out.append(bytes.substr(i, n));
    else
      utf8_append(out, kReplacement);
    i += n;
  }
  return out;
}

bool is_whitespace(uint32_t cp) { return u_hasBinaryProperty(static_cast<UChar32>(cp), UCHAR_WHITE_SPACE); }

bool is_alnum_or_underscore(uint32_t cp) {
  // Rust char::is_alphanumeric = Alphabetic || Numeric (general category N*).
  return cp == '_' || u_hasBinaryProperty(static_cast<UChar32>(cp), UCHAR_ALPHABETIC) || is_numeric(cp);
}

bool is_numeric(uint32_t cp) { return (U_GET_GC_MASK(static_cast<UChar32>(cp)) & U_GC_N_MASK) != 0; }

std::string normalize(std::string_view utf8, NormalForm form) {
  if (all_ascii(utf8)) return std::string(utf8);  // ASCII is invariant under every normal form
  UErrorCode err = U_ZERO_ERROR;
  const UNormalizer2* n = nullptr;
  switch (form) {
    case NormalForm::NFC: n = unorm2_getNFCInstance(&err); break;
    case NormalForm::NFD: n = unorm2_getNFDInstance(&err); break;
    case NormalForm::NFKC: n = unorm2_getNFKCInstance(&err); break;
    case NormalForm::NFKD: n = unorm2_getNFKDInstance(&err); break;
  }
  EM_ASSERT(U_SUCCESS(err) && n);
  std::u16string src = to_utf16(utf8);
  int32_t cap = static_cast<int32_t>(src.size() * 4 + 16);
  std::u16string dst(static_cast<size_t>(cap), u'\0');
  int32_t len = unorm2_normalize(n, reinterpret_cast<const UChar*>(src.data()), static_cast<int32_t>(src.size()),
                                 reinterpret_cast<UChar*>(dst.data()), cap, &err);
  if (err == U_BUFFER_OVERFLOW_ERROR) {
    err = U_ZERO_ERROR;
    dst.assign(static_cast<size_t>(len), u'\0');
    len = unorm2_normalize(n, reinterpret_cast<const UChar*>(src.data()), static_cast<int32_t>(src.size()),
                           reinterpret_cast<UChar*>(dst.data()), len, &err);
  }
  EM_ASSERT(U_SUCCESS(err));
  dst.resize(static_cast<size_t>(len));
  return from_utf16(dst);
}

std::string to_lower(std::string_view utf8) {
  std::u16string src = to_utf16(utf8);
  UErrorCode err = U_ZERO_ERROR;
  int32_t cap = static_cast<int32_t>(src.size() * 3 + 16);
  std::u16string dst(static_cast<size_t>(cap), u'\0');
  int32_t len = u_strToLower(reinterpret_cast<UChar*>(dst.data()), cap, reinterpret_cast<const UChar*>(src.data()),
                             static_cast<int32_t>(src.size()), "", &err);
  EM_ASSERT(U_SUCCESS(err));
  dst.resize(static_cast<size_t>(len));
  return from_utf16(dst);
}

const std::array<uint32_t, 256>& byte_to_char() {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    uint32_t next = 0x100;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
      t[static_cast<size_t>(b)] = printable ? static_cast<uint32_t>(b) : next++;
    }
    return t;
  }();
  return table;
}

int char_to_byte(uint32_t cp) {
  static const std::vector<int16_t> inverse = [] {
    std::vector<int16_t> v(0x144, -1);
    const auto& t = byte_to_char();
    for (int b = 0; b < 256; ++b) v[t[static_cast<size_t>(b)]] = static_cast<int16_t>(b);
    return v;
  }();
  return cp < inverse.size() ? inverse[cp] : -1;
}

std::string bytes_to_bytelevel(std::string_view bytes) {
  const auto& t = byte_to_char();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) utf8_append(out, t[static_cast<unsigned char>(c)]);
  return out;
}

}  // namespace evomerge::tok
