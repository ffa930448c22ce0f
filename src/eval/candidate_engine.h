// One factory for a candidate's engine, shared by `eval`, `score`, `generate` and `evolve`, so a
// candidate gets the same numbers whichever command scores it:
//  - a model folder (or HF reference)          -> make_candidate_engine(open_folder_weights(ref),
//  ...)
//  - a layer path over models (DFS)            -> make_path_engine(models, path, ...)
//  - a merge config, merged in memory          -> MergedCandidate::load(config)
// Every engine is built with candidate_engine_options(): the caller's EngineOptions (threads,
// device, precision: `--precision` / the evolve config's `precision:`, so a search and a later
// `eval` of its winner multiply the same way) plus score_vocab masking a vocabulary padded beyond
// the tokenizer's. Merged
// candidates are held in the plan's output dtype, the exact numbers `evomerge merge` writes to
// disk, so scoring the exported winner folder gives the score the search measured.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <vector>

#include "infer/engine.h"
#include "merge/merge.h"

namespace evomerge {

class Tokenizer;

// `base` with score_vocab set to the tokenizer's vocabulary when the model's embedding has padded
// rows beyond it (Qwen: 151,936 rows, 151,665 tokens); padded ids are then never predicted.
EngineOptions candidate_engine_options(EngineOptions base, const Tokenizer& tokenizer,
                                       const ModelConfig& model);

std::unique_ptr<Engine> make_candidate_engine(std::shared_ptr<const WeightSource> weights,
                                              const Tokenizer& tokenizer,
                                              const EngineOptions& base);
// models[0] gives the embeddings, final norm and head.
std::unique_ptr<Engine> make_path_engine(std::vector<std::shared_ptr<const WeightSource>> models,
                                         std::vector<LayerHop> path, const Tokenizer& tokenizer,
                                         const EngineOptions& base);

// A merge config merged in memory into buffers that are reused from one candidate to the next (no
// allocation while the tensors keep their names and shapes), scored with no file written. Source
// models are memory-mapped once (ModelCache).
class MergedCandidate {
 public:
  MergedCandidate(MergeOptions merge_options, EngineOptions engine_options,
                  const Tokenizer& tokenizer);
  // Plans and merges `config`, returns the engine over the merged buffers (valid until the next
  // load). Throws Error for a config that cannot be planned or merged.
  Engine& load(const MergeConfig& config);

  const MergePlan& plan() const { return *plan_; }
  const MergedBuffers& buffers() const { return *buffers_; }
  std::shared_ptr<const WeightSource> weights() const { return weights_; }
  Merger& merger() { return merger_; }  // e.g. to write the merged folder for an external task
  double last_merge_seconds() const { return last_merge_seconds_; }

 private:
  EngineOptions engine_options_;
  const Tokenizer& tokenizer_;
  ModelCache cache_;
  Merger merger_;
  std::unique_ptr<MergedBuffers> buffers_;
  std::optional<MergePlan> plan_;
  std::shared_ptr<WeightSource> weights_;
  std::unique_ptr<Engine> engine_;
  double last_merge_seconds_ = 0;
};

}  // namespace evomerge
