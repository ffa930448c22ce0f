// Test helper (include from *_test.cpp only): a character-level tokenizer for random test models.
// Ids 0..94 are ASCII 32..126, 95 is '\n', then 96 <unk>, 97 <s> (BOS, added), 98 </s> (EOS).
#pragma once

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>

#include "tokenize/tokenizer.h"

namespace evomerge::testing_util {

inline constexpr int kCharTokenizerVocab = 99;

// {tokenizer.json text, tokenizer_config.json text}
inline std::pair<std::string, std::string> char_tokenizer_files() {
  using json = nlohmann::json;
  json vocab = json::object();
  for (int c = 32; c < 127; ++c) vocab[std::string(1, static_cast<char>(c))] = c - 32;
  vocab["\n"] = 95;
  vocab["<unk>"] = 96;
  vocab["<s>"] = 97;
  vocab["</s>"] = 98;
  auto added = [](int id, const char* s) {
    return json{{"id", id},        {"content", s},    {"special", true},    {"single_word", false},
                {"lstrip", false}, {"rstrip", false}, {"normalized", false}};
  };
  json tj{{"model",
           {{"type", "BPE"}, {"unk_token", "<unk>"}, {"vocab", vocab}, {"merges", json::array()}}},
          {"added_tokens", {added(97, "<s>"), added(98, "</s>")}}};
  json tc{{"bos_token", "<s>"},
          {"eos_token", "</s>"},
          {"add_bos_token", true},
          {"tokenizer_class", "LlamaTokenizer"}};
  return {tj.dump(), tc.dump()};
}

inline Tokenizer char_tokenizer() {
  auto [tj, tc] = char_tokenizer_files();
  return Tokenizer::from_json(tj, tc, "test/tokenizer.json");
}

// Writes tokenizer.json and tokenizer_config.json into a model folder.
inline void write_char_tokenizer(const std::filesystem::path& dir) {
  auto [tj, tc] = char_tokenizer_files();
  std::ofstream(dir / "tokenizer.json") << tj;
  std::ofstream(dir / "tokenizer_config.json") << tc;
}

}  // namespace evomerge::testing_util
