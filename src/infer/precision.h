// The arithmetic of the engine's weight products (every linear layer: q/k/v/o, gate/up/down, the
// head), an explicit choice of the caller (EngineOptions::precision, `--precision`, the evolve
// config's `precision:`):
//   exact  (default) products as exact as f32 ones: the bf16 GEMM kernels multiply three bf16
//          parts of every f32 activation (gemm.h); the logits match the f32 PyTorch goldens.
//   bf16   each product's activations rounded to bf16 once (round to nearest even), weights as
//          stored, f32 accumulation: the math of PyTorch's bf16 autocast, llama.cpp and vLLM on
//          bf16 models, and one pass through the AMX tiles / vdpbf16ps (~3x the exact GEMM rate).
//          Every ISA path rounds the same way (the f32-FMA kernels multiply the rounded values),
//          so kernels differ only in accumulation order. Moves logits by up to 0.2 on the
//          bundled models, 40 of their 6,300 greedy task answers change (31 before the attention
//          was rounded too; docs/benchmarks.md).
// Attention: exact multiplies f32 values; bf16 rounds q, k and v (where the engine writes them)
// and the softmax's probabilities (before P·V; the normaliser is the unrounded sum) to bf16, f32
// accumulation, as PyTorch's bf16 attention: prefill blocks then run on the AMX tiles
// (attention_kernels.h: attend_group_amx), every other path multiplies the same rounded values.
// The softmax itself, norms and activations stay f32 in both. The CUDA backend's GEMMs are bf16
// in both (cuBLASLt with bf16 inputs), its attention f32.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace evomerge {

enum class Precision : uint8_t { Exact, Bf16 };

std::string_view precision_name(Precision precision);  // "exact", "bf16"
std::optional<Precision> parse_precision(std::string_view name);
// parse_precision, or throws Error "<where> '<name>' is not one of exact, bf16".
Precision parse_precision_or_fail(std::string_view name, std::string_view where);

}  // namespace evomerge
