// Rotary position embedding as Hugging Face computes it (modeling_rope_utils.py).
//
// Pairing: rotate_half, i.e. the pairs are (x[i], x[i + d/2]) for i < d/2, d = head_dim:
//   x'[i]       = x[i]       * cos(pos * inv_freq[i]) - x[i + d/2] * sin(pos * inv_freq[i])
//   x'[i + d/2] = x[i + d/2] * cos(pos * inv_freq[i]) + x[i]       * sin(pos * inv_freq[i])
// (not Meta's interleaved (x[2i], x[2i+1]) form; HF checkpoints have q/k rows permuted for this).
// The angle is computed in f32 as torch does: float(pos) * inv_freq[i], then cos/sin in f32.
#pragma once

#include <vector>

#include "arch/config.h"

namespace evomerge {

// inv_freq[i] = 1 / rope_theta^(2i/d) for i < d/2 (f32 arithmetic as torch), then llama3 scaling
// (_compute_llama3_parameters) when config.rope_scaling.type == "llama3". Throws Error naming the
// type for any other rope type.
std::vector<float> rope_inv_freq(const ModelConfig& config);
// Layer `layer`'s inv_freq: Gemma 3's sliding layers use rope_local_theta without scaling
// (rotary_emb_local), every other layer rope_inv_freq(config). "linear" scaling divides by factor.
std::vector<float> rope_inv_freq(const ModelConfig& config, int layer);

// Rotates one head vector x[d] in place at position `pos`.
void rope_apply(float* x, int d, const float* inv_freq, int pos);

}  // namespace evomerge
