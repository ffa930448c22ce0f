// RoPE against hand-computed values: HF's inv_freq, the llama3 scaling bands, and the rotate_half
// pairing (x[i], x[i + d/2]) -- an interleaved (x[2i], x[2i+1]) implementation fails these.
#include "infer/rope.h"

#include <gtest/gtest.h>

#include <cmath>

#include "common/error.h"

namespace evomerge {
namespace {

ModelConfig config(int head_dim, double theta) {
  ModelConfig c;
  c.architecture = "LlamaForCausalLM";
  c.head_dim = head_dim;
  c.rope_theta = theta;
  return c;
}

TEST(Rope, DefaultInvFreq) {
  auto inv = rope_inv_freq(config(8, 10000.0));
  ASSERT_EQ(inv.size(), 4u);
  // 1 / 10000^(2i/8) = 1, 0.1, 0.01, 0.001
  EXPECT_FLOAT_EQ(inv[0], 1.0f);
  EXPECT_NEAR(inv[1], 0.1f, 1e-7);
  EXPECT_NEAR(inv[2], 0.01f, 1e-8);
  EXPECT_NEAR(inv[3], 0.001f, 1e-9);
}

TEST(Rope, Llama3ScalingBands) {
  ModelConfig c = config(8, 10000.0);
  c.rope_scaling.type = "llama3";
  c.rope_scaling.factor = 8.0;
  c.rope_scaling.low_freq_factor = 1.0;
  c.rope_scaling.high_freq_factor = 4.0;
  c.rope_scaling.original_max_position_embeddings = 1000;
  // Wavelengths 2*pi/inv: 6.28 and 62.8 (< 1000/4: kept), 628.3 (between: interpolated),
  // 6283 (> 1000/1: divided by 8).
  auto inv = rope_inv_freq(c);
  EXPECT_FLOAT_EQ(inv[0], 1.0f);
  EXPECT_NEAR(inv[1], 0.1f, 1e-7);
  // s = (1000 / 628.3185 - 1) / (4 - 1); (1 - s) * 0.01 / 8 + s * 0.01
  EXPECT_NEAR(inv[2], 0.002975352506846947, 1e-8);
  EXPECT_NEAR(inv[3], 0.000125, 1e-10);
}

TEST(Rope, UnsupportedTypeIsNamed) {
  ModelConfig c = config(8, 10000.0);
  c.rope_scaling.type = "yarn";
  try {
    rope_inv_freq(c);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("rope type 'yarn' is not supported"), std::string::npos);
  }
}

TEST(Rope, RotateHalfPairing) {
  float x[4] = {1, 2, 3, 4};
  const float inv[2] = {1.0f, 0.01f};
  rope_apply(x, 4, inv, 2);
  // pair (x0, x2) by angle 2, pair (x1, x3) by angle 0.02
  EXPECT_NEAR(x[0], 1 * std::cos(2.0) - 3 * std::sin(2.0), 1e-6);
  EXPECT_NEAR(x[2], 3 * std::cos(2.0) + 1 * std::sin(2.0), 1e-6);
  EXPECT_NEAR(x[1], 2 * std::cos(0.02) - 4 * std::sin(0.02), 1e-6);
  EXPECT_NEAR(x[3], 4 * std::cos(0.02) + 2 * std::sin(0.02), 1e-6);
  // Position 0 is the identity.
  float y[4] = {1, 2, 3, 4};
  rope_apply(y, 4, inv, 0);
  EXPECT_EQ(y[0], 1);
  EXPECT_EQ(y[3], 4);
}

}  // namespace
}  // namespace evomerge
