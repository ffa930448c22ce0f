// The tokenizer.json pipeline, as HF tokenizers runs it (tokenizer/mod.rs encode_single_sequence):
//   1. split out added tokens with normalized=false on the raw text;
//   2. normalize each remaining piece on its own, then split out added tokens with normalized=true;
//   3. pre-tokenize each piece (Split / ByteLevel / Metaspace / Digits / Sequence ...);
//   4. BPE per pre-token;
//   5. wrap with the special-tokens policy (post-processor / tokenizer_config).
// Decoding maps ids to their strings and runs the decoder chain.
#include "tokenize/tokenizer.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/json_limits.h"
#include "io/files.h"
#include "tokenize/bpe.h"
#include "tokenize/regex.h"
#include "tokenize/unicode.h"

namespace evomerge {

namespace {

using json = nlohmann::json;
using tok::Regex;

constexpr std::string_view kStage = "tokenizer";
// The GPT-2 pre-tokenizer regex, hard-coded in HF's ByteLevel pre-tokenizer.
constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// ---- small JSON helpers: every error names the file and the field path ----

const json& need(const json& j, const char* key, std::string_view where, const std::string& path) {
  if (!j.is_object()) fail(kStage, "{}: field '{}' must be an object", where, path);
  auto it = j.find(key);
  if (it == j.end()) fail(kStage, "{}: field '{}.{}' is missing", where, path, key);
  return *it;
}

std::string get_string(const json& j, const char* key, std::string_view where, const std::string& path,
                       std::optional<std::string> dflt = std::nullopt) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (dflt) return *dflt;
    fail(kStage, "{}: field '{}.{}' is missing", where, path, key);
  }
  if (!it->is_string()) fail(kStage, "{}: field '{}.{}' must be a string", where, path, key);
  return it->get<std::string>();
}

bool get_bool(const json& j, const char* key, bool dflt, std::string_view where, const std::string& path) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return dflt;
  if (!it->is_boolean()) fail(kStage, "{}: field '{}.{}' must be a boolean", where, path, key);
  return it->get<bool>();
}

int64_t get_int(const json& j, const char* key, int64_t dflt, std::string_view where, const std::string& path) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return dflt;
  if (!it->is_number_integer()) fail(kStage, "{}: field '{}.{}' must be an integer", where, path, key);
  return it->get<int64_t>();
}

const json& get_array(const json& j, const char* key, std::string_view where, const std::string& path) {
  const json& a = need(j, key, where, path);
  if (!a.is_array()) fail(kStage, "{}: field '{}.{}' must be an array", where, path, key);
  return a;
}

// {"String": "..."} or {"Regex": "..."}: a literal or an Oniguruma pattern.
struct Pattern {
  std::string literal;
  std::unique_ptr<Regex> regex;

  std::vector<std::pair<size_t, size_t>> find_all(std::string_view text) const {
    if (regex) return regex->find_all(text);
    std::vector<std::pair<size_t, size_t>> out;
    if (literal.empty()) return out;
    for (size_t p = text.find(literal); p != std::string_view::npos; p = text.find(literal, p + literal.size()))
      out.emplace_back(p, p + literal.size());
    return out;
  }
};

Pattern parse_pattern(const json& j, std::string_view where, const std::string& path) {
  const json& p = need(j, "pattern", where, path);
  Pattern out;
  if (p.is_object() && p.contains("String") && p["String"].is_string()) {
    out.literal = p["String"].get<std::string>();
  } else if (p.is_object() && p.contains("Regex") && p["Regex"].is_string()) {
    out.regex = std::make_unique<Regex>(p["Regex"].get<std::string>(), where, path + ".pattern.Regex");
  } else {
    fail(kStage, "{}: field '{}.pattern' must be {{\"String\": ...}} or {{\"Regex\": ...}}", where, path);
  }
  return out;
}

std::string replace_all(std::string_view text, const Pattern& p, std::string_view content) {
  std::string out;
  size_t prev = 0;
  for (auto [b, e] : p.find_all(text)) {
    out.append(text.substr(prev, b - prev));
    out.append(content);
    prev = e;
  }
  out.append(text.substr(prev));
  return out;
}


// ---- normalizers ----

struct Normalizer {
  enum class Kind { NFC, NFD, NFKC, NFKD, Lowercase, Prepend, Replace, Strip, Sequence } kind;
  std::string text;     // Prepend: what; Replace: content
  Pattern pattern;      // Replace
  bool left = false, right = false;  // Strip
  std::vector<Normalizer> children;

