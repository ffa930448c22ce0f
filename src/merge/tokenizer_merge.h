// Merged vocabularies, built the way mergekit builds them (mergekit/tokenizer/build.py and
// embed.py), for `tokenizer_source: union | base | MODEL` and `tokenizer: {source, tokens,
// pad_to_multiple_of}`.
//
// The output vocabulary:
//  - base:  the base model's tokenizer (the first model when there is no base) without the tokens
//           whose id is >= its config vocab_size ("stripped");
//  - MODEL: that model's tokenizer as it is;
//  - union: the stripped base, then every other model's tokens it lacks appended as added tokens
//           (non-special, normalized), then every model's added tokens (first settings win), each
//           new one at the next free id. mergekit walks each vocabulary in hash order; we walk it
//           in id order, so the ids of appended tokens are deterministic.
// Each model's embedding rows (embed_tokens and lm_head) are then permuted into the new vocabulary:
// a model that has the token keeps its own row (unless the token's entry says force); otherwise the
// token's `tokens:` source, else mergekit's default: the row of the only model that has it, else
// the base's, else the mean of the models that have it; no model: zeros. `pad_to_multiple_of`
// rounds the row count up, the extra rows being the mean of the real ones. The merge method then
// runs on the permuted rows, and config.json's vocab_size is the (padded) row count.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "merge/config.h"

namespace evomerge {

// One model's tokenizer.json as the merge needs it.
struct ModelVocab {
  std::map<std::string, int64_t> ids;  // get_vocab(): the model's vocabulary and its added tokens
  std::vector<nlohmann::json> added;   // tokenizer.json added_tokens entries, in file order
  nlohmann::json tokenizer_json;       // the whole file
  int64_t config_vocab_size = 0;       // config.json vocab_size (rows of the embedding)
};

// Reads dir/tokenizer.json (bounded: 64 MiB, 2^22 tokens, ids < 2^31). Errors name the file and
// field.
ModelVocab read_model_vocab(const std::filesystem::path& dir, int64_t config_vocab_size);

struct MergedVocab {
  nlohmann::json tokenizer_json;          // the output tokenizer.json
  std::vector<nlohmann::json> new_added;  // added_tokens entries appended to the source's (union)
  std::map<std::string, int64_t> ids;     // the output vocabulary (model + added tokens)
  int64_t size = 0;                       // highest id + 1
  int64_t rows = 0;                       // size rounded up to pad_to_multiple_of
  // Per input model (the order of `models` given to build_merged_vocab): output id -> that model's
  // row, -1 where it lacks the token (or has it only at an id >= its vocab_size).
  std::vector<std::vector<int64_t>> permutation;
};

// `models[0]` is the base (or the first model); `source` is "union", "base" or the index in
// `models` of the tokenizer_source model (as a decimal string is not needed: pass source_model).
MergedVocab build_merged_vocab(const std::vector<const ModelVocab*>& models,
                               const std::string& source, std::optional<size_t> source_model,
                               std::optional<int64_t> pad_to_multiple_of, std::string_view where);

// Reads model m's embedding-like tensor (rows x hidden) as f32.
using ReadRows = std::function<std::vector<float>(size_t model)>;

// The permuted [vocab.rows, hidden] rows of each model in `inputs` (indices into the models given
// to build_merged_vocab), by mergekit's rules above. `base` is the base model's index, if any;
// `model_of` maps a config reference in `tokens:` to a model index (nullopt: not part of the
// merge).
std::vector<std::vector<float>> permute_embeddings(
    const MergedVocab& vocab, const std::vector<const ModelVocab*>& models,
    const std::vector<size_t>& inputs, std::optional<size_t> base, const TokenizerSpec& spec,
    const std::function<std::optional<size_t>(const ModelRef&)>& model_of, int64_t hidden,
    const ReadRows& read_rows, std::string_view where);

struct MergePlan;

// Plans the merged vocabulary of plan.config (tokenizer_source / tokenizer) for a plan whose
// tensors are otherwise complete: sets plan.vocab, the permuted rows of every embed_tokens /
// lm_head input, those tensors' shapes and config.json's vocab_size. Errors name the config and the
// tokenizer file.
void plan_merged_vocab(MergePlan& plan);

}  // namespace evomerge
