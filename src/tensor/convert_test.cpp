#include "tensor/convert.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace evomerge {
namespace {

bool same_float(float a, float b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  return f32_to_bits(a) == f32_to_bits(b);
}

TEST(Convert, ScalarKnownValues) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(f32_to_bf16(bits_to_f32(0x3f808000u)), 0x3f80);  // tie, even stays
  EXPECT_EQ(f32_to_bf16(bits_to_f32(0x3f818000u)), 0x3f82);  // tie, odd rounds up
  EXPECT_EQ(f32_to_bf16(bits_to_f32(0x3f808001u)), 0x3f81);  // above half
  EXPECT_EQ(f32_to_bf16(bits_to_f32(0x7f7fffffu)), 0x7f80);  // max float rounds to inf
  EXPECT_EQ(f32_to_bf16(bits_to_f32(0x7f800001u)) & 0x7fc0, 0x7fc0);  // sNaN -> quiet NaN
  EXPECT_EQ(bf16_to_f32(0xc000), -2.0f);

  EXPECT_EQ(f32_to_f16(1.0f), 0x3c00);
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(65519.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);  // halfway to the next binade: ties to even = inf
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -25)), 0x0000);      // tie to even (zero)
  EXPECT_EQ(f32_to_f16(std::ldexp(1.5f, -25)), 0x0001);
  EXPECT_EQ(f32_to_f16(std::ldexp(3.0f, -25)), 0x0002);      // 1.5 units: tie, odd rounds up
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -14)), 0x0400);      // smallest normal
  EXPECT_EQ(f32_to_f16(-0.0f), 0x8000);
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(f16_to_f32(0x03ff), std::ldexp(1023.0f, -24));
  EXPECT_EQ(f16_to_f32(0xfc00), -INFINITY);
  EXPECT_TRUE(std::isnan(f16_to_f32(0x7c01)));
}

// Every 16-bit pattern: the vectorised widening equals the scalar reference, and narrowing the
// widened value gives the pattern back (exact round trip; NaN stays NaN).
TEST(Convert, AllSixteenBitPatterns) {
  std::vector<uint16_t> patterns(65536);
  for (uint32_t i = 0; i < 65536; ++i) patterns[i] = static_cast<uint16_t>(i);
  std::vector<float> wide(65536);
  std::vector<uint16_t> narrow(65536);

  bf16_to_f32(patterns.data(), wide.data(), wide.size());
  f32_to_bf16(wide.data(), narrow.data(), narrow.size());
  for (uint32_t i = 0; i < 65536; ++i) {
    ASSERT_TRUE(same_float(wide[i], bf16_to_f32(patterns[i]))) << "bf16 pattern " << i;
    if (std::isnan(wide[i])) {
      ASSERT_TRUE(std::isnan(bf16_to_f32(narrow[i])));
    } else {
      ASSERT_EQ(narrow[i], patterns[i]) << "bf16 round trip " << i;
    }
    ASSERT_EQ(narrow[i], f32_to_bf16(wide[i]));
  }

  f16_to_f32(patterns.data(), wide.data(), wide.size());
  f32_to_f16(wide.data(), narrow.data(), narrow.size());
  for (uint32_t i = 0; i < 65536; ++i) {
    ASSERT_TRUE(same_float(wide[i], f16_to_f32(patterns[i]))) << "f16 pattern " << i;
    if (std::isnan(wide[i])) {
      ASSERT_TRUE(std::isnan(f16_to_f32(narrow[i])));
    } else {
      ASSERT_EQ(narrow[i], patterns[i]) << "f16 round trip " << i;
    }
    ASSERT_EQ(narrow[i], f32_to_f16(wide[i])) << "f16 narrow " << i;
  }
}

// Narrowing of f32 values between representable 16-bit values: exact halfway points, one ulp either
// side of them, and random bit patterns; vectorised == scalar, and scalar == the nearest value.
TEST(Convert, NarrowingRoundsToNearestEven) {
  std::vector<float> values;
  for (uint32_t h = 0; h < 0x7f80; ++h) {
    uint32_t mid = (h << 16) | 0x8000u;
    for (uint32_t b : {mid - 1, mid, mid + 1}) {
      values.push_back(bits_to_f32(b));
      values.push_back(bits_to_f32(b | 0x80000000u));
    }
  }
  std::mt19937 rng(7);
  for (int i = 0; i < 200000; ++i) values.push_back(bits_to_f32(rng()));
  // Around the f16 range and its subnormals.
  for (int i = 0; i < 200000; ++i) {
    std::uniform_real_distribution<float> u(-70000.0f, 70000.0f);
    float v = u(rng);
    values.push_back(v);
    values.push_back(std::ldexp(v, -30));
  }
  std::vector<uint16_t> fast(values.size());
  f32_to_bf16(values.data(), fast.data(), values.size());
  for (size_t i = 0; i < values.size(); ++i) ASSERT_EQ(fast[i], f32_to_bf16(values[i])) << i;
  f32_to_f16(values.data(), fast.data(), values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    uint16_t ref = f32_to_f16(values[i]);
    ASSERT_EQ(fast[i], ref) << "value " << values[i];
    // Independent check: the chosen f16 is at least as near as its neighbours.
    float v = values[i];
    if (std::isnan(v) || std::isinf(f16_to_f32(ref))) continue;
    double err = std::fabs(static_cast<double>(f16_to_f32(ref)) - v);
    for (int d : {-1, 1}) {
      uint16_t nb = static_cast<uint16_t>(ref + d);
      if ((nb & 0x7c00) == 0x7c00 || ((ref ^ nb) & 0x8000)) continue;
      ASSERT_LE(err, std::fabs(static_cast<double>(f16_to_f32(nb)) - v)) << v;
    }
  }
}

TEST(Convert, DispatchByDType) {
  float src[5] = {1.0f, -2.5f, 0.0f, 3.140625f, 65504.0f};
  uint16_t half[5];
  float back[5];
  convert_from_f32(DType::BF16, src, half, 5);
  convert_to_f32(DType::BF16, half, back, 5);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(back[i], src[i] == 65504.0f ? 65536.0f : src[i]);
  convert_from_f32(DType::F16, src, half, 5);
  convert_to_f32(DType::F16, half, back, 5);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(back[i], src[i]);
}

}  // namespace
}  // namespace evomerge