  std::string apply(std::string s) const {
    switch (kind) {
      case Kind::NFC: return tok::normalize(s, tok::NormalForm::NFC);
      case Kind::NFD: return tok::normalize(s, tok::NormalForm::NFD);
      case Kind::NFKC: return tok::normalize(s, tok::NormalForm::NFKC);
      case Kind::NFKD: return tok::normalize(s, tok::NormalForm::NFKD);
      case Kind::Lowercase: return tok::to_lower(s);
      case Kind::Prepend: return s.empty() ? s : text + s;  // HF prepends only to non-empty text
      case Kind::Replace: return replace_all(s, pattern, text);
      case Kind::Strip: {
        size_t b = 0, e = s.size();
        if (left)
          while (b < e) {
            size_t n;
            if (!tok::is_whitespace(tok::utf8_decode(s, b, &n))) break;
            b += n;
          }
        if (right)
          while (e > b) {
            size_t k = e - 1;
            while (k > b && (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80) --k;
            size_t n;
            if (!tok::is_whitespace(tok::utf8_decode(s, k, &n))) break;
            e = k;
          }
        return s.substr(b, e - b);
      }
      case Kind::Sequence:
        for (const auto& c : children) s = c.apply(std::move(s));
        return s;
    }
    return s;
  }
};

// Sequences nest; the depth is bounded so that a hostile file cannot overflow the stack. The depth is
// the number of list indices in the field path ("normalizer.normalizers[0].normalizers[2]" is 2).
void check_depth(std::string_view where, const std::string& path) {
  constexpr long kMaxDepth = 32;
  if (std::count(path.begin(), path.end(), '[') > kMaxDepth)
    fail(kStage, "{}: field '{}' nests Sequences deeper than {}", where, path, kMaxDepth);
}

Normalizer parse_normalizer(const json& j, std::string_view where, const std::string& path) {
  check_depth(where, path);
  std::string type = get_string(j, "type", where, path);
  Normalizer n{};
  if (type == "NFC") n.kind = Normalizer::Kind::NFC;
  else if (type == "NFD") n.kind = Normalizer::Kind::NFD;
  else if (type == "NFKC") n.kind = Normalizer::Kind::NFKC;
  else if (type == "NFKD") n.kind = Normalizer::Kind::NFKD;
  else if (type == "Lowercase") n.kind = Normalizer::Kind::Lowercase;
  else if (type == "Prepend") {
    n.kind = Normalizer::Kind::Prepend;
    n.text = get_string(j, "prepend", where, path);
  } else if (type == "Replace") {
    n.kind = Normalizer::Kind::Replace;
    n.pattern = parse_pattern(j, where, path);
    n.text = get_string(j, "content", where, path);
  } else if (type == "Strip") {
    n.kind = Normalizer::Kind::Strip;
    n.left = get_bool(j, "strip_left", true, where, path);
    n.right = get_bool(j, "strip_right", true, where, path);
  } else if (type == "Sequence") {
    n.kind = Normalizer::Kind::Sequence;
    const json& list = get_array(j, "normalizers", where, path);
    for (size_t i = 0; i < list.size(); ++i)
      n.children.push_back(parse_normalizer(list[i], where, fmt::format("{}.normalizers[{}]", path, i)));
  } else {
    fail(kStage, "{}: field '{}.type' '{}' is not supported (supported: NFC, NFD, NFKC, NFKD, Lowercase, Prepend, "
         "Replace, Strip, Sequence)", where, path, type);
  }
  return n;
}

// ---- pre-tokenizers ----

struct Piece {
  std::string text;
  bool at_origin;  // starts at offset 0 of the original text (Metaspace prepend_scheme "first")
};

enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

// Cuts `text` at the given matches with HF's SplitDelimiterBehavior semantics (normalizer.rs split);
// returns the non-empty spans.
std::vector<std::pair<size_t, size_t>> split_spans(std::string_view text, const std::vector<std::pair<size_t, size_t>>& matches,
                                                   SplitBehavior behavior, bool invert) {
  struct Seg {
    size_t b, e;
    bool match;
  };
  std::vector<Seg> segs;
  size_t prev = 0;
  for (auto [b, e] : matches) {
    if (prev != b) segs.push_back({prev, b, invert});
    segs.push_back({b, e, !invert});
    prev = e;
  }
  if (prev != text.size()) segs.push_back({prev, text.size(), invert});

  std::vector<std::pair<size_t, size_t>> out;
  switch (behavior) {
    case SplitBehavior::Removed:
      for (const auto& s : segs)
        if (!s.match) out.emplace_back(s.b, s.e);
      break;
    case SplitBehavior::Isolated:
      for (const auto& s : segs) out.emplace_back(s.b, s.e);
      break;
    case SplitBehavior::MergedWithPrevious: {
      bool prev_match = false;
      for (const auto& s : segs) {
        if (s.match && !prev_match && !out.empty())
          out.back().second = s.e;
        else
          out.emplace_back(s.b, s.e);
        prev_match = s.match;
      }
      break;
    }
    case SplitBehavior::MergedWithNext: {
      bool prev_match = false;
      for (auto it = segs.rbegin(); it != segs.rend(); ++it) {
        if (it->match && !prev_match && !out.empty())
          out.back().first = it->b;
        else
          out.emplace_back(it->b, it->e);
        prev_match = it->match;
      }
      std::reverse(out.begin(), out.end());
      break;
    }
    case SplitBehavior::Contiguous: {
      bool prev_match = false;
      for (const auto& s : segs) {
        if (s.match == prev_match && !out.empty())
          out.back().second = s.e;
        else
          out.emplace_back(s.b, s.e);
        prev_match = s.match;
      }
      break;
    }
  }
  std::erase_if(out, [](const auto& p) { return p.first == p.second; });
  return out;
}

struct PreTokenizer {
  enum class Kind { ByteLevel, Split, Metaspace, Digits, Whitespace, WhitespaceSplit, Sequence } kind;
  // ByteLevel
  bool add_prefix_space = false, use_regex = false;
  std::shared_ptr<Regex> regex;  // ByteLevel's GPT-2 regex; Whitespace's \w+|[^\w\s]+
  // Split
  Pattern pattern;
  SplitBehavior behavior = SplitBehavior::Isolated;
  bool invert = false;
  // Metaspace
  std::string replacement;
  enum class Prepend { Always, First, Never } prepend = Prepend::Always;
  bool split = true;
  // Digits
  bool individual_digits = false;
  std::vector<PreTokenizer> children;

  void apply(std::vector<Piece>& pieces) const {
    if (kind == Kind::Sequence) {
      for (const auto& c : children) c.apply(pieces);
      return;
    }
    std::vector<Piece> out;
    out.reserve(pieces.size());
    for (auto& p : pieces) apply_one(std::move(p), out);
    pieces = std::move(out);
  }

  static void push_spans(const Piece& p, const std::vector<std::pair<size_t, size_t>>& spans, std::vector<Piece>& out) {
    for (auto [b, e] : spans) out.push_back({p.text.substr(b, e - b), p.at_origin && b == 0});
  }

