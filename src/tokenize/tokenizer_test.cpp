// Unit tests on small hand-written tokenizer.json files (expected ids worked out by hand from the
// HF pipeline rules), plus the fast BPE held to the plain reference, error messages, and the
// regex-engine behaviours where HF (Oniguruma) and the JS golden reference differ.
#include "tokenize/tokenizer.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>
#include <unistd.h>

#include "common/error.h"
#include "io/files.h"
#include "tokenize/bpe.h"
#include "tokenize/gzip.h"
#include "tokenize/regex.h"
#include "tokenize/unicode.h"
#include "common/test_util.h"

namespace evomerge {
namespace {

using json = nlohmann::json;
using Ids = std::vector<int32_t>;

// A tiny BPE over characters: vocab a b c d ' ' (id 4), ab, bc, abc, cd, plus <unk>.
json tiny_model() {
  return json{{"type", "BPE"},
              {"dropout", nullptr},
              {"unk_token", "<unk>"},
              {"vocab", {{"a", 0}, {"b", 1}, {"c", 2}, {"d", 3}, {" ", 4}, {"ab", 5}, {"bc", 6}, {"abc", 7}, {"cd", 8}, {"<unk>", 9}}},
              {"merges", {"b c", "a b", "c d", "a bc"}}};
}

Tokenizer make(const json& tokenizer, const json& config = json()) {
  return Tokenizer::from_json(tokenizer.dump(), config.is_null() ? "" : config.dump(), "test/tokenizer.json");
}

json base(json model = tiny_model()) { return json{{"model", model}, {"added_tokens", json::array()}}; }

using testing_util::error_of;

// ---- BPE ----

TEST(Bpe, MergesByRankThenLeftmost) {
  auto tok = make(base());
  // "abc": ranks b c (0) < a b (1): b+c first, then a+bc (3) -> abc.
  EXPECT_EQ(tok.encode("abc", false), (Ids{7}));
  // "abcd": b c (0) -> a bc d; then c d is gone; a bc (3) -> abc d.
  EXPECT_EQ(tok.encode("abcd", false), (Ids{7, 3}));
  // "cdab": c d (2), a b (1): a b first (lower rank), then c d.
  EXPECT_EQ(tok.encode("cdab", false), (Ids{8, 5}));
  // No pre-tokenizer: the space is an ordinary symbol.
  EXPECT_EQ(tok.encode("ab ab", false), (Ids{5, 4, 5}));
}

TEST(Bpe, MergesAsPairsEqualMergesAsStrings) {
  json m = tiny_model();
  m["merges"] = json::array({json::array({"b", "c"}), json::array({"a", "b"}), json::array({"c", "d"}), json::array({"a", "bc"})});
  auto pairs = make(base(m)), strings = make(base());
  for (const char* s : {"abc", "abcd", "cdab", "dcba", "aabbccdd"}) EXPECT_EQ(pairs.encode(s, false), strings.encode(s, false)) << s;
}

TEST(Bpe, IgnoreMergesEmitsWholeWordsFromTheVocab) {
  // vocab has "abcd"? no; "cd" yes. With ignore_merges a word in the vocab is taken whole even when
  // the merges would split it differently: "bcd" is not in vocab; add "dab" and a merge order that
  // would never build it.
  json m = tiny_model();
  m["vocab"]["dab"] = 10;
  m["vocab"]["da"] = 11;
  m["merges"].push_back("d a");
  m["merges"].push_back("da b");
  // Without ignore_merges: a b (1) beats d a (4): "dab" -> d ab.
  EXPECT_EQ(make(base(m)).encode("dab", false), (Ids{3, 5}));
  m["ignore_merges"] = true;
  EXPECT_EQ(make(base(m)).encode("dab", false), (Ids{10}));
  // Words not in the vocab still merge.
  EXPECT_EQ(make(base(m)).encode("abcd", false), (Ids{7, 3}));
}

TEST(Bpe, UnknownCharactersUseUnkAndFuseUnk) {
  auto tok = make(base());
  EXPECT_EQ(tok.encode("axyb", false), (Ids{0, 9, 9, 1}));
  json m = tiny_model();
  m["fuse_unk"] = true;
  EXPECT_EQ(make(base(m)).encode("axyb", false), (Ids{0, 9, 1}));
  EXPECT_EQ(make(base(m)).encode("xaby", false), (Ids{9, 5, 9}));
}

TEST(Bpe, ByteFallbackEmitsByteTokens) {
  json m = tiny_model();
  m["byte_fallback"] = true;
  for (int b = 0; b < 256; ++b) m["vocab"][fmt::format("<0x{:02X}>", b)] = 100 + b;
  // "é" is C3 A9.
  EXPECT_EQ(make(base(m)).encode("a\xC3\xA9", false), (Ids{0, 100 + 0xC3, 100 + 0xA9}));
  // Decoding with the ByteFallback chain restores the text; an invalid byte run gives one U+FFFD per byte.
  json t = base(m);
  t["decoder"] = {{"type", "Sequence"}, {"decoders", {{{"type", "ByteFallback"}}, {{"type", "Fuse"}}}}};
  auto tok = make(t);
  EXPECT_EQ(tok.decode(Ids{0, 100 + 0xC3, 100 + 0xA9, 1}), "a\xC3\xA9" "b");
  EXPECT_EQ(tok.decode(Ids{0, 100 + 0xC3, 1, 100 + 0xFF}), "a\xEF\xBF\xBD" "b\xEF\xBF\xBD");
}

TEST(Bpe, NoUnkTokenIsAClearError) {
  json m = tiny_model();
  m["unk_token"] = nullptr;
  auto tok = make(base(m));
  EXPECT_NE(error_of([&] { tok.encode("axb", false); }).find("character 'x' is not in the vocabulary"), std::string::npos);
}

// The fast heap merge equals the plain O(n^2) reference on random words over a real vocabulary.
TEST(Bpe, HeapMergeMatchesPlainReferenceOnQwen3Vocab) {
  const auto path = std::filesystem::path(EVOMERGE_SOURCE_DIR) / "tests/data/tokenizers/qwen3/tokenizer.json.gz";
  std::string text = tok::read_gzip_file(path);
  auto bpe = tok::Bpe::from_json(json::parse(text)["model"], "qwen3");
  std::mt19937 rng(1234);
  const std::vector<std::string> pool = {"a", "e", "t", "th", "in", "g", " ", "s", "er", "\xC3\xA9", "\xE4\xBD\xA0", "1", "'", "ab",
                                         "x", "q", "ing", "re"};
  int compared = 0;
  for (int k = 0; k < 3000; ++k) {
    std::string w;
    int len = 1 + static_cast<int>(rng() % 14);
    for (int i = 0; i < len; ++i) w += pool[rng() % pool.size()];
    std::string word = tok::bytes_to_bytelevel(w);
    ASSERT_EQ(bpe.tokenize_uncached(word), bpe.tokenize_reference(word)) << w;
    ++compared;
  }
  EXPECT_EQ(compared, 3000);
  // And the cached path returns the same as the uncached one (second call hits the cache).
  std::vector<int32_t> a, b;
  bpe.tokenize(tok::bytes_to_bytelevel("interesting"), a);
  bpe.tokenize(tok::bytes_to_bytelevel("interesting"), b);
  EXPECT_EQ(a, b);
  EXPECT_EQ(a, bpe.tokenize_reference(tok::bytes_to_bytelevel("interesting")));
}

// ---- pre-tokenizers ----

json with_pre(const json& pre, json model = tiny_model()) {
  json t = base(std::move(model));
  t["pre_tokenizer"] = pre;
  return t;
}

json split_on(const char* pattern, const char* behavior, bool invert = false) {
  return {{"type", "Split"}, {"pattern", {{"String", pattern}}}, {"behavior", behavior}, {"invert", invert}};
}

TEST(PreTokenizer, SplitBehaviours) {
  // Merges a+b and c+d exist: whether they apply shows where the pre-token boundaries are.
  EXPECT_EQ(make(with_pre(split_on("b", "Isolated"))).encode("abab", false), (Ids{0, 1, 0, 1}));
  EXPECT_EQ(make(with_pre(split_on("b", "Removed"))).encode("abab", false), (Ids{0, 0}));
  EXPECT_EQ(make(with_pre(split_on("b", "MergedWithPrevious"))).encode("abab", false), (Ids{5, 5}));
  // "cdab" split on "d": MergedWithNext gives "c" "dab" -> c, d ab.
  EXPECT_EQ(make(with_pre(split_on("d", "MergedWithNext"))).encode("cdab", false), (Ids{2, 3, 5}));
  // Contiguous keeps runs of matches together: "abba" on "b" -> a, bb, a.
  EXPECT_EQ(make(with_pre(split_on("b", "Contiguous"))).encode("abba", false), (Ids{0, 1, 1, 0}));
  EXPECT_EQ(make(with_pre(split_on("b", "Isolated"))).encode("abba", false), (Ids{0, 1, 1, 0}));
  // invert: the matches become the non-delimiters. Split "ab" inverted, Removed: keeps only "ab"s.
  EXPECT_EQ(make(with_pre(split_on("ab", "Removed", true))).encode("abcab", false), (Ids{5, 5}));
}

TEST(PreTokenizer, RegexSplitUsesOniguruma) {
  json pre = {{"type", "Split"}, {"pattern", {{"Regex", "\\p{L}+|\\s+"}}}, {"behavior", "Removed"}, {"invert", true}};
  // Keeps the matches: "ab cd" -> "ab", " ", "cd".
  EXPECT_EQ(make(with_pre(pre)).encode("ab cd", false), (Ids{5, 4, 8}));
}

TEST(PreTokenizer, Digits) {
  json m = tiny_model();
  m["vocab"]["1"] = 20;
  m["vocab"]["2"] = 21;
  m["vocab"]["12"] = 22;
  m["merges"].push_back("1 2");
  EXPECT_EQ(make(with_pre({{"type", "Digits"}, {"individual_digits", true}}, m)).encode("a12", false), (Ids{0, 20, 21}));
  EXPECT_EQ(make(with_pre({{"type", "Digits"}, {"individual_digits", false}}, m)).encode("a12", false), (Ids{0, 22}));
}

TEST(PreTokenizer, ByteLevelMapsBytesAndOptionallyPrependsASpace) {
  // Byte-level vocab: "Ġ" (U+0120) is the space, "Ċ" (U+010A) the newline.
  json m = {{"type", "BPE"},
            {"vocab", {{"a", 0}, {"b", 1}, {"\xC4\xA0", 2}, {"\xC4\x8A", 3}, {"\xC4\xA0" "a", 4}, {"\xC3\x83", 5}, {"\xC2\xA9", 6}}},
            {"merges", {"\xC4\xA0 a"}}};
  json pre = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
  auto tok = make(with_pre(pre, m));
  EXPECT_EQ(tok.encode("a a\nb", false), (Ids{0, 4, 3, 1}));
  EXPECT_EQ(tok.encode("\xC3\xA9", false), (Ids{5, 6}));  // é = C3 A9 -> "Ã" "©"
  pre["add_prefix_space"] = true;
  EXPECT_EQ(make(with_pre(pre, m)).encode("a", false), (Ids{4}));
  EXPECT_EQ(tok::bytes_to_bytelevel(" \n"), "\xC4\xA0\xC4\x8A");
  EXPECT_EQ(tok::char_to_byte(0x120), 0x20);
  EXPECT_EQ(tok::char_to_byte(0x41), 0x41);
  EXPECT_EQ(tok::char_to_byte(0x20), -1);
}

// Llama-3's pattern under Oniguruma, the behaviours where the JS golden reference differs.
TEST(PreTokenizer, OnigurumaSemanticsOfTheLlama3Pattern) {
  tok::Regex re(R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)",
                "test", "pattern");
  auto pieces = [&](const std::string& s) {
    std::vector<std::string> out;
    for (auto [b, e] : re.find_all(s)) out.push_back(s.substr(b, e - b));
    return out;
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(pieces("Hello world"), (V{"Hello", " world"}));
  EXPECT_EQ(pieces("12345"), (V{"123", "45"}));
  EXPECT_EQ(pieces("a   b"), (V{"a", "  ", " b"}));  // \s+(?!\S) leaves the last space to the word
  EXPECT_EQ(pieces("I'M"), (V{"I", "'M"}));
  // Unicode case folding: U+017F LONG S folds to 's', so "'ſ" is a contraction (JS: "'ſtuff").
  EXPECT_EQ(pieces("'\xC5\xBFtuff"), (V{"'\xC5\xBF", "tuff"}));
  // Oniguruma's \s has U+0085 (NEL) and not U+FEFF (JS: the other way round).
  EXPECT_EQ(pieces("a\xC2\x85\xC2\x85" "b"), (V{"a", "\xC2\x85", "\xC2\x85" "b"}));
  EXPECT_EQ(pieces("a \xEF\xBB\xBF!"), (V{"a", " \xEF\xBB\xBF!"}));
}

TEST(PreTokenizer, MetaspacePrependSchemes) {
  const std::string sp = "\xE2\x96\x81";  // ▁
  json m = {{"type", "BPE"}, {"vocab", {{sp, 0}, {"a", 1}, {sp + "a", 2}, {"<s>", 3}}}, {"merges", {sp + " a"}}};
  json t = with_pre({{"type", "Metaspace"}, {"replacement", sp}, {"prepend_scheme", "always"}, {"split", true}}, m);
  t["added_tokens"] = {{{"id", 3}, {"content", "<s>"}, {"special", true}, {"normalized", false}}};
  EXPECT_EQ(make(t).encode("a a", false), (Ids{2, 2}));
  EXPECT_EQ(make(t).encode("<s>a", false), (Ids{3, 2}));  // always: every segment gets "▁"
  t["pre_tokenizer"]["prepend_scheme"] = "first";
  EXPECT_EQ(make(t).encode("a<s>a", false), (Ids{2, 3, 1}));  // first: only at the start of the text
  t["pre_tokenizer"]["prepend_scheme"] = "never";
  EXPECT_EQ(make(t).encode("a a", false), (Ids{1, 2}));
  // Legacy add_prefix_space=false forces never.
  t["pre_tokenizer"].erase("prepend_scheme");
  t["pre_tokenizer"]["add_prefix_space"] = false;
  EXPECT_EQ(make(t).encode("a", false), (Ids{1}));
  // The Metaspace decoder drops the first "▁" unless the scheme is never.
  t["decoder"] = {{"type", "Metaspace"}, {"replacement", sp}, {"prepend_scheme", "always"}};
  EXPECT_EQ(make(t).decode(Ids{2, 2}), "a a");
}

// ---- normalizers ----

TEST(Normalizer, NfcComposesBeforeTokenizing) {
  json m = {{"type", "BPE"}, {"vocab", {{"\xC3\xA9", 0}, {"e", 1}, {"\xCC\x81", 2}}}, {"merges", json::array()}};
  json t = base(m);
  EXPECT_EQ(make(t).encode("e\xCC\x81", false), (Ids{1, 2}));
  t["normalizer"] = {{"type", "NFC"}};
  EXPECT_EQ(make(t).encode("e\xCC\x81", false), (Ids{0}));
  EXPECT_EQ(tok::normalize("\xE1\x84\x80\xE1\x85\xA1", tok::NormalForm::NFC), "\xEA\xB0\x80");  // jamo -> 가
  EXPECT_EQ(tok::normalize("\xEF\xAC\x81", tok::NormalForm::NFKC), "fi");                          // ligature
  EXPECT_EQ(tok::to_lower("ÄB"), "äb");
}

TEST(Normalizer, SentencePieceStylePrependAndReplacePerSegment) {
  // Llama-2 / Mistral: Prepend("▁") + Replace(" " -> "▁"), applied to each piece between added tokens.
  const std::string sp = "\xE2\x96\x81";
  json m = {{"type", "BPE"}, {"vocab", {{sp, 0}, {"h", 1}, {"i", 2}, {sp + "h", 3}, {sp + "hi", 4}, {"<s>", 5}}},
            {"merges", {sp + " h", sp + "h i"}}};
  json t = base(m);
  t["normalizer"] = {{"type", "Sequence"},
                     {"normalizers", {{{"type", "Prepend"}, {"prepend", sp}}, {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", sp}}}}};
  t["added_tokens"] = {{{"id", 5}, {"content", "<s>"}, {"special", true}, {"normalized", false}}};
  auto tok = make(t);
  EXPECT_EQ(tok.encode("hi", false), (Ids{4}));
  // "<s> hi": the text after the special token is its own segment: " hi" -> "▁▁hi" -> ▁ ▁hi.
  EXPECT_EQ(tok.encode("<s> hi", false), (Ids{5, 0, 4}));
  EXPECT_EQ(tok.encode("", false), (Ids{}));  // Prepend leaves empty text empty
}

// ---- added tokens ----

json with_added(std::vector<json> added) {
  json m = tiny_model();
  m["vocab"]["<x>"] = 30;
  m["vocab"]["ab<"] = 31;
  json t = base(m);
  t["added_tokens"] = added;
  return t;
}

TEST(AddedTokens, SplitFirstLeftmostLongest) {
  auto tok = make(with_added({{{"id", 30}, {"content", "<x>"}, {"special", true}},
                              {{"id", 40}, {"content", "<x>>"}, {"special", false}, {"normalized", false}}}));
  EXPECT_EQ(tok.encode("ab<x>cd", false), (Ids{5, 30, 8}));
  EXPECT_EQ(tok.encode("<x>><x>", false), (Ids{40, 30}));  // the longest match at a position wins
  EXPECT_EQ(tok.vocab_size(), 41);
  EXPECT_TRUE(tok.is_special(30));
  EXPECT_FALSE(tok.is_special(40));
  EXPECT_EQ(tok.piece(40), "<x>>");
  EXPECT_EQ(tok.token_to_id("<x>>"), 40);
  EXPECT_EQ(tok.token_to_id("abc"), 7);
  EXPECT_FALSE(tok.token_to_id("zzz"));
}

TEST(AddedTokens, LstripRstripAndSingleWord) {
  auto strip = make(with_added({{{"id", 30}, {"content", "<x>"}, {"special", true}, {"lstrip", true}, {"rstrip", true}}}));
  EXPECT_EQ(strip.encode("ab  <x>  cd", false), (Ids{5, 30, 8}));
  auto plain = make(with_added({{{"id", 30}, {"content", "<x>"}, {"special", true}}}));
  EXPECT_EQ(plain.encode("ab <x> cd", false), (Ids{5, 4, 30, 4, 8}));
  auto single = make(with_added({{{"id", 40}, {"content", "cd"}, {"special", false}, {"single_word", true}}}));
  EXPECT_EQ(single.encode("ab cd", false), (Ids{5, 4, 40}));
  EXPECT_EQ(single.encode("abcd", false), (Ids{7, 3}));  // preceded by a word character: not split out
}

TEST(AddedTokens, NormalizedTokensMatchTheNormalizedText) {
  json t = with_added({{{"id", 40}, {"content", "ab"}, {"special", false}, {"normalized", true}}});
  t["normalizer"] = {{"type", "Lowercase"}};
  auto tok = make(t);
  EXPECT_EQ(tok.encode("xAB", false), (Ids{9, 40}));
  // normalized=false tokens match the raw text only.
  json u = with_added({{{"id", 40}, {"content", "ab"}, {"special", false}, {"normalized", false}}});
  u["normalizer"] = {{"type", "Lowercase"}};
  EXPECT_EQ(make(u).encode("AB", false), (Ids{5}));
}

TEST(AddedTokens, DecodeSkipsSpecialTokensOnRequest) {
  json t = with_added({{{"id", 30}, {"content", "<x>"}, {"special", true}}});
  t["decoder"] = {{"type", "Fuse"}};
  auto tok = make(t);
  EXPECT_EQ(tok.decode(Ids{5, 30, 8}), "ab<x>cd");
  EXPECT_EQ(tok.decode(Ids{5, 30, 8}, true), "abcd");
  EXPECT_EQ(tok.decode(Ids{5, 999, 8}), "abcd");  // ids outside the vocabulary decode to nothing
}

// ---- special-tokens (BOS/EOS) policy ----

json with_bos_eos() {
  json m = tiny_model();
  m["vocab"]["<s>"] = 10;
  m["vocab"]["</s>"] = 11;
  json t = base(m);
  t["added_tokens"] = {{{"id", 10}, {"content", "<s>"}, {"special", true}}, {{"id", 11}, {"content", "</s>"}, {"special", true}}};
  return t;
}

TEST(SpecialTokensPolicy, TemplateProcessingFromTokenizerJson) {
  json t = with_bos_eos();
  t["post_processor"] = {{"type", "TemplateProcessing"},
                         {"single", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                                     {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                                     {{"SpecialToken", {{"id", "</s>"}, {"type_id", 0}}}}}},
                         {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {10}}, {"tokens", {"<s>"}}}},
                                             {"</s>", {{"id", "</s>"}, {"ids", {11}}, {"tokens", {"</s>"}}}}}}};
  auto tok = make(t);
  EXPECT_EQ(tok.encode("ab", true), (Ids{10, 5, 11}));
  EXPECT_EQ(tok.encode("ab", false), (Ids{5}));
  EXPECT_EQ(tok.special_tokens_policy().prefix, (Ids{10}));
  EXPECT_EQ(tok.special_tokens_policy().suffix, (Ids{11}));
  EXPECT_EQ(tok.bos_id(), 10);  // no bos_token in a config: the template's single prefix token
}

TEST(SpecialTokensPolicy, ByteLevelPostProcessorAddsNothingEvenWithAddBosTokenInConfig) {
  // The npm Llama-3 shape: post_processor ByteLevel, class PreTrainedTokenizerFast.
  json t = with_bos_eos();
  t["post_processor"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false}, {"use_regex", true}};
  json cfg = {{"tokenizer_class", "PreTrainedTokenizerFast"}, {"bos_token", "<s>"}, {"eos_token", "</s>"}, {"add_bos_token", true}};
  auto tok = make(t, cfg);
  EXPECT_EQ(tok.encode("ab", true), (Ids{5}));
  EXPECT_EQ(tok.bos_id(), 10);
  EXPECT_EQ(tok.eos_ids(), (Ids{11}));
  EXPECT_NE(tok.special_tokens_policy().source.find("ByteLevel"), std::string::npos);
}

TEST(SpecialTokensPolicy, LlamaTokenizerClassFollowsAddBosAddEos) {
  json t = with_bos_eos();
  json cfg = {{"tokenizer_class", "LlamaTokenizerFast"}, {"bos_token", "<s>"}, {"eos_token", {{"content", "</s>"}}}};
  EXPECT_EQ(make(t, cfg).encode("ab", true), (Ids{10, 5}));  // add_bos_token defaults to true
  cfg["add_bos_token"] = false;
  cfg["add_eos_token"] = true;
  EXPECT_EQ(make(t, cfg).encode("ab", true), (Ids{5, 11}));
  EXPECT_NE(make(t, cfg).special_tokens_policy().source.find("add_eos_token=true"), std::string::npos);
}

TEST(SpecialTokensPolicy, RealFilesMistralAddsBosQwenAddsNothing) {
  const auto dir = std::filesystem::path(EVOMERGE_SOURCE_DIR) / "tests/data/tokenizers";
  auto gunzip = [](const std::filesystem::path& p) { return tok::read_gzip_file(p); };
  auto mistral = Tokenizer::from_json(gunzip(dir / "mistral-spm/tokenizer.json.gz"),
                                      read_text_file(dir / "mistral-spm/tokenizer_config.json"), "mistral-spm/tokenizer.json");
  EXPECT_EQ(mistral.special_tokens_policy().prefix, (Ids{1}));
  EXPECT_EQ(mistral.encode("Hello world"), (Ids{1, 22557, 1526}));
  EXPECT_EQ(mistral.encode("<s> hi</s>"), (Ids{1, 1, 28705, 12014, 2}));
  EXPECT_EQ(mistral.decode(Ids{1, 22557, 1526}, true), "Hello world");
  EXPECT_EQ(mistral.eos_ids(), (Ids{2}));
  auto qwen = Tokenizer::from_json(gunzip(dir / "qwen3/tokenizer.json.gz"), read_text_file(dir / "qwen3/tokenizer_config.json"),
                                   "qwen3/tokenizer.json");
  EXPECT_TRUE(qwen.special_tokens_policy().prefix.empty());
  EXPECT_FALSE(qwen.bos_id());
  EXPECT_EQ(qwen.encode("12345"), (Ids{16, 17, 18, 19, 20}));
  // eos_token <|im_end|> (151645); the ChatML template's end of turn is the same token.
  EXPECT_EQ(qwen.eos_ids(), (Ids{151645}));
  std::vector<ChatMessage> msgs = {{"system", "Be brief."}, {"user", "Hi"}};
  std::string note;
  std::string prompt = qwen.apply_chat_template(msgs, true, &note);
  EXPECT_EQ(prompt, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_NE(note.find("ChatML"), std::string::npos);
  auto ids = qwen.encode(prompt, false);
  EXPECT_EQ(ids.front(), 151644);  // <|im_start|> is recognised in the rendered text
  EXPECT_EQ(qwen.decode(ids), prompt);
}

// ---- chat templates ----

TEST(ChatTemplate, Llama3MistralAndFallback) {
  json t = with_bos_eos();
  std::vector<ChatMessage> msgs = {{"user", " Hi "}, {"assistant", "Hello"}};
  json cfg = {{"bos_token", "<s>"}, {"eos_token", "</s>"},
              {"chat_template", "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m.role }}<|end_header_id|>..."}};
  EXPECT_EQ(make(t, cfg).apply_chat_template(msgs, true),
            "<s><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
            "Hello<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
  cfg["chat_template"] = "{{ bos_token }}{% for m in messages %}[INST] {{ m.content }} [/INST]{% endfor %}";
  EXPECT_EQ(make(t, cfg).apply_chat_template(msgs, true), "<s>[INST]  Hi  [/INST] Hello</s>");
  cfg.erase("chat_template");
  std::string note;
  EXPECT_EQ(make(t, cfg).apply_chat_template(msgs, true, &note), "user:  Hi \nassistant: Hello\nassistant:");
  EXPECT_NE(note.find("no chat_template"), std::string::npos);
  EXPECT_FALSE(make(t, cfg).chat_template());
}

TEST(Load, SideFilesFillWhatTokenizerConfigLeavesUnset) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / fmt::format("em-tok-load-{}", ::getpid());
  fs::create_directories(dir);
  write_file_atomic(dir / "tokenizer.json", with_bos_eos().dump());
  write_file_atomic(dir / "tokenizer_config.json", json{{"eos_token", "</s>"}}.dump());
  write_file_atomic(dir / "special_tokens_map.json", json{{"bos_token", {{"content", "<s>"}}}, {"eos_token", "<s>"}}.dump());
  write_file_atomic(dir / "chat_template.jinja", "{% for m in messages %}<|im_start|>{{ m.role }}{% endfor %}");
  auto tok = Tokenizer::load(dir);
  EXPECT_EQ(tok.bos_id(), 10);              // from special_tokens_map.json
  EXPECT_EQ(tok.eos_ids(), (Ids{11}));      // tokenizer_config.json wins over the map
  ASSERT_TRUE(tok.chat_template());
  EXPECT_NE(tok.chat_template()->find("<|im_start|>"), std::string::npos);
  write_file_atomic(dir / "special_tokens_map.json", "[oops");
  EXPECT_NE(error_of([&] { Tokenizer::load(dir); }).find("special_tokens_map.json: not valid JSON"), std::string::npos);
  fs::remove_all(dir);
}

// ---- decoders ----

TEST(Decoder, Llama2ChainReplaceByteFallbackFuseStrip) {
  const std::string sp = "\xE2\x96\x81";
  json m = {{"type", "BPE"}, {"vocab", {{sp + "Hello", 0}, {sp + "world", 1}, {"<0x0A>", 2}, {sp, 3}}}, {"merges", json::array()}};
  json t = base(m);
  t["decoder"] = {{"type", "Sequence"},
                  {"decoders", {{{"type", "Replace"}, {"pattern", {{"String", sp}}}, {"content", " "}},
                                {{"type", "ByteFallback"}},
                                {{"type", "Fuse"}},
                                {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}};
  auto tok = make(t);
  EXPECT_EQ(tok.decode(Ids{0, 1, 2}), "Hello world\n");
  EXPECT_EQ(tok.decode(Ids{3, 0}), " Hello");  // only one leading space is stripped
}

TEST(Decoder, ByteLevelIsLossyOnBrokenUtf8) {
  json m = {{"type", "BPE"}, {"vocab", {{"\xC3\x83", 0}, {"\xC2\xA9", 1}, {"a", 2}}}, {"merges", json::array()}};
  json t = base(m);
  t["decoder"] = {{"type", "ByteLevel"}};
  auto tok = make(t);
  EXPECT_EQ(tok.decode(Ids{0, 1}), "\xC3\xA9");             // "Ã©" -> bytes C3 A9 -> é
  EXPECT_EQ(tok.decode(Ids{0, 2}), "\xEF\xBF\xBD" "a");     // a lone lead byte -> U+FFFD
  EXPECT_EQ(tok::utf8_lossy("\xE2\x82" "x\xFF"), "\xEF\xBF\xBD" "x\xEF\xBF\xBD");  // maximal subpart rule
}

TEST(Encode, InvalidUtf8InputIsReplacedNotFatal) {
  json m = tiny_model();
  m["vocab"]["\xEF\xBF\xBD"] = 50;
  auto tok = make(base(m));
  EXPECT_EQ(tok.encode("a\xFF" "b", false), (Ids{0, 50, 1}));
}

// ---- bad input ----

TEST(BadInput, ErrorsNameTheFileAndTheField) {
  auto err = [](const json& t) { return error_of([&] { make(t); }); };
  json wp = base();
  wp["model"]["type"] = "WordPiece";
  EXPECT_EQ(err(wp), "[tokenizer] test/tokenizer.json: model.type 'WordPiece' is not supported (evomerge reads BPE "
                     "tokenizers: byte-level and SentencePiece-style)");
  json drop = base();
  drop["model"]["dropout"] = 0.1;
  EXPECT_NE(err(drop).find("field 'model.dropout' must be null"), std::string::npos);
  json merge = base();
  merge["model"]["merges"][1] = "a b c";
  EXPECT_NE(err(merge).find("field 'model.merges[1]' 'a b c' is not two tokens"), std::string::npos);
  json oov = base();
  oov["model"]["merges"].push_back("a zz");
  EXPECT_NE(err(oov).find("field 'model.merges[4]': token 'zz' is not in the vocab"), std::string::npos);
  json pre = with_pre({{"type", "BertPreTokenizer"}});
  EXPECT_NE(err(pre).find("field 'pre_tokenizer.type' 'BertPreTokenizer' is not supported"), std::string::npos);
  json rx = with_pre({{"type", "Sequence"}, {"pretokenizers", {{{"type", "Split"}, {"pattern", {{"Regex", "(a"}}}, {"behavior", "Isolated"}}}}});
  EXPECT_NE(err(rx).find("field 'pre_tokenizer.pretokenizers[0].pattern.Regex': regex '(a' does not compile"), std::string::npos);
  json beh = with_pre(split_on("a", "Sideways"));
  EXPECT_NE(err(beh).find("field 'pre_tokenizer.behavior' 'Sideways'"), std::string::npos);
  json added = base();
  added["added_tokens"] = {{{"content", "<x>"}}};
  EXPECT_NE(err(added).find("field 'added_tokens[0].id' is missing"), std::string::npos);
  json vocab = base();
  vocab["model"]["vocab"]["q"] = -4;
  EXPECT_NE(err(vocab).find("entry 'q' has id -4 outside"), std::string::npos);
  json tp = with_bos_eos();
  tp["post_processor"] = {{"type", "TemplateProcessing"}, {"single", {{{"SpecialToken", {{"id", "<bos>"}}}}, {{"Sequence", {{"id", "A"}}}}}},
                          {"special_tokens", json::object()}};
  EXPECT_NE(err(tp).find("field 'post_processor.special_tokens' has no entry '<bos>'"), std::string::npos);
  EXPECT_NE(error_of([] { Tokenizer::from_json("{\"model\": ", "", "x/tokenizer.json"); }).find("x/tokenizer.json: not valid JSON"),
            std::string::npos);
  EXPECT_NE(error_of([] { Tokenizer::from_json(base().dump(), "[1]", "x/tokenizer.json"); }).find("x/tokenizer_config.json: top level"),
            std::string::npos);
  EXPECT_NE(error_of([] { Tokenizer::load("/nonexistent-model-dir"); }).find("/nonexistent-model-dir/tokenizer.json: file not found"),
            std::string::npos);
  json deep = {{"type", "Lowercase"}};
  for (int i = 0; i < 40; ++i) deep = {{"type", "Sequence"}, {"normalizers", {deep}}};
  json nest = base();
  nest["normalizer"] = deep;
  EXPECT_NE(err(nest).find("nests Sequences deeper than 32"), std::string::npos);
  json cfg = {{"tokenizer_class", "LlamaTokenizer"}, {"add_bos_token", true}};
  EXPECT_NE(error_of([&] { make(base(), cfg); }).find("field 'add_bos_token' is true but bos_token is missing"), std::string::npos);
}

}  // namespace
}  // namespace evomerge
