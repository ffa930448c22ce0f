#include "infer/rope.h"

#include <cmath>
#include <numbers>
#include <vector>

#include "common/error.h"

namespace evomerge {

namespace {

// torch: 1.0 / (base ** (arange(0, d, 2).float() / d)), all in f32.
std::vector<float> default_inv_freq(const ModelConfig& c, double theta) {
  const int d = static_cast<int>(c.head_dim);
  if (d <= 0 || d % 2 != 0)
    fail("infer", "{}: head_dim {} must be even and positive for RoPE", c.architecture, d);
  std::vector<float> inv(d / 2);
  for (int i = 0; i < d / 2; ++i) {
    float expo = static_cast<float>(2 * i) / static_cast<float>(d);
    inv[i] = 1.0f / std::pow(static_cast<float>(theta), expo);
  }
  return inv;
}

}  // namespace

std::vector<float> rope_inv_freq(const ModelConfig& c, int layer) {
  if (c.rope_local_theta && layer_sliding_window(c, layer))
    return default_inv_freq(c, *c.rope_local_theta);
  return rope_inv_freq(c);
}

std::vector<float> rope_inv_freq(const ModelConfig& c) {
  std::vector<float> inv = default_inv_freq(c, c.rope_theta);
  const auto& rs = c.rope_scaling;
  if (rs.type == "default") return inv;
  if (rs.type == "linear") {  // _compute_linear_scaling_rope_parameters: inv_freq /= factor
    for (float& f : inv) f /= static_cast<float>(rs.factor);
    return inv;
  }
  if (rs.type == "longrope") {  // _compute_longrope_parameters, the short factors
    if (rs.short_factor.size() != inv.size())
      fail("infer", "{}: longrope needs head_dim / 2 = {} short factors, got {}", c.architecture,
           inv.size(), rs.short_factor.size());
    for (size_t i = 0; i < inv.size(); ++i) {
      float expo = static_cast<float>(2 * i) / static_cast<float>(c.head_dim);
      inv[i] = 1.0f / (static_cast<float>(rs.short_factor[i]) *
                       std::pow(static_cast<float>(c.rope_theta), expo));
    }
    return inv;
  }
  if (rs.type != "llama3")
    fail("infer",
         "{}: rope type '{}' is not supported (supported: default, linear, llama3, longrope)",
         c.architecture, rs.type);
  // _compute_llama3_parameters: long wavelengths are divided by `factor`, short ones kept, the band
  // in between interpolated linearly in 1/wavelength. f32 tensor math as in transformers.
  const float factor = static_cast<float>(rs.factor);
  const float low = static_cast<float>(rs.low_freq_factor),
              high = static_cast<float>(rs.high_freq_factor);
  const float orig = static_cast<float>(rs.original_max_position_embeddings);
  const float low_wl = orig / low, high_wl = orig / high;
  if (!(high > low))
    fail("infer", "{}: rope_scaling high_freq_factor must exceed low_freq_factor", c.architecture);
  for (float& f : inv) {
    float wavelen = static_cast<float>(2.0 * std::numbers::pi) / f;
    float scaled = wavelen > low_wl ? f / factor : f;
    if (!(wavelen < high_wl) && !(wavelen > low_wl)) {
      float smooth = (orig / wavelen - low) / (high - low);
      scaled = (1.0f - smooth) * scaled / factor + smooth * scaled;
    }
    f = scaled;
  }
  return inv;
}

float rope_attention_factor(const ModelConfig& c) {
  return c.rope_scaling.type == "longrope" ? static_cast<float>(c.rope_scaling.attention_factor)
                                           : 1.0f;
}

void rope_angles(int d, const float* inv_freq, int pos, float mscale, float* cos_out,
                 float* sin_out) {
  const float p = static_cast<float>(pos);
  for (int i = 0; i < d / 2; ++i) {
    const float angle = p * inv_freq[i];
    float c = std::cos(angle), s = std::sin(angle);
    if (mscale != 1.0f) c *= mscale, s *= mscale;
    cos_out[i] = c, sin_out[i] = s;
  }
}

void rope_rotate(float* x, int d, const float* cos_in, const float* sin_in) {
  const int half = d / 2;
  for (int i = 0; i < half; ++i) {
    const float a = x[i], b = x[i + half];
    x[i] = a * cos_in[i] - b * sin_in[i];
    x[i + half] = b * cos_in[i] + a * sin_in[i];
  }
}

void rope_apply(float* x, int d, const float* inv_freq, int pos, float mscale) {
  constexpr int kOnStack = 256;  // head_dim / 2 of every model so far; larger ones use the heap
  float c_stack[kOnStack], s_stack[kOnStack];
  std::vector<float> heap;
  float *c = c_stack, *s = s_stack;
  if (d / 2 > kOnStack) {
    heap.resize(static_cast<size_t>(d));
    c = heap.data(), s = heap.data() + d / 2;
  }
  rope_angles(d, inv_freq, pos, mscale, c, s);
  rope_rotate(x, d, c, s);
}

}  // namespace evomerge