  void apply_one(Piece p, std::vector<Piece>& out) const {
    switch (kind) {
      case Kind::ByteLevel: {
        if (add_prefix_space && !p.text.starts_with(' ')) p.text.insert(0, " ");
        std::vector<Piece> parts;
        if (use_regex)
          push_spans(p, split_spans(p.text, regex->find_all(p.text), SplitBehavior::Isolated, false), parts);
        else
          parts.push_back(std::move(p));
        for (auto& q : parts) out.push_back({tok::bytes_to_bytelevel(q.text), q.at_origin});
        return;
      }
      case Kind::Split:
        push_spans(p, split_spans(p.text, pattern.find_all(p.text), behavior, invert), out);
        return;
      case Kind::Metaspace: {
        std::string s;
        for (char c : p.text) {
          if (c == ' ')
            s += replacement;
          else
            s += c;
        }
        bool prepend_now = prepend == Prepend::Always || (prepend == Prepend::First && p.at_origin);
        if (prepend_now && !s.starts_with(replacement)) s.insert(0, replacement);
        Piece q{std::move(s), p.at_origin};
        if (!split) {
          out.push_back(std::move(q));
          return;
        }
        std::vector<std::pair<size_t, size_t>> matches;
        for (size_t k = q.text.find(replacement); k != std::string::npos; k = q.text.find(replacement, k + replacement.size()))
          matches.emplace_back(k, k + replacement.size());
        push_spans(q, split_spans(q.text, matches, SplitBehavior::MergedWithNext, false), out);
        return;
      }
      case Kind::Digits: {
        std::vector<std::pair<size_t, size_t>> matches;
        for (size_t i = 0; i < p.text.size();) {
          size_t n;
          uint32_t cp = tok::utf8_decode(p.text, i, &n);
          if (tok::is_numeric(cp)) {
            if (!individual_digits && !matches.empty() && matches.back().second == i)
              matches.back().second = i + n;
            else
              matches.emplace_back(i, i + n);
          }
          i += n;
        }
        push_spans(p, split_spans(p.text, matches, SplitBehavior::Isolated, false), out);
        return;
      }
      case Kind::Whitespace:
        push_spans(p, split_spans(p.text, regex->find_all(p.text), SplitBehavior::Removed, true), out);
        return;
      case Kind::WhitespaceSplit: {
        std::vector<std::pair<size_t, size_t>> matches;
        for (size_t i = 0; i < p.text.size();) {
          size_t n;
          uint32_t cp = tok::utf8_decode(p.text, i, &n);
          if (tok::is_whitespace(cp)) matches.emplace_back(i, i + n);
          i += n;
        }
        push_spans(p, split_spans(p.text, matches, SplitBehavior::Removed, false), out);
        return;
      }
      case Kind::Sequence: EM_ASSERT(false);
    }
  }
};

std::shared_ptr<Regex> gpt2_regex(std::string_view where) {
  static std::shared_ptr<Regex> re = std::make_shared<Regex>(kGpt2Pattern, where, "ByteLevel");
  return re;
}

// Metaspace's prepend_scheme, with the legacy add_prefix_space boolean (false forces "never").
void parse_prepend_scheme(const json& j, std::string_view where, const std::string& path, PreTokenizer& p) {
  bool add_prefix = get_bool(j, "add_prefix_space", true, where, path);
  std::string scheme = get_string(j, "prepend_scheme", where, path, std::string(add_prefix ? "always" : "never"));
  if (!add_prefix) scheme = "never";
  if (scheme == "always") p.prepend = PreTokenizer::Prepend::Always;
  else if (scheme == "first") p.prepend = PreTokenizer::Prepend::First;
  else if (scheme == "never") p.prepend = PreTokenizer::Prepend::Never;
  else fail(kStage, "{}: field '{}.prepend_scheme' '{}' must be always, first or never", where, path, scheme);
}

PreTokenizer parse_pre_tokenizer(const json& j, std::string_view where, const std::string& path) {
  check_depth(where, path);
  std::string type = get_string(j, "type", where, path);
  PreTokenizer p{};
  if (type == "ByteLevel") {
    p.kind = PreTokenizer::Kind::ByteLevel;
    p.add_prefix_space = get_bool(j, "add_prefix_space", true, where, path);
    p.use_regex = get_bool(j, "use_regex", true, where, path);
    if (p.use_regex) p.regex = gpt2_regex(where);
  } else if (type == "Split") {
    p.kind = PreTokenizer::Kind::Split;
    p.pattern = parse_pattern(j, where, path);
    std::string b = get_string(j, "behavior", where, path);
    if (b == "Removed") p.behavior = SplitBehavior::Removed;
    else if (b == "Isolated") p.behavior = SplitBehavior::Isolated;
    else if (b == "MergedWithPrevious") p.behavior = SplitBehavior::MergedWithPrevious;
    else if (b == "MergedWithNext") p.behavior = SplitBehavior::MergedWithNext;
    else if (b == "Contiguous") p.behavior = SplitBehavior::Contiguous;
    else fail(kStage, "{}: field '{}.behavior' '{}' is not one of Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous",
              where, path, b);
    p.invert = get_bool(j, "invert", false, where, path);
  } else if (type == "Metaspace") {
    p.kind = PreTokenizer::Kind::Metaspace;
    p.replacement = get_string(j, "replacement", where, path, std::string("\xE2\x96\x81"));
    if (p.replacement.empty() || tok::utf8_len(p.replacement, 0) != p.replacement.size())
      fail(kStage, "{}: field '{}.replacement' must be one character", where, path);
    parse_prepend_scheme(j, where, path, p);
    p.split = get_bool(j, "split", true, where, path);
  } else if (type == "Digits") {
    p.kind = PreTokenizer::Kind::Digits;
    p.individual_digits = get_bool(j, "individual_digits", false, where, path);
  } else if (type == "Whitespace") {
    p.kind = PreTokenizer::Kind::Whitespace;
    p.regex = std::make_shared<Regex>(R"(\w+|[^\w\s]+)", where, path);
  } else if (type == "WhitespaceSplit") {
    p.kind = PreTokenizer::Kind::WhitespaceSplit;
  } else if (type == "Sequence") {
    p.kind = PreTokenizer::Kind::Sequence;
    const json& list = get_array(j, "pretokenizers", where, path);
    for (size_t i = 0; i < list.size(); ++i)
      p.children.push_back(parse_pre_tokenizer(list[i], where, fmt::format("{}.pretokenizers[{}]", path, i)));
  } else {
    fail(kStage, "{}: field '{}.type' '{}' is not supported (supported: ByteLevel, Split, Metaspace, Digits, Whitespace, "
         "WhitespaceSplit, Sequence)", where, path, type);
  }
  return p;
}

// ---- decoders: each step maps the token-string list to a new list (HF decode_chain) ----

struct DecodeStep {
  enum class Kind { ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip, BPEDecoder } kind;
  std::string replacement;  // Metaspace
  bool prepend = true;      // Metaspace: drop the first replacement char unless the scheme is "never"
  Pattern pattern;          // Replace
  std::string content;      // Replace: the new text; Strip: the character; BPEDecoder: suffix
  int64_t start = 0, stop = 0;

