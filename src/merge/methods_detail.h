// Internal to src/merge: the pieces of the merge kernels that the plain path (methods.cpp) and the
// streaming GTA path (methods_stream.cpp) must share bit for bit: the chunk size reductions are cut
// at, the counter-based random bits behind DARE's masks, and DARE's delta + keep + L1 chunk sums.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "merge/methods.h"
#include "tensor/convert.h"

namespace evomerge::detail {

// An element as the kernels compute with it: f32 as is, a stored bf16 widened (exact), so one
// template reads an f32 copy or the stored bytes with the same bits.
inline float widen(float x) {
  return x;
}
inline float widen(uint16_t x) {
  return bf16_to_f32(x);
}

// Elements per reduction chunk: sums are taken per chunk and combined in chunk order, so a result
// never depends on the thread count. The streaming path's tiles are these chunks.
constexpr size_t kChunk = size_t{1} << 15;

// Counter-based random bits: one splitmix64 finaliser over key + (index+1) * golden ratio.
inline uint64_t mix64(uint64_t x) {
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
// 53 random bits for element `index` of the stream `key`.
inline uint64_t rng_bits(uint64_t key, uint64_t index) {
  return mix64(key + (index + 1) * 0x9e3779b97f4a7c15ull) >> 11;
}
// Keep when rng_bits < threshold: probability density (to 2^-53).
inline uint64_t bernoulli_threshold(double density) {
  if (density <= 0) return 0;
  if (density >= 1) return uint64_t{1} << 53;
  return static_cast<uint64_t>(density * 0x1.0p53);
}

// DARE over one chunk: x = T[k] - B[k] (f32 or stored bf16 elements, widen()) for k in [0, len)
// (element index0 + k of the tensor), kept when its random bits fall under `thr` (< 2^53: a density
// under 1); adds sum |x| to l1_before and sum |kept| to l1_after, and (kStore) writes kept into
// d[k]; with `mask`, the keep decisions as bits (bit k % 32 of mask[k / 32]: element k kept, the
// bits past len 0). 16 float lanes (vectorised), flushed into doubles every 1024 elements for
// accuracy: the grouping is relative to the chunk start, so callers must pass whole chunks (index0
// a multiple of kChunk) to get the same sums.
template <bool kStore, typename S>
inline void dare_chunk(const S* T, const S* B, size_t len, size_t index0, uint64_t key,
                       uint64_t thr, float* d, double& l1_before, double& l1_after,
                       uint32_t* mask = nullptr) {
  double sb = 0, sa = 0;
  size_t j = 0;
  // rng_bits(key, index0 + i) < thr as mix64(c0 + i * step) < thr << 11 (thr < 2^53 here): no
  // shift per element.
  const uint64_t step = 0x9e3779b97f4a7c15ull, c0 = key + (index0 + 1) * step, limit = thr << 11;
  // The keep decisions of a block first, in a loop of their own: it vectorises at the full width
  // of the 64-bit multiplies, where inside the 16-lane sums below it ran at half (12% less CPU).
  uint32_t keep[1024];
  while (j < len) {
    const size_t stop = j + 1024 < len ? j + 1024 : len, j0 = j;
    const uint64_t cb = c0 + j0 * step;
    for (size_t i = 0; i < stop - j0; ++i) keep[i] = mix64(cb + i * step) < limit ? 1u : 0u;
    if (mask) {  // vectorised: 32 shifted flags OR-ed into a word
      const size_t words = (stop - j0 + 31) / 32;
      std::fill(keep + (stop - j0), keep + words * 32, 0u);
      for (size_t g = 0; g < words; ++g) {
        uint32_t w = 0;
        for (size_t k = 0; k < 32; ++k) w |= keep[g * 32 + k] << k;
        mask[j0 / 32 + g] = w;
      }
    }
    float lb[16] = {}, la[16] = {};
    for (; j + 16 <= stop; j += 16)
      for (size_t k = 0; k < 16; ++k) {
        const float x = widen(T[j + k]) - widen(B[j + k]);
        const float kept = keep[j + k - j0] ? x : 0.0f;
        lb[k] += std::fabs(x);
        la[k] += std::fabs(kept);
        if constexpr (kStore) d[j + k] = kept;
      }
    for (; j < stop; ++j) {
      const float x = widen(T[j]) - widen(B[j]);
      const float kept = keep[j - j0] ? x : 0.0f;
      lb[0] += std::fabs(x);
      la[0] += std::fabs(kept);
      if constexpr (kStore) d[j] = kept;
    }
    for (size_t k = 0; k < 16; ++k) sb += lb[k], sa += la[k];
  }
  l1_before = sb;
  l1_after = sa;
}

// How a GTA merge combines its task vectors, element by element over [0, len): X[i] points at
// task vector i for these elements (ws[i]: its weight times DARE's rescale, w[i]: its weight), B
// the base's elements (f32, or stored bf16: widen()),
//   consensus (TIES's sign election and disjoint mean): S = sum_i ws_i x_i; the entries whose sign
//     agrees with S (>= 0 counts as +; an exact zero never agrees) add ws_i x_i to delta and w_i to
//     den; out = B + lam * delta (/ den when normalize, a zero den counting as 1);
//   otherwise: out = B + lam * (sum_i ws_i x_i) * inv.
// Shared by the plain and the streaming path so their bits agree. Element-wise only (no
// reduction across elements), so any split of a tensor into ranges gives the same bits.
template <typename SB>
inline void combine_task_vectors(const float* const* X, size_t m, const float* ws, const float* w,
                                 const SB* B, size_t len, bool consensus, bool normalize, float lam,
                                 float inv, float* out) {
  // Blocks of 256 elements, element-inner loops (they vectorise); stack buffers: thread_local
  // ones would cost a TLS lookup per access. Small enough that the scratch stays in L1 next to the
  // streamed inputs: with 4096 (48 KB, all of a 48 KB L1) the consensus ran at 0.95 ns per element
  // of two task vectors, at 256 at 0.51.
  constexpr size_t kBlock = 256;
  if (!consensus) {
    float sum[kBlock];
    for (size_t o = 0; o < len; o += kBlock) {
      const size_t bl = std::min(kBlock, len - o);
      std::fill(sum, sum + bl, 0.0f);
      for (size_t i = 0; i < m; ++i) {
        const float wi = ws[i];
        const float* x = X[i] + o;
        for (size_t j = 0; j < bl; ++j) sum[j] += wi * x[j];
      }
      for (size_t j = 0; j < bl; ++j) out[o + j] = widen(B[o + j]) + lam * (sum[j] * inv);
    }
    return;
  }
  float S[kBlock], delta[kBlock], den[kBlock];
  for (size_t o = 0; o < len; o += kBlock) {
    const size_t bl = std::min(kBlock, len - o);
    std::fill(S, S + bl, 0.0f);
    std::fill(delta, delta + bl, 0.0f);
    std::fill(den, den + bl, 0.0f);
    for (size_t i = 0; i < m; ++i) {
      const float wi = ws[i];
      const float* x = X[i] + o;
      for (size_t j = 0; j < bl; ++j) S[j] += wi * x[j];
    }
    for (size_t i = 0; i < m; ++i) {
      const float wi = ws[i], wd_den = w[i];
      const float* x = X[i] + o;
      for (size_t j = 0; j < bl; ++j) {
        const float wd = wi * x[j];
        // agree: same sign as the vote; written branch-free to vectorise
        const float vote = S[j] >= 0.0f ? 1.0f : -1.0f;
        const float keep = wd * vote > 0.0f ? 1.0f : 0.0f;
        delta[j] += keep * wd;
        den[j] += keep * wd_den;
      }
    }
    for (size_t j = 0; j < bl; ++j) {
      float dl = delta[j];
      if (normalize) dl /= den[j] == 0 ? 1.0f : den[j];
      out[o + j] = widen(B[o + j]) + lam * dl;
    }
  }
}

// One GTA merge (ties, dare_ties, dare_linear) of one tensor, its parameters resolved: what the
// streaming path (methods_stream.h) needs to give the plain kernel's bits.
enum class GtaSparsifier { None, Magnitude, Random };
struct GtaVector {
  size_t input = 0;  // index into the tensor's inputs
  float weight = 0;
  double density = 1;
  uint64_t key = 0;  // rng_key(seed, tensor, input): DARE's mask stream
};
struct GtaSetup {
  bool consensus = false, normalize = false, rescale = false;
  GtaSparsifier sparsifier = GtaSparsifier::None;
  float lambda = 1;
  size_t base = 0;
  std::vector<GtaVector> vectors;  // the task vectors, in input order (the base left out)
};
// The setup of `method` for these arguments (params, base, globals, seed, tensor; the inputs are
// not read), or nullopt where the streaming path does not apply: other methods, no base or no task
// vector (the plain path's errors and copies), TIES with rescale (its L1 match needs the cut
// vector's norm).
std::optional<GtaSetup> gta_setup(std::string_view method, const KernelArgs& a, size_t n_inputs);

}  // namespace evomerge::detail
