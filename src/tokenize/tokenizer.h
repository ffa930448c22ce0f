// Tokenizers read from Hugging Face tokenizer.json (+ tokenizer_config.json): byte-level BPE
// (GPT-2 / Llama-3 / Qwen2-3 pre-tokenizer regexes, run with Oniguruma as HF tokenizers does) and the
// SentencePiece-style BPE form (Prepend/Replace normalizers or Metaspace, byte_fallback).
// Token ids are int32 everywhere in evomerge.
//
// CONTRACT (written by the lead before the implementation; the implementer may add, not remove).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace evomerge {

struct ChatMessage {
  std::string role;     // "system", "user", "assistant"
  std::string content;
};

class Tokenizer {
 public:
  // Reads dir/tokenizer.json and, when present, dir/tokenizer_config.json. Errors name the file and
  // the field ("[tokenizer] dir/tokenizer.json: model.type 'WordPiece' is not supported").
  static Tokenizer load(const std::filesystem::path& model_dir);
  static Tokenizer from_json(std::string_view tokenizer_json, std::string_view tokenizer_config_json,
                             std::string_view where);
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;

  // Text -> ids. Added/special tokens in the text are split out first. With add_special_tokens, the
  // BOS/EOS policy of the post-processor / tokenizer_config.json is applied (as HF's encode()).
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = true) const;
  // Ids -> text (HF decode()). skip_special_tokens drops special added tokens.
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const;
  // The vocabulary string of one id (e.g. "Ġworld"), as llama.cpp's tokenize tool prints pieces.
  std::string piece(int32_t id) const;
  std::optional<int32_t> token_to_id(std::string_view piece) const;

  int32_t vocab_size() const;  // highest id + 1, added tokens included
  std::optional<int32_t> bos_id() const;
  std::vector<int32_t> eos_ids() const;  // eos_token from tokenizer_config, generation stops
  bool is_special(int32_t id) const;

  // Chat template support: the raw Jinja template from tokenizer_config.json if any, and a renderer
  // for the common simple templates (falls back to a plain "role: content" layout when the template
  // cannot be rendered, and says so in `*note` when given).
  std::optional<std::string> chat_template() const;
  std::string apply_chat_template(std::span<const ChatMessage> messages, bool add_generation_prompt,
                                  std::string* note = nullptr) const;

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace evomerge