  void apply(std::vector<std::string>& tokens) const {
    switch (kind) {
      case Kind::ByteLevel: {
        std::string bytes;
        for (const auto& t : tokens) {
          std::string mapped;
          bool ok = true;
          for (size_t i = 0; i < t.size() && ok;) {
            size_t n;
            int b = tok::char_to_byte(tok::utf8_decode(t, i, &n));
            if (b < 0) ok = false;
            else mapped += static_cast<char>(b);
            i += n;
          }
          bytes += ok ? mapped : t;  // HF: a token with an unmapped char keeps its own bytes
        }
        tokens.assign(1, tok::utf8_lossy(bytes));
        return;
      }
      case Kind::Metaspace:
        for (size_t i = 0; i < tokens.size(); ++i) {
          std::string s;
          const std::string& t = tokens[i];
          for (size_t k = 0; k < t.size();) {
            size_t n = tok::utf8_len(t, k);
            if (t.compare(k, n, replacement) == 0) {
              if (!(i == 0 && k == 0 && prepend)) s += ' ';
            } else {
              s.append(t, k, n);
            }
            k += n;
          }
          tokens[i] = std::move(s);
        }
        return;
      case Kind::Replace:
        for (auto& t : tokens) t = replace_all(t, pattern, content);
        return;
      case Kind::ByteFallback: {
        std::vector<std::string> out;
        std::string pending;
        auto flush = [&] {
          if (pending.empty()) return;
          if (tok::utf8_valid(pending))
            out.push_back(pending);
          else
            for (size_t k = 0; k < pending.size(); ++k) out.push_back("\xEF\xBF\xBD");
          pending.clear();
        };
        for (auto& t : tokens) {
          auto hex = [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; };
          if (t.size() == 6 && t.starts_with("<0x") && t.back() == '>' && hex(t[3]) && hex(t[4])) {
            pending += static_cast<char>(std::stoi(t.substr(3, 2), nullptr, 16));
          } else {
            flush();
            out.push_back(std::move(t));
          }
        }
        flush();
        tokens = std::move(out);
        return;
      }
      case Kind::Fuse: {
        std::string all;
        for (const auto& t : tokens) all += t;
        tokens.assign(1, std::move(all));
        return;
      }
      case Kind::Strip:
        for (auto& t : tokens) {
          size_t b = 0, e = t.size();
          for (int64_t k = 0; k < start && b < e && t.compare(b, content.size(), content) == 0; ++k) b += content.size();
          for (int64_t k = 0; k < stop && e >= b + content.size() && t.compare(e - content.size(), content.size(), content) == 0; ++k)
            e -= content.size();
          t = t.substr(b, e - b);
        }
        return;
      case Kind::BPEDecoder:
        for (size_t i = 0; i < tokens.size(); ++i) {
          Pattern p;
          p.literal = content;
          tokens[i] = replace_all(tokens[i], p, i + 1 == tokens.size() ? "" : " ");
        }
        return;
    }
  }
};

void parse_decoder(const json& j, std::string_view where, const std::string& path, std::vector<DecodeStep>& steps) {
  check_depth(where, path);
  std::string type = get_string(j, "type", where, path);
  DecodeStep d{};
  if (type == "Sequence") {
    const json& list = get_array(j, "decoders", where, path);
    for (size_t i = 0; i < list.size(); ++i) parse_decoder(list[i], where, fmt::format("{}.decoders[{}]", path, i), steps);
    return;
  }
  if (type == "ByteLevel") {
    d.kind = DecodeStep::Kind::ByteLevel;
  } else if (type == "Metaspace") {
    d.kind = DecodeStep::Kind::Metaspace;
    d.replacement = get_string(j, "replacement", where, path, std::string("\xE2\x96\x81"));
    PreTokenizer tmp{};
    parse_prepend_scheme(j, where, path, tmp);
    d.prepend = tmp.prepend != PreTokenizer::Prepend::Never;
  } else if (type == "Replace") {
    d.kind = DecodeStep::Kind::Replace;
    d.pattern = parse_pattern(j, where, path);
    d.content = get_string(j, "content", where, path);
  } else if (type == "ByteFallback") {
    d.kind = DecodeStep::Kind::ByteFallback;
  } else if (type == "Fuse") {
    d.kind = DecodeStep::Kind::Fuse;
  } else if (type == "Strip") {
    d.kind = DecodeStep::Kind::Strip;
    d.content = get_string(j, "content", where, path);
    d.start = get_int(j, "start", 0, where, path);
    d.stop = get_int(j, "stop", 0, where, path);
    if (d.content.empty() || d.start < 0 || d.stop < 0 || d.start > 1'000'000 || d.stop > 1'000'000)
      fail(kStage, "{}: field '{}' needs a non-empty content and 0 <= start, stop", where, path);
  } else if (type == "BPEDecoder") {
    d.kind = DecodeStep::Kind::BPEDecoder;
    d.content = get_string(j, "suffix", where, path, std::string("</w>"));
    if (d.content.empty()) fail(kStage, "{}: field '{}.suffix' must not be empty", where, path);
  } else {
    fail(kStage, "{}: field '{}.type' '{}' is not supported (supported: ByteLevel, Metaspace, Replace, ByteFallback, Fuse, "
         "Strip, BPEDecoder, Sequence)", where, path, type);
  }
  steps.push_back(std::move(d));
}

// ---- added tokens ----

struct AddedToken {
  int32_t id;
  std::string content;
  bool single_word, lstrip, rstrip, normalized, special;
};

// A text segment after splitting out added tokens: either plain text or one added token.
struct Segment {
  std::string text;
  int32_t id;        // -1 for text
  bool at_origin;
};

// Leftmost-longest matching of a set of added tokens (HF uses an Aho-Corasick automaton in
// LeftmostLongest mode; with at most a few thousand tokens, bucketing by first byte is enough).
class AddedMatcher {
 public:
  void add(const AddedToken* t) {
    if (t->content.empty()) return;
    auto& b = buckets_[static_cast<unsigned char>(t->content[0])];
    b.push_back(t);
    empty_ = false;
  }
  // Longest first within each bucket, so the first hit at a position is the leftmost-longest match.
  void finish() {
    for (auto& b : buckets_)
      std::stable_sort(b.begin(), b.end(), [](auto* x, auto* y) { return x->content.size() > y->content.size(); });
  }
  bool empty() const { return empty_; }

