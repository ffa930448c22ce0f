// split_activations (gemm.h: the bf16 parts the bf16 GEMM kernels multiply) against its plain
// reference, bit for bit, on every ISA path this CPU runs: row lengths around the 16-lane vectors,
// strided rows, row ranges, one to three parts, and the values where rounding has edges (ties to
// even, the largest finite values, infinities, NaNs, subnormals, signed zeros).
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "infer/gemm.h"

namespace evomerge::infer_detail {
namespace {

TEST(ActivationSplit, SameBitsAsTheReference) {
  std::mt19937 rng(3);
  std::normal_distribution<float> dist(0.0f, 4.0f);
  const float edges[] = {0.0f,
                         -0.0f,
                         1.0f,
                         std::bit_cast<float>(0x3f808000u),  // a tie: rounds to even (down)
                         std::bit_cast<float>(0x3f818000u),  // a tie: rounds to even (up)
                         std::numeric_limits<float>::max(),
                         -std::numeric_limits<float>::max(),
                         std::numeric_limits<float>::infinity(),
                         -std::numeric_limits<float>::infinity(),
                         std::numeric_limits<float>::quiet_NaN(),
                         std::bit_cast<float>(0xff800001u),  // a signalling NaN, sign set
                         std::numeric_limits<float>::denorm_min(),
                         -1.5e-39f,
                         1e-30f,
                         65504.5f};
  size_t compared = 0;
  for (int64_t k : {1, 5, 15, 16, 17, 31, 33, 255, 256, 257, 771})
    for (int parts = 1; parts <= kSplitParts; ++parts) {
      const int64_t m = 5, lda = k + 3;
      std::vector<float> a(m * lda);
      for (size_t i = 0; i < a.size(); ++i)
        a[i] = i % 7 == 3 ? edges[(i / 7) % std::size(edges)] : dist(rng);
      std::vector<uint16_t> got(parts * m * k, 0xdead), want(parts * m * k, 0xdead);
      // Rows [1, 4) only: the others stay untouched in both.
      split_activations(a.data(), m, k, lda, 1, 4, parts, got.data());
      split_activations_reference(a.data(), m, k, lda, 1, 4, parts, want.data());
      for (size_t i = 0; i < got.size(); ++i)
        ASSERT_EQ(got[i], want[i]) << "k " << k << " parts " << parts << " element " << i;
      compared += got.size();
    }
  EXPECT_GT(compared, 10000u);
}

}  // namespace
}  // namespace evomerge::infer_detail
