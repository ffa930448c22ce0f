// Internal to the inference stage: resolves the tensors an engine needs from a WeightSource,
// checked against the shapes its config implies (hardware-independent; the backends only upload
// or wrap the views).
#pragma once

#include <string>

#include "infer/backend.h"
#include "infer/engine.h"

namespace evomerge::infer_detail {

// Throws Error naming the architecture when the engine cannot run it (families registered for
// merging only).
void check_inference_supported(const ModelConfig& config, const std::string& what);
// Layer `index` of `weights`; `what` names the model in errors ("model 0 (LlamaForCausalLM)").
LayerViews resolve_layer(const WeightSource& weights, int index, const std::string& what);
// The embedding, final norm and head (tied or lm_head.weight).
HeadViews resolve_head(const WeightSource& weights, const std::string& what);

}  // namespace evomerge::infer_detail
