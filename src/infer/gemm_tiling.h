// Internal to the GEMM kernels (gemm_avx2.cpp, gemm_avx512.cpp, gemm_avx512bf16.cpp): the one
// blocking loop their dot-product micro-kernels share. W's rows [0, n) and the m activation rows
// are cut into tiles of at most max_mr x nr_for[mr] outputs, and k into equal chunks of at most
// kGemmMaxChunk (a multiple of the kernel's vector width), so MR rows of A and NR rows of W stay in
// L1/L2 while a micro-kernel runs over a chunk. Each tile of each chunk is one micro-kernel call;
// chunks after the first accumulate into C.
#pragma once

#include <algorithm>
#include <cstdint>

namespace evomerge::infer_detail {

inline constexpr int64_t kGemmMaxChunk = 4096;

// Calls micro(i0, mr, j0, nr, k0, kc, accumulate) for every tile: activation rows [i0, i0 + mr),
// output columns (W rows) [j0, j0 + nr), k columns [k0, k0 + kc). nr_for[mr] is the widest tile
// for mr rows (registers: mr x nr accumulators); `width` is the kernel's vector width in elements.
template <class Micro>
void gemm_tiles(int64_t m, int64_t n, int64_t k, int64_t width, int max_mr, const int* nr_for,
                Micro&& micro) {
  const int64_t chunks = (k + kGemmMaxChunk - 1) / kGemmMaxChunk;
  const int64_t chunk = ((k + chunks - 1) / chunks + width - 1) / width * width;
  for (int64_t k0 = 0; k0 < k; k0 += chunk) {
    const int64_t kc = std::min(chunk, k - k0);
    for (int64_t i0 = 0; i0 < m; i0 += max_mr) {
      const int mr = static_cast<int>(std::min<int64_t>(max_mr, m - i0));
      const int nr_max = nr_for[mr];
      for (int64_t j0 = 0; j0 < n; j0 += nr_max) {
        const int nr = static_cast<int>(std::min<int64_t>(nr_max, n - j0));
        micro(i0, mr, j0, nr, k0, kc, k0 > 0);
      }
    }
  }
}

}  // namespace evomerge::infer_detail
