// libFuzzer target: the tokenizer.json parser (+ tokenizer_config.json) and encode/decode.
// Input layout: TOKENIZER_JSON [ "\n#CONFIG#\n" CONFIG_JSON ] [ "\n#TEXT#\n" TEXT ]. Any input must
// either load or throw evomerge::Error; whatever loads must encode and decode any text without
// crashing, and decode(encode(x)) must only hold ids inside the vocabulary.
// Seeds: tests/data/tokenizers/fuzz-seeds/.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/error.h"
#include "tokenize/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::string_view json = in, config, text = "Hello, world! 123 \xE4\xBD\xA0\xE5\xA5\xBD <s> 'll \n\n";
  if (auto t = json.find("\n#TEXT#\n"); t != std::string_view::npos) {
    text = json.substr(t + 8);
    json = json.substr(0, t);
  }
  if (auto c = json.find("\n#CONFIG#\n"); c != std::string_view::npos) {
    config = json.substr(c + 10);
    json = json.substr(0, c);
  }
  try {
    auto tok = evomerge::Tokenizer::from_json(json, config, "fuzz/tokenizer.json");
    for (bool special : {true, false}) {
      std::vector<int32_t> ids;
      try {
        ids = tok.encode(text, special);
      } catch (const evomerge::Error&) {
        continue;  // e.g. a character with neither byte fallback nor unk
      }
      for (int32_t id : ids)
        if (id < 0 || id >= tok.vocab_size()) __builtin_trap();
      (void)tok.decode(ids, !special);
      for (int32_t id : ids) (void)tok.piece(id);
    }
    std::vector<evomerge::ChatMessage> msgs = {{"user", std::string(text)}};
    (void)tok.apply_chat_template(msgs, true);
  } catch (const evomerge::Error&) {
  }
  return 0;
}