  // Splits `seg` (text) into text and token segments, applying single_word / lstrip / rstrip.
  void split(const Segment& seg, std::vector<Segment>& out) const {
    std::string_view s = seg.text;
    if (empty_) {
      out.push_back(seg);
      return;
    }
    size_t start_offset = 0;  // end of the previous accepted match (and of its rstrip)
    size_t i = 0;
    auto push_text = [&](size_t b, size_t e) {
      if (e > b) out.push_back({std::string(s.substr(b, e - b)), -1, seg.at_origin && b == 0});
    };
    while (i < s.size()) {
      const AddedToken* hit = nullptr;
      for (const AddedToken* t : buckets_[static_cast<unsigned char>(s[i])])
        if (s.compare(i, t->content.size(), t->content) == 0) {
          hit = t;
          break;
        }
      if (!hit) {
        i += tok::utf8_len(s, i);
        continue;
      }
      size_t b = i, e = i + hit->content.size();
      if (hit->single_word) {
        bool word_before = false, word_after = false;
        if (b > 0) {
          size_t k = b - 1;
          while (k > 0 && (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80) --k;
          size_t n;
          word_before = tok::is_alnum_or_underscore(tok::utf8_decode(s, k, &n));
        }
        if (e < s.size()) {
          size_t n;
          word_after = tok::is_alnum_or_underscore(tok::utf8_decode(s, e, &n));
        }
        if (word_before || word_after) {
          i = e;  // the automaton resumes after the rejected match
          continue;
        }
      }
      if (hit->lstrip)
        while (b > start_offset) {
          size_t k = b - 1;
          while (k > start_offset && (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80) --k;
          size_t n;
          if (!tok::is_whitespace(tok::utf8_decode(s, k, &n))) break;
          b = k;
        }
      if (hit->rstrip)
        while (e < s.size()) {
          size_t n;
          if (!tok::is_whitespace(tok::utf8_decode(s, e, &n))) break;
          e += n;
        }
      push_text(start_offset, b);
      out.push_back({std::string(s.substr(b, e - b)), hit->id, seg.at_origin && b == 0});
      start_offset = i = e;
    }
    push_text(start_offset, s.size());
  }

 private:
  std::array<std::vector<const AddedToken*>, 256> buckets_;
  bool empty_ = true;
};

// tokenizer_config.json's token fields are a string or an AddedToken object {"content": ...}.
std::optional<std::string> config_token(const json& cfg, const char* key, std::string_view where) {
  auto it = cfg.find(key);
  if (it == cfg.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) return (*it)["content"].get<std::string>();
  fail(kStage, "{}: field '{}' must be a string, an object with 'content', or null", where, key);
}

// One post_processor entry (recursing into Sequence): the special tokens it puts before and after
// a text, appended to `pol`; `kinds` collects the types for the policy's description.
void parse_post_processor(const json& j, const std::string& path, const std::string& where,
                          std::vector<std::string>& kinds, SpecialTokensPolicy& pol) {
  check_depth(where, path);
  std::string t = get_string(j, "type", where, path);
  kinds.push_back(t);
  std::vector<int32_t> pre, post;
  if (t == "ByteLevel") {
    return;
  } else if (t == "Sequence") {
    const json& list = get_array(j, "processors", where, path);
    for (size_t i = 0; i < list.size(); ++i) parse_post_processor(list[i], fmt::format("{}.processors[{}]", path, i), where, kinds, pol);
    return;
  } else if (t == "TemplateProcessing") {
    const json& single = get_array(j, "single", where, path);
    const json& specials = need(j, "special_tokens", where, path);
    bool seen_a = false;
    for (size_t i = 0; i < single.size(); ++i) {
      const json& item = single[i];
      std::string ip = fmt::format("{}.single[{}]", path, i);
      if (item.is_object() && item.contains("Sequence")) {
        if (seen_a) fail(kStage, "{}: field '{}': the single template holds two sequences", where, ip);
        seen_a = true;
      } else if (item.is_object() && item.contains("SpecialToken")) {
        std::string name = get_string(item["SpecialToken"], "id", where, ip + ".SpecialToken");
        if (!specials.is_object() || !specials.contains(name))
          fail(kStage, "{}: field '{}.special_tokens' has no entry '{}'", where, path, name);
        const json& ids = get_array(specials[name], "ids", where, path + ".special_tokens." + name);
        for (const auto& id : ids) {
          if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= (1 << 24))
            fail(kStage, "{}: field '{}.special_tokens.{}.ids' holds a bad id", where, path, name);
          (seen_a ? post : pre).push_back(static_cast<int32_t>(id.get<int64_t>()));
        }
      } else {
        fail(kStage, "{}: field '{}' must be {{\"SpecialToken\": ...}} or {{\"Sequence\": ...}}", where, ip);
      }
    }
    if (!seen_a) fail(kStage, "{}: field '{}.single' has no Sequence", where, path);
  } else if (t == "RobertaProcessing" || t == "BertProcessing") {
    for (const char* k : {"cls", "sep"}) {
      const json& p = need(j, k, where, path);
      if (!p.is_array() || p.size() != 2 || !p[1].is_number_integer())
        fail(kStage, "{}: field '{}.{}' must be [token, id]", where, path, k);
      (std::string(k) == "cls" ? pre : post).push_back(static_cast<int32_t>(p[1].get<int64_t>()));
    }
  } else {
    fail(kStage, "{}: field '{}.type' '{}' is not supported (supported: TemplateProcessing, ByteLevel, "
         "RobertaProcessing, BertProcessing, Sequence)", where, path, t);
  }
  pol.prefix.insert(pol.prefix.begin(), pre.begin(), pre.end());
  pol.suffix.insert(pol.suffix.end(), post.begin(), post.end());
}

}  // namespace

// ---- the tokenizer ----

struct Tokenizer::Impl {
  std::string where;
  tok::Bpe bpe;
  std::vector<AddedToken> added;
  std::unordered_map<int32_t, size_t> added_by_id;
  std::unordered_map<std::string, int32_t> added_by_content;
  AddedMatcher raw_matcher, normalized_matcher;
  std::optional<Normalizer> normalizer;
  std::optional<PreTokenizer> pre_tokenizer;
  std::vector<DecodeStep> decoder;
  bool has_decoder = false;
  SpecialTokensPolicy policy;
  std::optional<int32_t> bos;
  std::vector<int32_t> eos;
  std::optional<std::string> chat_template;
  std::string bos_text, eos_text;
  int32_t vocab_size = 0;

