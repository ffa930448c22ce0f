// Internal to src/merge: TIES, DARE-TIES and DARE-linear merged as a stream of tiles read from the
// stored input bytes, with the same bits as run_method() on f32 copies of the whole tensor (the
// plain path it is tested against). No f32 copy of any input: where every input is stored as bf16
// the passes read those bytes in their loops (TileIo::bf16), else each converts a tile of each
// input it needs while in cache.
//   - TIES: on tensors of 8 tiles or more, one pass against a window around the threshold that a
//     sample bounds (select_in_window); otherwise, or where the window misses, pass 1 histograms
//     the top 16 bits of |T - B|'s f32 bit pattern (per thread, merged), pass 2 the low 16 bits of
//     the elements in the selected bucket: the exact k-th magnitude in two passes; a third counts
//     ties at the threshold per tile, only where some must go.
//   - DARE: pass 1 takes the L1 norms before and after the mask (its rescale), chunk by chunk, and
//     keeps the mask as bits for the last pass.
//   - Last pass: delta, mask, sign election and disjoint mean, then the emitted result tile.
// Every pass is parallel over the tiles of the one tensor.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string_view>

#include "merge/methods.h"

namespace evomerge {

// Elements per tile (the plain kernels' reduction chunk, which DARE's sums must match).
size_t stream_tile_elements();

struct TileIo {
  // Writes elements [begin, begin + len) of input `input` as f32 into dst (any thread).
  std::function<void(size_t input, size_t begin, size_t len, float* dst)> read;
  // Optional: input `input`'s stored bf16 elements (element 0 of the tensor), or nullptr where it
  // is stored otherwise. Where every input a merge reads has them, its passes read those bytes in
  // their loops (widened there, exact) instead of an f32 copy of each tile written and read back.
  std::function<const uint16_t*(size_t input)> bf16;
  // Receives the merged elements [begin, begin + len) of tile `tile` (any thread, once per tile).
  std::function<void(size_t tile, size_t begin, size_t len, const float* merged)> emit;
};

// Whether `method` on these arguments (inputs not read: params, base, globals) streams.
bool gta_streams(std::string_view method, const KernelArgs& a, size_t n_inputs);
// Merges the tensor of a.shape through `io` (a.parallel, if set, runs the tiles).
void run_gta_stream(std::string_view method, const KernelArgs& a, size_t n_inputs,
                    const TileIo& io);

}  // namespace evomerge
