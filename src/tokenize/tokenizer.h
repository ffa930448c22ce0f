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

// What encode(text, add_special_tokens=true) puts around the text, and where that rule comes from.
// The rule, in order (explicit so that every family's BOS behaviour is testable):
//  1. tokenizer_config.json tokenizer_class LlamaTokenizer(Fast) / CodeLlamaTokenizer(Fast) /
//     GemmaTokenizer(Fast): transformers rebuilds the post-processor from add_bos_token (default
//     true) and add_eos_token (default false), so we do the same: [BOS] A [EOS].
//  2. Otherwise the tokenizer.json post_processor decides: TemplateProcessing's "single" template,
//     RobertaProcessing/BertProcessing (cls A sep), ByteLevel (nothing), Sequence (composed).
//     add_bos_token in tokenizer_config.json is NOT consulted here (as in transformers'
//     PreTrainedTokenizerFast): e.g. the npm Llama-3 copy (post_processor ByteLevel) adds no BOS.
//  3. No post_processor: nothing.
struct SpecialTokensPolicy {
  std::vector<int32_t> prefix;  // e.g. {BOS}
  std::vector<int32_t> suffix;  // e.g. {EOS}; usually empty
  std::string source;           // e.g. "tokenizer.json post_processor TemplateProcessing"
};

struct ChatMessage {
  std::string role;     // "system", "user", "assistant"
  std::string content;
};

class Tokenizer {
 public:
  // Reads dir/tokenizer.json and, when present, dir/tokenizer_config.json, plus special_tokens_map.json
  // and chat_template.jinja / chat_template.json for the fields tokenizer_config.json leaves unset.
  // Errors name the file and the field ("[tokenizer] dir/tokenizer.json: model.type 'WordPiece' is
  // not supported").
  static Tokenizer load(const std::filesystem::path& model_dir);
  static Tokenizer from_json(std::string_view tokenizer_json, std::string_view tokenizer_config_json,
                             std::string_view where);
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;

  // Text -> ids. Added/special tokens in the text are split out first. With add_special_tokens, the
  // BOS/EOS policy of the post-processor / tokenizer_config.json is applied (as HF's encode()).
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = true) const;
  // The pre-tokens BPE sees for plain text (no added-token splitting): after the normalizer and the
  // pre-tokenizer, byte-level pieces in their mapped form ("Ġworld"). For tests and debugging.
  std::vector<std::string> pre_tokens(std::string_view text) const;
  // Ids -> text (HF decode()). skip_special_tokens drops special added tokens.
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const;
  // The vocabulary string of one id (e.g. "Ġworld"), as llama.cpp's tokenize tool prints pieces.
  std::string piece(int32_t id) const;
  std::optional<int32_t> token_to_id(std::string_view piece) const;

  const SpecialTokensPolicy& special_tokens_policy() const;

  int32_t vocab_size() const;  // highest id + 1, added tokens included
  std::optional<int32_t> bos_id() const;
  // eos_token from tokenizer_config, generation stops; plus the end-of-turn token of a recognised
  // chat template (<|eot_id|> for Llama-3, <|im_end|> for ChatML) so that --chat generations stop.
  std::vector<int32_t> eos_ids() const;
  bool is_special(int32_t id) const;

  // Chat template support: the raw Jinja template from tokenizer_config.json if any, and a renderer
  // for the common simple templates (falls back to a plain "role: content" layout when the template
  // cannot be rendered, and says so in `*note` when given). Recognised templates (by their marker
  // tokens; the Jinja text itself is not executed): ChatML (<|im_start|>, Qwen), Llama-3
  // (<|start_header_id|>), Llama-2/Mistral ([INST]), Zephyr (<|user|>). The result holds the special
  // tokens as text (BOS included where the template writes it): encode it with
  // add_special_tokens=false, as transformers' apply_chat_template does.
  std::optional<std::string> chat_template() const;
  std::string apply_chat_template(std::span<const ChatMessage> messages, bool add_generation_prompt,
                                  std::string* note = nullptr) const;

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace evomerge