  void parse_added_tokens(const json& root);
  void parse_config_tokens(const json& cfg, const std::string& cfg_where);
  void parse_special_tokens_policy(const json& root, const json& cfg, const std::string& cfg_where);

  std::optional<int32_t> lookup(std::string_view s) const {
    if (auto it = added_by_content.find(std::string(s)); it != added_by_content.end()) return it->second;
    return bpe.find(s);
  }
  std::optional<int32_t> lookup_required(const std::string& s, std::string_view field) const {
    auto id = lookup(s);
    if (!id) fail(kStage, "{}: field '{}': token '{}' is not in the vocabulary", where, field, s);
    return id;
  }

  void encode_text(const std::string& text, bool at_origin, std::vector<int32_t>& out) const {
    std::vector<Piece> pieces{{text, at_origin}};
    if (pre_tokenizer) pre_tokenizer->apply(pieces);
    for (const auto& p : pieces) bpe.tokenize(p.text, out);
  }
};

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

Tokenizer Tokenizer::load(const std::filesystem::path& model_dir) {
  auto tj = model_dir / "tokenizer.json";
  if (!std::filesystem::exists(tj)) fail(kStage, "{}: file not found (evomerge reads HF tokenizer.json)", tj.string());
  std::string tokenizer_json = read_text_file(tj);
  std::string config;
  auto tc = model_dir / "tokenizer_config.json";
  if (std::filesystem::exists(tc)) config = read_text_file(tc, 64u << 20);
  // Newer transformers versions keep some of tokenizer_config.json's fields in side files:
  // special_tokens_map.json (bos/eos/unk/pad tokens) and chat_template.jinja / chat_template.json.
  // Fold them in where tokenizer_config.json does not set the field itself.
  auto sm = model_dir / "special_tokens_map.json", jinja = model_dir / "chat_template.jinja",
       ctj = model_dir / "chat_template.json";
  if (std::filesystem::exists(sm) || std::filesystem::exists(jinja) || std::filesystem::exists(ctj)) {
    json cfg = json::object();
    if (!config.empty()) {
      check_json_depth(config, kStage, tc.string());
      try {
        cfg = json::parse(config);
      } catch (const json::exception& e) {
        fail(kStage, "{}: not valid JSON: {}", tc.string(), e.what());
      }
      if (!cfg.is_object()) fail(kStage, "{}: top level must be an object", tc.string());
    }
    if (std::filesystem::exists(sm)) {
      json m;
      const std::string sm_text = read_text_file(sm, 16u << 20);
      check_json_depth(sm_text, kStage, sm.string());
      try {
        m = json::parse(sm_text);
      } catch (const json::exception& e) {
        fail(kStage, "{}: not valid JSON: {}", sm.string(), e.what());
      }
      if (!m.is_object()) fail(kStage, "{}: top level must be an object", sm.string());
      for (const char* key : {"bos_token", "eos_token", "unk_token", "pad_token"})
        if (m.contains(key) && (!cfg.contains(key) || cfg[key].is_null())) cfg[key] = m[key];
    }
    if (!cfg.contains("chat_template") || cfg["chat_template"].is_null()) {
      if (std::filesystem::exists(jinja)) {
        cfg["chat_template"] = read_text_file(jinja, 16u << 20);
      } else if (std::filesystem::exists(ctj)) {
        json c;
        const std::string ctj_text = read_text_file(ctj, 16u << 20);
        check_json_depth(ctj_text, kStage, ctj.string());
        try {
          c = json::parse(ctj_text);
        } catch (const json::exception& e) {
          fail(kStage, "{}: not valid JSON: {}", ctj.string(), e.what());
        }
        if (c.is_object() && c.contains("chat_template")) cfg["chat_template"] = c["chat_template"];
      }
    }
    config = cfg.dump();
  }
  return from_json(tokenizer_json, config, tj.string());
}

// added_tokens: ids, contents and flags, and the two matchers that find them in text.
void Tokenizer::Impl::parse_added_tokens(const json& root) {
  if (auto at = root.find("added_tokens"); at != root.end() && !at->is_null()) {
    if (!at->is_array()) fail(kStage, "{}: field 'added_tokens' must be an array", where);
    added.reserve(at->size());
    for (size_t i = 0; i < at->size(); ++i) {
      const json& t = (*at)[i];
      std::string path = fmt::format("added_tokens[{}]", i);
      int64_t id = get_int(t, "id", -1, where, path);
      if (id < 0 || id >= (1 << 24)) fail(kStage, "{}: field '{}.id' is missing or outside [0, 2^24)", where, path);
      AddedToken a{};
      a.id = static_cast<int32_t>(id);
      a.content = get_string(t, "content", where, path);
      if (a.content.empty()) fail(kStage, "{}: field '{}.content' is empty", where, path);
      if (!tok::utf8_valid(a.content)) fail(kStage, "{}: field '{}.content' is not valid UTF-8", where, path);
      a.special = get_bool(t, "special", false, where, path);
      a.single_word = get_bool(t, "single_word", false, where, path);
      a.lstrip = get_bool(t, "lstrip", false, where, path);
      a.rstrip = get_bool(t, "rstrip", false, where, path);
      a.normalized = get_bool(t, "normalized", !a.special, where, path);
      added.push_back(std::move(a));
    }
    for (size_t i = 0; i < added.size(); ++i) {
      const auto& a = added[i];
      added_by_id[a.id] = i;
      added_by_content[a.content] = a.id;
      vocab_size = std::max(vocab_size, a.id + 1);
    }
    for (const auto& a : added) (a.normalized ? normalized_matcher : raw_matcher).add(&a);
    raw_matcher.finish();
    normalized_matcher.finish();
  }

}

// tokenizer_config.json: the chat template and the bos / eos tokens.
void Tokenizer::Impl::parse_config_tokens(const json& cfg, const std::string& cfg_where) {
  chat_template = std::nullopt;
  if (auto ct = cfg.find("chat_template"); ct != cfg.end() && !ct->is_null()) {
    if (ct->is_string()) {
      chat_template = ct->get<std::string>();
    } else if (ct->is_array()) {  // [{"name": "default", "template": "..."}, ...]
      for (const auto& e : *ct)
        if (e.is_object() && e.value("name", "") == "default" && e.contains("template") && e["template"].is_string())
          chat_template = e["template"].get<std::string>();
    } else {
      fail(kStage, "{}: field 'chat_template' must be a string or a list of named templates", cfg_where);
    }
  }
  auto bos_in_config = config_token(cfg, "bos_token", cfg_where);
  auto eos_in_config = config_token(cfg, "eos_token", cfg_where);
  if (bos_in_config) {
    bos_text = *bos_in_config;
    bos = lookup(*bos_in_config);
  }
  if (eos_in_config) {
    eos_text = *eos_in_config;
    if (auto id = lookup(*eos_in_config)) eos.push_back(*id);
  }

}

// The special-tokens policy (SpecialTokensPolicy in the header): from tokenizer_config.json for
// the tokenizer classes that set it there, else from tokenizer.json's post_processor.
void Tokenizer::Impl::parse_special_tokens_policy(const json& root, const json& cfg,
                                                  const std::string& cfg_where) {
  std::string cls = cfg.contains("tokenizer_class") && cfg["tokenizer_class"].is_string() ? cfg["tokenizer_class"].get<std::string>() : "";
  if (cls.ends_with("Fast")) cls.resize(cls.size() - 4);
  auto& pol = policy;
  if (cls == "LlamaTokenizer" || cls == "CodeLlamaTokenizer" || cls == "GemmaTokenizer") {
    bool add_bos = get_bool(cfg, "add_bos_token", true, cfg_where, "tokenizer_config");
    bool add_eos = get_bool(cfg, "add_eos_token", false, cfg_where, "tokenizer_config");
    if (add_bos) {
      if (!bos) fail(kStage, "{}: field 'add_bos_token' is true but bos_token is missing or not in the vocabulary", cfg_where);
      pol.prefix.push_back(*bos);
    }
    if (add_eos) {
      if (eos.empty()) fail(kStage, "{}: field 'add_eos_token' is true but eos_token is missing or not in the vocabulary", cfg_where);
      pol.suffix.push_back(eos.front());
    }
    pol.source = fmt::format("tokenizer_config.json {}: add_bos_token={}, add_eos_token={}", cls, add_bos, add_eos);
  } else if (auto pp = root.find("post_processor"); pp != root.end() && !pp->is_null()) {
    std::vector<std::string> kinds;
    parse_post_processor(*pp, "post_processor", where, kinds, pol);
    pol.source = fmt::format("tokenizer.json post_processor {}", fmt::join(kinds, "+"));
  } else {
    pol.source = "no post_processor: no special tokens added";
  }
  for (int32_t id : pol.prefix)
    if (id >= vocab_size) fail(kStage, "{}: post_processor special token id {} is outside the vocabulary", where, id);
  for (int32_t id : pol.suffix)
    if (id >= vocab_size) fail(kStage, "{}: post_processor special token id {} is outside the vocabulary", where, id);
  if (!bos && pol.prefix.size() == 1) bos = pol.prefix[0];

}

Tokenizer Tokenizer::from_json(std::string_view tokenizer_json, std::string_view tokenizer_config_json, std::string_view where_sv) {
  auto impl = std::make_unique<Impl>();
  impl->where = std::string(where_sv);
  const std::string& where = impl->where;
  const std::string cfg_where = where.ends_with("tokenizer.json")
                                    ? where.substr(0, where.size() - 14) + "tokenizer_config.json"
                                    : where + " (tokenizer_config)";
  json root;
  check_json_depth(tokenizer_json, kStage, where);
  check_json_depth(tokenizer_config_json, kStage, cfg_where);
  try {
    root = json::parse(tokenizer_json);
  } catch (const json::exception& e) {
    fail(kStage, "{}: not valid JSON: {}", where, e.what());
  }
  json cfg = json::object();
  if (!tokenizer_config_json.empty()) {
    try {
      cfg = json::parse(tokenizer_config_json);
    } catch (const json::exception& e) {
      fail(kStage, "{}: not valid JSON: {}", cfg_where, e.what());
    }
    if (!cfg.is_object()) fail(kStage, "{}: top level must be an object", cfg_where);
  }
  if (!root.is_object()) fail(kStage, "{}: top level must be an object", where);

  // Model.
  const json& model = need(root, "model", where, "tokenizer");
  if (!model.is_object()) fail(kStage, "{}: field 'model' must be an object", where);
  std::string type = model.contains("type") ? get_string(model, "type", where, "model") : std::string("BPE");
  if (type != "BPE")
    fail(kStage, "{}: model.type '{}' is not supported (evomerge reads BPE tokenizers: byte-level and SentencePiece-style)",
         where, type);
  impl->bpe = tok::Bpe::from_json(model, where);
  impl->vocab_size = impl->bpe.max_id() + 1;

  impl->parse_added_tokens(root);
  if (auto n = root.find("normalizer"); n != root.end() && !n->is_null()) impl->normalizer = parse_normalizer(*n, where, "normalizer");
  if (auto p = root.find("pre_tokenizer"); p != root.end() && !p->is_null())
    impl->pre_tokenizer = parse_pre_tokenizer(*p, where, "pre_tokenizer");
  if (auto d = root.find("decoder"); d != root.end() && !d->is_null()) {
    parse_decoder(*d, where, "decoder", impl->decoder);
    impl->has_decoder = true;
  }

  impl->parse_config_tokens(cfg, cfg_where);
  impl->parse_special_tokens_policy(root, cfg, cfg_where);
  // End-of-turn tokens of recognised chat templates stop generation too.
  if (impl->chat_template) {
    for (const char* marker : {"<|eot_id|>", "<|im_end|>"})
      if (impl->chat_template->find(marker) != std::string::npos)
        if (auto id = impl->lookup(marker))
          if (std::find(impl->eos.begin(), impl->eos.end(), *id) == impl->eos.end()) impl->eos.push_back(*id);
  }
  return Tokenizer(std::move(impl));
}

std::vector<int32_t> Tokenizer::encode(std::string_view text_in, bool add_special_tokens) const {
  const Impl& m = *impl_;
  // Invalid UTF-8 is replaced (U+FFFD per maximal invalid subsequence) before anything sees it: the
  // regex engine and the pipeline work on valid text only, as HF's &str does.
  std::string text = tok::utf8_valid(text_in) ? std::string(text_in) : tok::utf8_lossy(text_in);
  std::vector<int32_t> out;
  if (add_special_tokens) out = m.policy.prefix;

  std::vector<Segment> raw;
  m.raw_matcher.split({std::move(text), -1, true}, raw);
  for (auto& seg : raw) {
    if (seg.id >= 0) {
      out.push_back(seg.id);
      continue;
    }
    if (m.normalizer) seg.text = m.normalizer->apply(std::move(seg.text));
    std::vector<Segment> parts;
    m.normalized_matcher.split(seg, parts);
    for (const auto& p : parts) {
      if (p.id >= 0)
        out.push_back(p.id);
      else
        m.encode_text(p.text, p.at_origin, out);
    }
  }
  if (add_special_tokens) out.insert(out.end(), m.policy.suffix.begin(), m.policy.suffix.end());
  return out;
}

std::vector<std::string> Tokenizer::pre_tokens(std::string_view text_in) const {
  const Impl& m = *impl_;
  std::string text = tok::utf8_valid(text_in) ? std::string(text_in) : tok::utf8_lossy(text_in);
  if (m.normalizer) text = m.normalizer->apply(std::move(text));
  std::vector<Piece> pieces{{std::move(text), true}};
  if (m.pre_tokenizer) m.pre_tokenizer->apply(pieces);
  std::vector<std::string> out;
  for (auto& p : pieces) out.push_back(std::move(p.text));
  return out;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  const Impl& m = *impl_;
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    if (auto it = m.added_by_id.find(id); it != m.added_by_id.end()) {
      const AddedToken& a = m.added[it->second];
      if (!(skip_special_tokens && a.special)) tokens.push_back(a.content);
    } else if (const std::string* t = m.bpe.token(id)) {
      tokens.push_back(*t);
    }
    // Ids outside the vocabulary (a padded embedding row) decode to nothing, as in HF.
  }
  if (!m.has_decoder) return fmt::format("{}", fmt::join(tokens, " "));
  for (const auto& step : m.decoder) step.apply(tokens);
  std::string out;
  for (const auto& t : tokens) out += t;
  return out;
}

