// Exports a data-flow-space merge as a standard-architecture model folder that any runtime loads
// without custom code: the layer path becomes consecutive layers 0..K-1 (a layer used twice is
// written twice), embeddings / final norm / head come from model A (models[0]), and the per-hop
// input scales are folded into the weights.
//
// Why folding is exact: every sublayer reads the stream through RMSNorm, which is invariant to a
// positive scale of its input (up to eps). With P_k = s_1 * ... * s_k (the product of the input
// scales up to and including hop k), the routed stream is h_k = P_k * g_k, where g_k is the stream
// of the exported model whose layer k has o_proj and down_proj (and their biases) multiplied by
// 1/P_k:
//   L_k(P_k g) = P_k g + attn(norm g) + mlp(norm(P_k g + attn(norm g)))
//              = P_k [g + attn(norm g)/P_k + mlp(norm(g + attn(norm g)/P_k))/P_k].
// The final norm removes P_K, so the logits agree (the test holds them to the routed engine's).
#pragma once

#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <vector>

#include "infer/engine.h"

namespace evomerge {

struct DfsExportOptions {
  std::optional<DType> dtype;  // default: model A's torch_dtype, else F32
  std::filesystem::path
      aux_from;  // copy tokenizer and tag-along files from here (model A's folder)
  bool replace_existing = false;
};

// config_json_a: model A's config.json (num_hidden_layers and torch_dtype are rewritten).
// Errors (before anything is written) when a hop's layer does not exist or a model's layer shapes
// differ from model A's (a standard architecture needs one shape per layer).
void export_dfs_model(const std::vector<std::shared_ptr<const WeightSource>>& models,
                      const std::vector<LayerHop>& path, const nlohmann::json& config_json_a,
                      const std::filesystem::path& out_dir, const DfsExportOptions& options = {});

}  // namespace evomerge
