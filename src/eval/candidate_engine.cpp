#include "eval/candidate_engine.h"

#include <chrono>

#include "tokenize/tokenizer.h"

namespace evomerge {

EngineOptions candidate_engine_options(EngineOptions base, const Tokenizer& tokenizer,
                                       const ModelConfig& model) {
  if (tokenizer.vocab_size() < model.vocab_size) base.score_vocab = tokenizer.vocab_size();
  return base;
}

std::unique_ptr<Engine> make_candidate_engine(std::shared_ptr<const WeightSource> weights,
                                              const Tokenizer& tokenizer,
                                              const EngineOptions& base) {
  const EngineOptions eo = candidate_engine_options(base, tokenizer, weights->config());
  return std::make_unique<Engine>(std::move(weights), eo);
}

std::unique_ptr<Engine> make_path_engine(std::vector<std::shared_ptr<const WeightSource>> models,
                                         std::vector<LayerHop> path, const Tokenizer& tokenizer,
                                         const EngineOptions& base) {
  const EngineOptions eo = candidate_engine_options(base, tokenizer, models.at(0)->config());
  return std::make_unique<Engine>(std::move(models), std::move(path), eo);
}

MergedCandidate::MergedCandidate(MergeOptions merge_options, EngineOptions engine_options,
                                 const Tokenizer& tokenizer)
    : engine_options_(engine_options), tokenizer_(tokenizer), merger_([&] {
        merge_options.progress = false;
        return merge_options;
      }()) {}

Engine& MergedCandidate::load(const MergeConfig& config) {
  const auto t0 = std::chrono::steady_clock::now();
  plan_ = build_plan(config, cache_, merger_.options());
  // The plan's output dtype: the same numbers a merged folder on disk holds.
  const DType dtype = plan_->tensors.empty() ? DType::F32 : plan_->tensors[0].dtype;
  bool reallocated = false;
  if (!buffers_ || buffers_->dtype() != dtype) {
    engine_.reset();
    buffers_ = std::make_unique<MergedBuffers>(dtype);
    reallocated = true;
  }
  reallocated |= buffers_->prepare(*plan_);
  merger_.merge_into(*plan_, *buffers_);
  if (reallocated || !engine_) {
    // New buffers (first candidate, or a plan with different tensors): new views, new engine.
    engine_.reset();
    weights_ = make_memory_weights(buffers_->config(), buffers_->views());
    engine_ = make_candidate_engine(weights_, tokenizer_, engine_options_);
  } else {
    engine_->weights_changed();
  }
  last_merge_seconds_ =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return *engine_;
}

}  // namespace evomerge
