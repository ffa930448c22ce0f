// The plain reference forward pass: obvious scalar loops over one sequence, no KV cache, no
// batching, no threads; dot products accumulate in double. It is the oracle the fast Engine is
// tested against, and is itself tested against the PyTorch reference outputs of the bundled
// fixtures. Slow by design.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "infer/engine.h"

namespace evomerge {

// Logits [tokens.size() x vocab] row-major for one sequence of model `models[0]` run through `path`
// (same convention as Engine, see LayerHop in engine.h). `precision` as EngineOptions::precision:
// Bf16 rounds the input of every weight product (q/k/v, o, gate/up, down, head) to bf16 (nearest
// even); the products and sums stay double.
std::vector<float> reference_forward(std::span<const WeightSource* const> models,
                                     std::span<const LayerHop> path,
                                     std::span<const int32_t> tokens,
                                     Precision precision = Precision::Exact);
// One model, its own layers in order.
std::vector<float> reference_forward(const WeightSource& model, std::span<const int32_t> tokens,
                                     Precision precision = Precision::Exact);

}  // namespace evomerge
