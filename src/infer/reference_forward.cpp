#include "infer/reference_forward.h"

#include <cmath>
#include <string>

#include "arch/arch.h"
#include "common/error.h"
#include "infer/rope.h"

namespace evomerge {
namespace {

using Vec = std::vector<float>;

Vec load(const WeightSource& w, const std::string& name) {
  return to_f32(w.tensor(name));
}

// y[out] = W[out x in] · x[in] (+ b)
Vec matvec(const Vec& W, const float* x, int64_t out, int64_t in, const Vec* bias = nullptr) {
  Vec y(out);
  for (int64_t o = 0; o < out; ++o) {
    double acc = 0;
    for (int64_t i = 0; i < in; ++i) acc += static_cast<double>(W[o * in + i]) * x[i];
    y[o] = static_cast<float>(acc) + (bias ? (*bias)[o] : 0.0f);
  }
  return y;
}

// HF RMSNorm: x * rsqrt(mean(x^2) + eps) in f32, then times the weight.
void rms_norm(float* x, int64_t n, const Vec& weight, double eps) {
  double ss = 0;
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  float inv = 1.0f / std::sqrt(static_cast<float>(ss / n) + static_cast<float>(eps));
  for (int64_t i = 0; i < n; ++i) x[i] = weight[i] * (x[i] * inv);
}

float silu(float v) {
  return v / (1.0f + std::exp(-v));
}

}  // namespace

std::vector<float> reference_forward(std::span<const WeightSource* const> models,
                                     std::span<const LayerHop> path,
                                     std::span<const int32_t> tokens) {
  EM_ASSERT(!models.empty());
  const WeightSource& m0 = *models[0];
  const ModelConfig& c0 = m0.config();
  const int64_t T = static_cast<int64_t>(tokens.size()), H = c0.hidden_size, V = c0.vocab_size;

  // x[t][H]: the residual stream.
  Vec embed = load(m0, "model.embed_tokens.weight");
  Vec x(T * H);
  for (int64_t t = 0; t < T; ++t) {
    if (tokens[t] < 0 || tokens[t] >= V)
      fail("infer", "token id {} is outside the vocabulary [0, {})", tokens[t], V);
    for (int64_t i = 0; i < H; ++i) x[t * H + i] = embed[tokens[t] * H + i];
  }

  for (const LayerHop& hop : path) {
    EM_ASSERT(hop.model >= 0 && hop.model < static_cast<int>(models.size()));
    const WeightSource& w = *models[hop.model];
    const ModelConfig& c = w.config();
    EM_ASSERT(c.hidden_size == H);
    const int64_t nh = c.num_attention_heads, nkv = c.num_key_value_heads, hd = c.head_dim;
    const int64_t I = c.intermediate_size, group = nh / nkv;
    auto name = [&](const char* suffix) { return layer_tensor_name(hop.layer, suffix); };
    Vec in_norm = load(w, name("input_layernorm.weight")),
        post_norm = load(w, name("post_attention_layernorm.weight"));
    Vec wq = load(w, name("self_attn.q_proj.weight")),
        wk = load(w, name("self_attn.k_proj.weight"));
    Vec wv = load(w, name("self_attn.v_proj.weight")),
        wo = load(w, name("self_attn.o_proj.weight"));
    Vec bq, bk, bv, bo;
    if (c.qkv_bias) {
      bq = load(w, name("self_attn.q_proj.bias"));
      bk = load(w, name("self_attn.k_proj.bias"));
      bv = load(w, name("self_attn.v_proj.bias"));
    }
    if (c.o_bias) bo = load(w, name("self_attn.o_proj.bias"));
    Vec qn, kn;
    if (c.qk_norm) {
      qn = load(w, name("self_attn.q_norm.weight"));
      kn = load(w, name("self_attn.k_norm.weight"));
    }
    Vec wg = load(w, name("mlp.gate_proj.weight")), wu = load(w, name("mlp.up_proj.weight"));
    Vec wd = load(w, name("mlp.down_proj.weight"));
    Vec bg, bu, bd;
    if (c.mlp_bias) {
      bg = load(w, name("mlp.gate_proj.bias"));
      bu = load(w, name("mlp.up_proj.bias"));
      bd = load(w, name("mlp.down_proj.bias"));
    }
    Vec inv_freq = rope_inv_freq(c);

    // The scaled residual stream (see LayerHop).
    for (float& v : x) v *= hop.input_scale;

    // Attention: q[t][nh*hd], k/v[t][nkv*hd].
    Vec q(T * nh * hd), k(T * nkv * hd), v(T * nkv * hd);
    for (int64_t t = 0; t < T; ++t) {
      Vec h(x.begin() + t * H, x.begin() + (t + 1) * H);
      rms_norm(h.data(), H, in_norm, c.rms_norm_eps);
      Vec qt = matvec(wq, h.data(), nh * hd, H, bq.empty() ? nullptr : &bq);
      Vec kt = matvec(wk, h.data(), nkv * hd, H, bk.empty() ? nullptr : &bk);
      Vec vt = matvec(wv, h.data(), nkv * hd, H, bv.empty() ? nullptr : &bv);
      for (int64_t a = 0; a < nh; ++a) {
        if (c.qk_norm) rms_norm(&qt[a * hd], hd, qn, c.rms_norm_eps);
        rope_apply(&qt[a * hd], static_cast<int>(hd), inv_freq.data(), static_cast<int>(t));
      }
      for (int64_t a = 0; a < nkv; ++a) {
        if (c.qk_norm) rms_norm(&kt[a * hd], hd, kn, c.rms_norm_eps);
        rope_apply(&kt[a * hd], static_cast<int>(hd), inv_freq.data(), static_cast<int>(t));
      }
      std::copy(qt.begin(), qt.end(), q.begin() + t * nh * hd);
      std::copy(kt.begin(), kt.end(), k.begin() + t * nkv * hd);
      std::copy(vt.begin(), vt.end(), v.begin() + t * nkv * hd);
    }
    const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
    for (int64_t t = 0; t < T; ++t) {
      Vec att(nh * hd, 0.0f);
      for (int64_t a = 0; a < nh; ++a) {
        const int64_t g = a / group;  // repeat_kv: query head a reads kv head a / (nh / nkv)
        std::vector<double> score(t + 1);
        double mx = -INFINITY;
        for (int64_t j = 0; j <= t; ++j) {
          bool visible = !c.sliding_window || t - j < *c.sliding_window;
          double s = 0;
          for (int64_t i = 0; i < hd; ++i)
            s += static_cast<double>(q[(t * nh + a) * hd + i]) * k[(j * nkv + g) * hd + i];
          score[j] = visible ? s * scale : -INFINITY;
          mx = std::max(mx, score[j]);
        }
        double sum = 0;
        for (auto& s : score) sum += (s = std::exp(s - mx));
        for (int64_t i = 0; i < hd; ++i) {
          double acc = 0;
          for (int64_t j = 0; j <= t; ++j) acc += score[j] / sum * v[(j * nkv + g) * hd + i];
          att[a * hd + i] = static_cast<float>(acc);
        }
      }
      Vec o = matvec(wo, att.data(), H, nh * hd, bo.empty() ? nullptr : &bo);
      for (int64_t i = 0; i < H; ++i) x[t * H + i] += o[i];
    }
    // SwiGLU MLP.
    for (int64_t t = 0; t < T; ++t) {
      Vec h(x.begin() + t * H, x.begin() + (t + 1) * H);
      rms_norm(h.data(), H, post_norm, c.rms_norm_eps);
      Vec gt = matvec(wg, h.data(), I, H, bg.empty() ? nullptr : &bg);
      Vec ut = matvec(wu, h.data(), I, H, bu.empty() ? nullptr : &bu);
      for (int64_t i = 0; i < I; ++i) gt[i] = silu(gt[i]) * ut[i];
      Vec d = matvec(wd, gt.data(), H, I, bd.empty() ? nullptr : &bd);
      for (int64_t i = 0; i < H; ++i) x[t * H + i] += d[i];
    }
  }

  Vec final_norm = load(m0, "model.norm.weight");
  Vec head = c0.tie_word_embeddings ? std::move(embed) : load(m0, "lm_head.weight");
  Vec logits(T * V);
  for (int64_t t = 0; t < T; ++t) {
    rms_norm(&x[t * H], H, final_norm, c0.rms_norm_eps);
    Vec l = matvec(head, &x[t * H], V, H);
    std::copy(l.begin(), l.end(), logits.begin() + t * V);
  }
  return logits;
}

std::vector<float> reference_forward(const WeightSource& model, std::span<const int32_t> tokens) {
  std::vector<LayerHop> path;
  for (int i = 0; i < model.config().num_hidden_layers; ++i) path.push_back({0, i, 1.0f});
  const WeightSource* models[] = {&model};
  return reference_forward(models, path, tokens);
}

}  // namespace evomerge
