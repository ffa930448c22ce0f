// Engine::generate with a Tokenizer: the one part of the engine that needs the tokenizer stage.
// Kept in its own file so programs that never call it do not link em_tokenize.
#include <algorithm>

#include "infer/engine.h"
#include "tokenize/tokenizer.h"

namespace evomerge {

std::vector<Engine::GenerateResult> Engine::generate(
    const std::vector<GenerateRequest>& requests, const Tokenizer* tokenizer,
    const std::function<void(size_t, int32_t)>& on_token) {
  if (!tokenizer) return generate_with(requests, {}, {}, on_token);
  DecodeFn decode = [tokenizer](std::span<const int32_t> ids) { return tokenizer->decode(ids); };
  // The tokenizer's EOS (and end-of-turn) ids plus the config's eos_token_id(s), as HF generate()
  // stops at generation_config's eos ids.
  std::vector<int32_t> eos = tokenizer->eos_ids();
  for (int64_t e : config().eos_token_ids)
    if (std::find(eos.begin(), eos.end(), e) == eos.end()) eos.push_back(static_cast<int32_t>(e));
  // Ids past the tokenizer's vocabulary (padded embedding rows) are never produced.
  return generate_with(requests, decode, eos, on_token, tokenizer->vocab_size());
}

}  // namespace evomerge