std::string Tokenizer::piece(int32_t id) const {
  if (auto it = impl_->added_by_id.find(id); it != impl_->added_by_id.end()) return impl_->added[it->second].content;
  if (const std::string* t = impl_->bpe.token(id)) return *t;
  return {};
}

std::optional<int32_t> Tokenizer::token_to_id(std::string_view piece) const { return impl_->lookup(piece); }
const SpecialTokensPolicy& Tokenizer::special_tokens_policy() const { return impl_->policy; }
int32_t Tokenizer::vocab_size() const { return impl_->vocab_size; }
std::optional<int32_t> Tokenizer::bos_id() const { return impl_->bos; }
std::vector<int32_t> Tokenizer::eos_ids() const { return impl_->eos; }

bool Tokenizer::is_special(int32_t id) const {
  auto it = impl_->added_by_id.find(id);
  return it != impl_->added_by_id.end() && impl_->added[it->second].special;
}

std::optional<std::string> Tokenizer::chat_template() const { return impl_->chat_template; }

std::string Tokenizer::apply_chat_template(std::span<const ChatMessage> messages, bool add_generation_prompt,
                                           std::string* note) const {
  const Impl& m = *impl_;
  const std::string tpl = m.chat_template.value_or("");
  auto has = [&](std::string_view s) { return tpl.find(s) != std::string::npos; };
  std::string out;
  auto say = [&](std::string text) {
    if (note) *note = std::move(text);
  };
  if (has("<|im_start|>")) {
    for (const auto& msg : messages) out += fmt::format("<|im_start|>{}\n{}<|im_end|>\n", msg.role, msg.content);
    if (add_generation_prompt) out += "<|im_start|>assistant\n";
    say("chat template recognised as ChatML (<|im_start|>)");
  } else if (has("<|start_header_id|>")) {
    out += m.bos_text;
    for (const auto& msg : messages) {
      // Llama-3's template trims each message's content.
      std::string_view c = msg.content;
      while (!c.empty() && std::isspace(static_cast<unsigned char>(c.front()))) c.remove_prefix(1);
      while (!c.empty() && std::isspace(static_cast<unsigned char>(c.back()))) c.remove_suffix(1);
      out += fmt::format("<|start_header_id|>{}<|end_header_id|>\n\n{}<|eot_id|>", msg.role, c);
    }
    if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
    say("chat template recognised as Llama-3 (<|start_header_id|>)");
  } else if (has("[INST]")) {
    // Llama-2 / Mistral: the system message is folded into the first user turn.
    const bool llama2_sys = has("<<SYS>>");
    std::string system;
    bool first_user = true;
    out += m.bos_text;
    for (const auto& msg : messages) {
      if (msg.role == "system") {
        system = msg.content;
      } else if (msg.role == "user") {
        std::string content = msg.content;
        if (first_user && !system.empty())
          content = llama2_sys ? fmt::format("<<SYS>>\n{}\n<</SYS>>\n\n{}", system, content) : system + "\n\n" + content;
        first_user = false;
        out += fmt::format("[INST] {} [/INST]", content);
      } else {
        out += fmt::format(" {}{}", msg.content, m.eos_text);
      }
    }
    say("chat template recognised as Llama-2/Mistral ([INST])");
  } else if (has("<|user|>")) {
    for (const auto& msg : messages) out += fmt::format("<|{}|>\n{}{}\n", msg.role, msg.content, m.eos_text);
    if (add_generation_prompt) out += "<|assistant|>\n";
    say("chat template recognised as Zephyr (<|user|>)");
  } else {
    for (const auto& msg : messages) out += fmt::format("{}: {}\n", msg.role, msg.content);
    if (add_generation_prompt) out += "assistant:";
    say(m.chat_template ? "chat template not recognised; used a plain 'role: content' layout"
                        : "no chat_template in tokenizer_config.json; used a plain 'role: content' layout");
  }
  return out;
}

}  // namespace evomerge
