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

// longrope (Phi-3 128k / 3.5): inv_freq[i] = 1 / (short_factor[i] * rope_theta^(2i/d)). The short
// factors are the ones transformers uses for sequences up to original_max_position_embeddings; the
// engine holds longrope models to that context (its long factors are not implemented).

// The scale of cos and sin (longrope's attention_factor; 1 for every other type).
float rope_attention_factor(const ModelConfig& config);

// Rotates one head vector x[d] in place at position `pos`; cos and sin are scaled by `mscale`.
void rope_apply(float* x, int d, const float* inv_freq, int pos, float mscale = 1.0f);

// rope_apply in two steps, for many heads at one position: the d/2 angles' cos and sin once
// (rope_angles), then each head rotated with them (rope_rotate); the same floats as rope_apply.
void rope_angles(int d, const float* inv_freq, int pos, float mscale, float* cos_out,
                 float* sin_out);
void rope_rotate(float* x, int d, const float* cos_in, const float* sin_in);

}  // namespace evomerge
