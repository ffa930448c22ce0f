// Every GEMM kernel this CPU can run against a double-precision reference, on random inputs of
// awkward shapes (tails of every vector width, k split into chunks, sub-ranges of W, padded
// strides), for each weight dtype. Kernels the CPU lacks are skipped with the reason.
#include "infer/gemm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <span>

#include "tensor/convert.h"

namespace evomerge::infer_detail {
namespace {

struct Case {
  int64_t m, n, k;
};
constexpr Case kShapes[] = {{1, 1, 1},    {1, 9, 16},   {2, 7, 33},  {3, 5, 17},   {4, 13, 64},
                            {5, 8, 100},  {7, 17, 31},  {9, 3, 257}, {17, 33, 48}, {64, 12, 96},
                            {3, 6, 4099}, {2, 40, 129}, {33, 1, 8}};

struct Inputs {
  int64_t m, n, k, lda, ldc;
  std::vector<float> a;      // [m x lda]
  std::vector<std::byte> w;  // [n x k] in dtype
  std::vector<float> w_f32;  // the same weights as f32 (exact)
  DType dtype;
};

Inputs random_inputs(const Case& c, DType dtype, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  Inputs in{c.m, c.n, c.k, c.k + 3, c.n + 5, {}, {}, {}, dtype};
  in.a.resize(in.m * in.lda);
  for (float& x : in.a) x = normal(rng);
  std::vector<float> w(c.n * c.k);
  for (float& x : w) x = normal(rng) * 0.1f;
  in.w.resize(w.size() * dtype_size(dtype));
  convert_from_f32(dtype, w.data(), in.w.data(), w.size());
  in.w_f32.resize(w.size());
  convert_to_f32(dtype, in.w.data(), in.w_f32.data(), w.size());
  return in;
}

// C for W rows [r0, r1) through `kernel` (C is [m x ldc], columns beyond r1 - r0 untouched),
// the activations prepared as linear() prepares them for `precision`.
// With `packed` (bf16 only), W is multiplied from its tile-packed copy (PackedBf16).
std::vector<float> run(GemmKernel kernel, const Inputs& in, int64_t r0, int64_t r1,
                       Precision precision = Precision::Exact, bool packed = false) {
  GemmWeights W{in.w.data(), in.dtype, in.n, in.k};
  PackedBf16 pack;
  if (packed) {
    pack.pack(reinterpret_cast<const uint16_t*>(in.w.data()), in.n, in.k);
    W.packed = &pack;
  }
  const int parts = precision == Precision::Bf16 ? 1 : kSplitParts;
  GemmActivations A{in.a.data(), in.m, in.k, in.lda, nullptr, parts};
  const GemmKernel used = gemm_kernel_for(kernel, in.dtype);
  std::vector<uint16_t> split;
  std::vector<float> rounded;
  if (gemm_needs_split(used)) {
    split.resize(parts * in.m * in.k);
    split_activations(in.a.data(), in.m, in.k, in.lda, 0, in.m, parts, split.data());
    A.split = split.data();
  } else if (precision == Precision::Bf16) {
    rounded.resize(in.m * in.k);
    round_activations_to_bf16(in.a.data(), in.k, in.lda, 0, in.m, rounded.data());
    A.f32 = rounded.data();
    A.lda = in.k;
  }
  std::vector<float> C(in.m * in.ldc, -7.0f);
  GemmScratch scratch;
  gemm_rows(used, A, W, r0, r1, C.data(), in.ldc, scratch);
  return C;
}

class GemmKernels : public testing::TestWithParam<GemmKernel> {
 protected:
  void SetUp() override {
    if (std::string why = gemm_kernel_unavailable(GetParam()); !why.empty())
      GTEST_SKIP() << gemm_kernel_name(GetParam()) << ": " << why;
  }
};

// C for W rows [r0, r1) (r0 = 1: a sub-range; packed weights: 16 or 32, the packed kernels' column
// block) against the double-precision products, for exact or bf16-rounded activations.
void expect_reference(GemmKernel kernel, std::span<const Case> shapes,
                      std::span<const DType> dtypes, Precision precision, bool packed,
                      uint32_t seed) {
  for (DType dtype : dtypes)
    for (const Case& c : shapes) {
      const Inputs in = random_inputs(c, dtype, seed++);
      const int64_t r0 = packed ? (c.n > 48 ? 32 : c.n > 16 ? 16 : 0) : (c.n > 2 ? 1 : 0), r1 = c.n;
      const std::vector<float> C = run(kernel, in, r0, r1, precision, packed);
      for (int64_t i = 0; i < c.m; ++i) {
        for (int64_t r = r0; r < r1; ++r) {
          double ref = 0, mag = 0;
          for (int64_t t = 0; t < c.k; ++t) {
            float a = in.a[i * in.lda + t];
            if (precision == Precision::Bf16) a = bf16_to_f32(f32_to_bf16(a));
            const double p = static_cast<double>(a) * in.w_f32[r * c.k + t];
            ref += p;
            mag += std::fabs(p);
          }
          // f32 accumulation: k·2^-24 of the magnitude (the bf16 split adds ~2^-27).
          const double tol = 6e-8 * static_cast<double>(c.k + 2) * mag + 1e-30;
          ASSERT_NEAR(C[i * in.ldc + (r - r0)], ref, tol)
              << gemm_kernel_name(kernel) << (packed ? " packed " : " ") << dtype_name(dtype) << " "
              << precision_name(precision) << " m=" << c.m << " n=" << c.n << " k=" << c.k << " at "
              << i << "," << r;
        }
        for (int64_t j = r1 - r0; j < in.ldc; ++j) ASSERT_EQ(C[i * in.ldc + j], -7.0f);
      }
    }
}

constexpr DType kAllDtypes[] = {DType::BF16, DType::F16, DType::F32};

TEST_P(GemmKernels, MatchReferenceOnAwkwardShapes) {
  expect_reference(GetParam(), kShapes, kAllDtypes, Precision::Exact, false, 1);
}

// The amx kernel on tile-packed weights (our tile kernel): n and k not multiples of 16 / 32, row
// tails of the 16-row tiles, column groups of 1-4 blocks, both precisions.
constexpr Case kPackedShapes[] = {{1, 1, 1},      {1, 20, 70},  {3, 33, 100},  {16, 16, 32},
                                  {16, 90, 64},   {17, 47, 33}, {48, 40, 300}, {48, 130, 2048},
                                  {64, 17, 31},   {65, 18, 40}, {100, 70, 96}, {100, 33, 257},
                                  {33, 100, 4099}};
constexpr DType kBf16Only[] = {DType::BF16};

TEST(GemmAmxPacked, MatchesReferenceOnAwkwardShapes) {
  if (std::string why = gemm_kernel_unavailable(GemmKernel::Amx); !why.empty())
    GTEST_SKIP() << "amx: " << why;
  expect_reference(GemmKernel::Amx, kPackedShapes, kBf16Only, Precision::Exact, true, 700);
  expect_reference(GemmKernel::Amx, kPackedShapes, kBf16Only, Precision::Bf16, true, 800);
}

// The avx2 outer-product kernel on packed weights (the engine's bf16 products on AVX2 CPUs): every
// row tile of 1-6 rows and its column groups of 1-4 blocks (m = 1..13, 17, 64), more rows than a
// row block (130 > 96), n not a multiple of 16, k odd, below 32, between blocks, and longer than a
// k chunk (256) with and without a partial last block.
constexpr Case kAvx2PackedShapes[] = {
    {1, 1, 1},      {1, 70, 33},   {2, 40, 31},   {3, 90, 64},   {4, 33, 100},  {5, 17, 257},
    {6, 16, 32},    {7, 47, 300},  {8, 20, 7},    {9, 64, 96},   {10, 18, 513}, {11, 33, 65},
    {12, 100, 40},  {13, 49, 129}, {17, 47, 33},  {64, 17, 600}, {1, 130, 700}, {2, 80, 1030},
    {130, 40, 300}, {3, 33, 4099}, {130, 21, 31}, {100, 70, 96}};

TEST(GemmAvx2Packed, MatchesReferenceOnAwkwardShapes) {
  if (std::string why = gemm_kernel_unavailable(GemmKernel::Avx2); !why.empty())
    GTEST_SKIP() << "avx2: " << why;
  expect_reference(GemmKernel::Avx2, kAvx2PackedShapes, kBf16Only, Precision::Exact, true, 1100);
  expect_reference(GemmKernel::Avx2, kAvx2PackedShapes, kBf16Only, Precision::Bf16, true, 1200);
}

// The avx512 kernel on the same packed weights (the engine's where its kernel is avx512, and the
// rows amx hands to avx512): the same outer-product form with tiles of up to 8 rows and 1-8
// column blocks, on both sets of shapes.
TEST(GemmAvx512Packed, MatchesReferenceOnAwkwardShapes) {
  if (std::string why = gemm_kernel_unavailable(GemmKernel::Avx512); !why.empty())
    GTEST_SKIP() << "avx512: " << why;
  expect_reference(GemmKernel::Avx512, kPackedShapes, kBf16Only, Precision::Exact, true, 900);
  expect_reference(GemmKernel::Avx512, kPackedShapes, kBf16Only, Precision::Bf16, true, 1000);
  expect_reference(GemmKernel::Avx512, kAvx2PackedShapes, kBf16Only, Precision::Exact, true, 1300);
  expect_reference(GemmKernel::Avx512, kAvx2PackedShapes, kBf16Only, Precision::Bf16, true, 1400);
}

// The packing itself: every weight at its documented place, zeros in the padding.
// Full blocks (here 2 x 3 of them) go through a register transpose (AVX-512 or AVX2, each the CPU
// runs) or plain moves, the edge blocks through the bounded loop: all must give the tile layout
// element for element.
void expect_tile_layout(GemmKernel widest) {
  const int64_t n = 37, k = 100, nb = 3, kb = 4;
  std::vector<uint16_t> w(n * k);
  for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<uint16_t>(i + 1);
  PackedBf16 p;
  p.pack(w.data(), n, k, widest);
  ASSERT_EQ(p.depth_blocks(), kb);
  ASSERT_EQ(p.bytes(), size_t{nb * kb * kPackedBlock * 2});
  for (int64_t jb = 0; jb < nb; ++jb)
    for (int64_t b = 0; b < kb; ++b)
      for (int64_t r = 0; r < 16; ++r)
        for (int64_t c = 0; c < 16; ++c)
          for (int64_t e = 0; e < 2; ++e) {
            const int64_t col = jb * 16 + c, depth = b * 32 + 2 * r + e;
            const uint16_t want = col < n && depth < k ? w[col * k + depth] : 0;
            ASSERT_EQ(p.data()[(jb * kb + b) * kPackedBlock + (r * 16 + c) * 2 + e], want)
                << col << "," << depth;
          }
}

TEST(GemmAmxPacked, LayoutIsTheTileLayout) {
  for (GemmKernel widest : {GemmKernel::Scalar, GemmKernel::Avx2, GemmKernel::Avx512}) {
    if (!gemm_kernel_unavailable(widest).empty()) continue;
    SCOPED_TRACE(gemm_kernel_name(widest));
    expect_tile_layout(widest);
  }
}

// Precision::Bf16 on every kernel: the products of bf16(a) (nearest even) with the weights, to
// the same f32-accumulation tolerance as above: a bf16 activation times a bf16 weight is exact
// in f32 (8 + 8 significant bits), a f16/f32 weight's product is rounded once (2^-24), and the
// k-term f32 sum (any order) is within k·2^-24 of the magnitude, so kernels differ only by
// accumulation order. The rounding itself (~2^-9 of each activation) is far outside that
// tolerance, so a kernel that skipped it (or rounded differently) fails.
TEST_P(GemmKernels, Bf16PrecisionMatchesRoundedReference) {
  uint32_t seed = 500;
  int64_t moved = 0;  // outputs the rounding moved beyond the tolerance from the exact product
  for (DType dtype : {DType::BF16, DType::F16, DType::F32})
    for (const Case& c : kShapes) {
      const Inputs in = random_inputs(c, dtype, seed++);
      const std::vector<float> C = run(GetParam(), in, 0, c.n, Precision::Bf16);
      for (int64_t i = 0; i < c.m; ++i) {
        for (int64_t r = 0; r < c.n; ++r) {
          double ref = 0, exact = 0, mag = 0;
          for (int64_t t = 0; t < c.k; ++t) {
            const float a = in.a[i * in.lda + t], w = in.w_f32[r * c.k + t];
            const double p = static_cast<double>(bf16_to_f32(f32_to_bf16(a))) * w;
            ref += p;
            exact += static_cast<double>(a) * w;
            mag += std::fabs(p);
          }
          const double tol = 6e-8 * static_cast<double>(c.k + 2) * mag + 1e-30;
          ASSERT_NEAR(C[i * in.ldc + r], ref, tol)
              << gemm_kernel_name(GetParam()) << " " << dtype_name(dtype) << " m=" << c.m
              << " n=" << c.n << " k=" << c.k << " at " << i << "," << r;
          moved += std::fabs(exact - ref) > 2 * tol;
        }
        for (int64_t j = c.n; j < in.ldc; ++j) ASSERT_EQ(C[i * in.ldc + j], -7.0f);
      }
    }
  EXPECT_GT(moved, 1000) << "the bf16 rounding should move most outputs beyond the tolerance";
}

// A row's result must not depend on the rows multiplied with it (batched decode = single decode).
// The amx kernel on tile-packed weights (our tile kernel) is too: each row of a tile is its own
// dot products.
void expect_batch_invariant(GemmKernel kernel, bool packed) {
  for (Precision precision : {Precision::Exact, Precision::Bf16})
    for (DType dtype : {DType::BF16, DType::F32}) {
      if (packed && dtype != DType::BF16) continue;
      Inputs in = random_inputs({packed ? 40 : 13, 11, 301}, dtype, 99);
      const std::vector<float> all = run(kernel, in, 0, in.n, precision, packed);
      for (int64_t i : {0, 5, 12}) {
        Inputs one = in;
        one.m = 1;
        one.a.assign(in.a.begin() + i * in.lda, in.a.begin() + (i + 1) * in.lda);
        const std::vector<float> single = run(kernel, one, 0, in.n, precision, packed);
        for (int64_t r = 0; r < in.n; ++r)
          ASSERT_EQ(single[r], all[i * in.ldc + r])
              << precision_name(precision) << " " << i << "," << r;
      }
    }
}

TEST_P(GemmKernels, RowResultIndependentOfBatch) {
  if (GetParam() == GemmKernel::Amx) GTEST_SKIP() << "oneDNN blocks by m; not batch-invariant";
  expect_batch_invariant(GetParam(), false);
}

TEST(GemmAmxPacked, RowResultIndependentOfBatch) {
  if (std::string why = gemm_kernel_unavailable(GemmKernel::Amx); !why.empty())
    GTEST_SKIP() << "amx: " << why;
  expect_batch_invariant(GemmKernel::Amx, true);
}

TEST(GemmAvx2Packed, RowResultIndependentOfBatch) {
  if (std::string why = gemm_kernel_unavailable(GemmKernel::Avx2); !why.empty())
    GTEST_SKIP() << "avx2: " << why;
  expect_batch_invariant(GemmKernel::Avx2, true);
}

TEST(GemmAvx512Packed, RowResultIndependentOfBatch) {
  if (std::string why = gemm_kernel_unavailable(GemmKernel::Avx512); !why.empty())
    GTEST_SKIP() << "avx512: " << why;
  expect_batch_invariant(GemmKernel::Avx512, true);
}

INSTANTIATE_TEST_SUITE_P(All, GemmKernels, testing::ValuesIn(kAllGemmKernels),
                         [](const auto& info) {
                           return std::string(gemm_kernel_name(info.param));
                         });

TEST(GemmDispatch, NamesRoundTripAndFallbacks) {
  for (GemmKernel k : kAllGemmKernels) EXPECT_EQ(parse_gemm_kernel(gemm_kernel_name(k)), k);
  EXPECT_FALSE(parse_gemm_kernel("avx1024"));
  EXPECT_TRUE(gemm_kernel_unavailable(GemmKernel::Scalar).empty());
  EXPECT_EQ(gemm_kernel_for(GemmKernel::Amx, DType::F16), GemmKernel::Avx512);
  EXPECT_EQ(gemm_kernel_for(GemmKernel::Avx512Bf16, DType::F32), GemmKernel::Avx512);
  EXPECT_EQ(gemm_kernel_for(GemmKernel::Amx, DType::BF16), GemmKernel::Amx);
  EXPECT_EQ(gemm_kernel_for(GemmKernel::Avx2, DType::BF16), GemmKernel::Avx2);
  EXPECT_TRUE(gemm_kernel_unavailable(selected_gemm_kernel()).empty());
}

// Few rows (decode) leave the bf16 kernels for the f32-FMA one of the same CPU; more rows and the
// f32 kernels keep the kernel asked for.
TEST(GemmDispatch, FewRowsRouteToTheF32Kernel) {
  for (GemmKernel bf16 : {GemmKernel::Amx, GemmKernel::Avx512Bf16}) {
    EXPECT_EQ(gemm_kernel_for_rows(bf16, DType::BF16, 1), GemmKernel::Avx512);
    EXPECT_EQ(gemm_kernel_for_rows(bf16, DType::BF16, kBandwidthBoundRows), GemmKernel::Avx512);
    EXPECT_EQ(gemm_kernel_for_rows(bf16, DType::BF16, kBandwidthBoundRows + 1), bf16);
    EXPECT_EQ(gemm_kernel_for_rows(bf16, DType::F16, 512), GemmKernel::Avx512);
  }
  // amx on packed weights (no per-call re-packing): from kPackedAmxMinRows rows on.
  EXPECT_EQ(gemm_kernel_for_rows(GemmKernel::Amx, DType::BF16, kPackedAmxMinRows - 1, true),
            GemmKernel::Avx512);
  EXPECT_EQ(gemm_kernel_for_rows(GemmKernel::Amx, DType::BF16, kPackedAmxMinRows, true),
            GemmKernel::Amx);
  EXPECT_EQ(gemm_kernel_for_rows(GemmKernel::Avx512Bf16, DType::BF16, kPackedAmxMinRows, true),
            GemmKernel::Avx512);
  for (GemmKernel f32 : {GemmKernel::Scalar, GemmKernel::Avx2, GemmKernel::Avx512})
    for (int64_t m : {int64_t{1}, int64_t{512}})
      EXPECT_EQ(gemm_kernel_for_rows(f32, DType::BF16, m), f32);
}

TEST(GemmDispatch, OnePartIsTheNearestEvenBf16) {
  // 1 + 2^-8 is halfway between bf16 neighbours 1 and 1 + 2^-7: ties go to the even one (1);
  // 1 + 3*2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: even is 1 + 2^-6.
  const float a[] = {1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f, -2.5f, 1.0f / 3.0f};
  const float want[] = {1.0f, 1.0f + 0x1p-6f, -2.5f, 0.333984375f};
  uint16_t one[4];
  float rounded[4];
  split_activations(a, 1, 4, 4, 0, 1, 1, one);
  round_activations_to_bf16(a, 4, 4, 0, 1, rounded);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(bf16_to_f32(one[i]), want[i]) << i;
    EXPECT_EQ(rounded[i], want[i]) << i;
  }
}

TEST(GemmDispatch, SplitActivationsSumToTheInput) {
  const float a[] = {1.0f, 3.14159265f, -1e-3f, 65504.5f, 0.0f, 1.0f / 3.0f};
  constexpr int k = 6;
  std::vector<uint16_t> s(kSplitParts * k);
  split_activations(a, 1, k, k, 0, 1, kSplitParts, s.data());
  for (int i = 0; i < k; ++i) {
    EXPECT_EQ(s[i], f32_to_bf16(a[i]));
    double sum = 0;
    for (int p = 0; p < kSplitParts; ++p) sum += bf16_to_f32(s[p * k + i]);
    EXPECT_LE(std::fabs(sum - a[i]), std::fabs(a[i]) * 0x1p-26) << i;
  }
}

}  // namespace
}  // namespace evomerge::infer_detail
