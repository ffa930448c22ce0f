#include "eval/script.h"

#include <gtest/gtest.h>

#include "common/error.h"

namespace evomerge::eval {
namespace {

std::vector<int> ids(std::vector<std::string> names) { return resolve_scripts(names, "test.yaml"); }

TEST(Scripts, LetterScripts) {
  EXPECT_EQ(letter_script(U'a'), "Latin");
  EXPECT_EQ(letter_script(U'Ж'), "Cyrillic");
  EXPECT_EQ(letter_script(U'λ'), "Greek");
  EXPECT_EQ(letter_script(U'東'), "Han");
  EXPECT_EQ(letter_script(U'ひ'), "Hiragana");
  EXPECT_EQ(letter_script(U'カ'), "Katakana");
  EXPECT_EQ(letter_script(U'한'), "Hangul");
  EXPECT_EQ(letter_script(U'ب'), "Arabic");
  EXPECT_EQ(letter_script(U'क'), "Devanagari");
  EXPECT_EQ(letter_script(U'7'), "");   // digits are not letters
  EXPECT_EQ(letter_script(U'。'), "");  // nor punctuation
  EXPECT_EQ(letter_script(U' '), "");
  EXPECT_EQ(letter_script(U'ー'), "Common");  // sc=Common; counted through Script_Extensions below
  EXPECT_FALSE(unicode_scripts_version().empty());
}

TEST(Scripts, ShareOfLetters) {
  auto ja = ids({"Han", "Hiragana", "Katakana"});
  // "答えは 62 です。": 答(Han) え は で す (Hiragana): 5 letters, all Japanese.
  ScriptShare s = script_share("答えは 62 です。", ja);
  EXPECT_EQ(s.letters, 5);
  EXPECT_EQ(s.in_scripts, 5);
  EXPECT_DOUBLE_EQ(s.share(), 1.0);
  // Mixed: "The answer は 62": 9 Latin letters + 1 Hiragana.
  s = script_share("The answer は 62", ja);
  EXPECT_EQ(s.letters, 10);
  EXPECT_EQ(s.in_scripts, 1);
  // Only digits and symbols: no letters.
  s = script_share(" 37 + 25 = 62", ja);
  EXPECT_EQ(s.letters, 0);
  EXPECT_EQ(s.share(), 0.0);
  // The prolonged sound mark counts as kana (Script_Extensions), half-width katakana too.
  s = script_share("コーヒー", ids({"Katakana"}));
  EXPECT_EQ(s.letters, 4);
  EXPECT_EQ(s.in_scripts, 4);
  s = script_share("ｺｰﾋｰ", ids({"Katakana"}));
  EXPECT_EQ(s.in_scripts, s.letters);
  // Latin with accents; Cyrillic.
  EXPECT_EQ(script_share("café naïve", ids({"Latin"})).in_scripts, 9);
  s = script_share("привет мир ok", ids({"Cyrillic"}));
  EXPECT_EQ(s.letters, 11);
  EXPECT_EQ(s.in_scripts, 9);
  // Invalid UTF-8 is skipped, not counted.
  s = script_share(std::string("a\xff\xfe" "b"), ids({"Latin"}));
  EXPECT_EQ(s.letters, 2);
}

TEST(Scripts, Names) {
  EXPECT_EQ(ids({"japanese"}), ids({"Han", "Hiragana", "Katakana"}));
  EXPECT_EQ(ids({"old italic"}), ids({"Old_Italic"}));
  EXPECT_THROW(ids({"Klingon"}), Error);
  try {
    ids({"Klingon"});
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("test.yaml"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("Klingon"), std::string::npos);
  }
}

TEST(Utf8, Decoding) {
  std::string s = "aé東😀";
  size_t pos = 0;
  EXPECT_EQ(next_code_point(s, pos), U'a');
  EXPECT_EQ(next_code_point(s, pos), U'é');
  EXPECT_EQ(next_code_point(s, pos), U'東');
  EXPECT_EQ(next_code_point(s, pos), U'😀');
  EXPECT_EQ(pos, s.size());
  std::string bad = "\xC0\x80";  // overlong NUL
  pos = 0;
  EXPECT_EQ(next_code_point(bad, pos), 0xFFFDu);
  EXPECT_EQ(pos, 1u);
  std::string cut = "\xE6\x9D";  // truncated 東
  pos = 0;
  EXPECT_EQ(next_code_point(cut, pos), 0xFFFDu);
}

}  // namespace
}  // namespace evomerge::eval
