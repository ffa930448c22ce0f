// The bundled fixture models (examples/models/**) ship a tokenizer.json (byte-level BPE, Llama-3
// Split regex, TemplateProcessing BOS) and a reference.json whose "tokenizer" cases were produced by
// the fixture generator's own HF-compatible implementation (tools/fixtures/tok.py): pre-tokens, ids
// with and without special tokens, and decoded text. Our tokenizer must agree on every case.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "io/files.h"
#include "tokenize/tokenizer.h"
#include "tokenize/unicode.h"

namespace evomerge {
namespace {

namespace fs = std::filesystem;

std::vector<fs::path> fixture_dirs() {
  std::vector<fs::path> out;
  const fs::path root = fs::path(EVOMERGE_SOURCE_DIR) / "examples/models";
  if (!fs::exists(root)) return out;
  for (const auto& e : fs::recursive_directory_iterator(root))
    if (e.is_regular_file() && e.path().filename() == "reference.json" && fs::exists(e.path().parent_path() / "tokenizer.json"))
      out.push_back(e.path().parent_path());
  std::sort(out.begin(), out.end());
  return out;
}

TEST(TokenizerFixtures, IdsPreTokensAndDecodingMatchTheReference) {
  auto dirs = fixture_dirs();
  if (dirs.empty()) GTEST_SKIP() << "no examples/models/**/reference.json with a tokenizer.json";
  int checked = 0;
  for (const auto& dir : dirs) {
    auto ref = nlohmann::json::parse(read_text_file(dir / "reference.json"));
    if (!ref.contains("tokenizer")) continue;
    Tokenizer tok = Tokenizer::load(dir);
    const std::string name = dir.string();
    if (ref.contains("bos_token_id") && ref["bos_token_id"].is_number_integer()) {
      EXPECT_EQ(tok.bos_id(), ref["bos_token_id"].get<int32_t>()) << name;
      EXPECT_EQ(tok.special_tokens_policy().prefix, std::vector<int32_t>{ref["bos_token_id"].get<int32_t>()}) << name;
      EXPECT_TRUE(tok.special_tokens_policy().suffix.empty()) << name;
    }
    if (ref.contains("eos_token_id") && ref["eos_token_id"].is_number_integer()) {
      auto eos = tok.eos_ids();
      ASSERT_FALSE(eos.empty()) << name;
      EXPECT_EQ(eos.front(), ref["eos_token_id"].get<int32_t>()) << name;
    }
    for (const auto& c : ref["tokenizer"]) {
      const std::string text = c["text"].get<std::string>();
      const std::string shown = nlohmann::json(text).dump();
      EXPECT_EQ(tok.encode(text, true), c["ids"].get<std::vector<int32_t>>()) << name << " " << shown;
      auto plain = c["ids_no_special"].get<std::vector<int32_t>>();
      EXPECT_EQ(tok.encode(text, false), plain) << name << " " << shown;
      if (c.contains("pretokens") && c["pretokens"].is_array()) {
        std::vector<std::string> want;
        for (const auto& p : c["pretokens"]) want.push_back(tok::bytes_to_bytelevel(p.get<std::string>()));
        EXPECT_EQ(tok.pre_tokens(text), want) << name << " " << shown;
      }
      EXPECT_EQ(tok.decode(c["ids"].get<std::vector<int32_t>>()), c["decoded"].get<std::string>()) << name << " " << shown;
      EXPECT_EQ(tok.decode(c["ids"].get<std::vector<int32_t>>(), true), c["decoded_skip_special"].get<std::string>())
          << name << " " << shown;
      ++checked;
    }
  }
  std::printf("[fixtures] %zu model folders, %d tokenizer cases checked\n", dirs.size(), checked);
  EXPECT_GT(checked, 0);
}

}  // namespace
}  // namespace evomerge
