#include "infer/reference_forward.h"

#include <cmath>
#include <optional>
#include <string>

#include "arch/arch.h"
#include "common/error.h"
#include "infer/rope.h"
#include "tensor/convert.h"

namespace evomerge {
namespace {

using Vec = std::vector<float>;

Vec load(const WeightSource& w, const std::string& name) {
  return to_f32(w.tensor(name));
}

// y[out] = W[out x in] · x[in] (+ b). Precision::Bf16: x rounded to bf16 (nearest even) first.
Vec matvec(Precision precision, const Vec& W, const float* x_in, int64_t out, int64_t in,
           const Vec* bias = nullptr) {
  Vec x(x_in, x_in + in);
  if (precision == Precision::Bf16)
    for (float& v : x) v = bf16_to_f32(f32_to_bf16(v));
  Vec y(out);
  for (int64_t o = 0; o < out; ++o) {
    double acc = 0;
    for (int64_t i = 0; i < in; ++i) acc += static_cast<double>(W[o * in + i]) * x[i];
    y[o] = static_cast<float>(acc) + (bias ? (*bias)[o] : 0.0f);
  }
  return y;
}

// HF RMSNorm: x * rsqrt(mean(x^2) + eps) in f32, then times the weight (Gemma: 1 + weight).
void rms_norm(float* x, int64_t n, const Vec& weight, double eps, bool plus_one = false) {
  double ss = 0;
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  float inv = 1.0f / std::sqrt(static_cast<float>(ss / n) + static_cast<float>(eps));
  for (int64_t i = 0; i < n; ++i) x[i] = (plus_one ? 1.0f + weight[i] : weight[i]) * (x[i] * inv);
}

float activation(const ModelConfig& c, float v) {
  if (c.hidden_act == "gelu_pytorch_tanh")  // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
    return static_cast<float>(0.5 * v *
                              (1.0 + std::tanh(0.7978845608028654 * (v + 0.044715 * v * v * v))));
  return v / (1.0f + std::exp(-v));  // silu
}

// One layer's weights as f32 vectors, read by name (Phi-3's fused tensors split by rows here).
struct RefLayer {
  Vec in_norm, mlp_norm, post_attn_norm, post_mlp_norm, wq, wk, wv, wo, wg, wu, wd;
  Vec bq, bk, bv, bo, bg, bu, bd, qn, kn;

  RefLayer(const WeightSource& w, int layer) {
    const ModelConfig& c = w.config();
    const int64_t H = c.hidden_size, I = c.intermediate_size;
    const int64_t qd = c.num_attention_heads * c.head_dim, kvd = c.num_key_value_heads * c.head_dim;
    auto name = [&](const char* suffix) { return layer_tensor_name(layer, suffix); };
    auto rows = [](const Vec& m, int64_t first, int64_t count, int64_t cols) {
      return Vec(m.begin() + first * cols, m.begin() + (first + count) * cols);
    };
    in_norm = load(w, name("input_layernorm.weight"));
    if (c.sandwich_norms) {
      post_attn_norm = load(w, name("post_attention_layernorm.weight"));
      mlp_norm = load(w, name("pre_feedforward_layernorm.weight"));
      post_mlp_norm = load(w, name("post_feedforward_layernorm.weight"));
    } else {
      mlp_norm = load(w, name("post_attention_layernorm.weight"));
    }
    if (c.fused_qkv) {
      Vec qkv = load(w, name("self_attn.qkv_proj.weight"));
      wq = rows(qkv, 0, qd, H), wk = rows(qkv, qd, kvd, H), wv = rows(qkv, qd + kvd, kvd, H);
    } else {
      wq = load(w, name("self_attn.q_proj.weight")), wk = load(w, name("self_attn.k_proj.weight"));
      wv = load(w, name("self_attn.v_proj.weight"));
    }
    wo = load(w, name("self_attn.o_proj.weight"));
    if (c.qkv_bias) {
      bq = load(w, name("self_attn.q_proj.bias"));
      bk = load(w, name("self_attn.k_proj.bias"));
      bv = load(w, name("self_attn.v_proj.bias"));
    }
    if (c.o_bias) bo = load(w, name("self_attn.o_proj.bias"));
    if (c.qk_norm) {
      qn = load(w, name("self_attn.q_norm.weight"));
      kn = load(w, name("self_attn.k_norm.weight"));
    }
    if (c.fused_gate_up) {
      Vec gate_up = load(w, name("mlp.gate_up_proj.weight"));
      wg = rows(gate_up, 0, I, H), wu = rows(gate_up, I, I, H);
    } else {
      wg = load(w, name("mlp.gate_proj.weight")), wu = load(w, name("mlp.up_proj.weight"));
    }
    wd = load(w, name("mlp.down_proj.weight"));
    if (c.mlp_bias) {
      bg = load(w, name("mlp.gate_proj.bias"));
      bu = load(w, name("mlp.up_proj.bias"));
      bd = load(w, name("mlp.down_proj.bias"));
    }
  }
};

const Vec* opt(const Vec& v) {
  return v.empty() ? nullptr : &v;
}

// x[t] += residual_multiplier * post_norm(out) (Gemma's post norms, Granite's multiplier).
void add_block_output(const ModelConfig& c, float* x, Vec out, const Vec& post_norm) {
  const int64_t H = c.hidden_size;
  if (!post_norm.empty()) rms_norm(out.data(), H, post_norm, c.rms_norm_eps, c.norm_plus_one);
  for (int64_t i = 0; i < H; ++i) x[i] += static_cast<float>(c.residual_multiplier) * out[i];
}

// Causal attention of layer `layer` over the whole sequence x[T x H] (updates x).
void attention(const ModelConfig& c, int layer, const RefLayer& w, Vec& x, int64_t T,
               Precision precision) {
  const int64_t H = c.hidden_size, nh = c.num_attention_heads, nkv = c.num_key_value_heads;
  const int64_t hd = c.head_dim, group = nh / nkv;
  const Vec inv_freq = rope_inv_freq(c, layer);
  const float mscale = rope_attention_factor(c);
  const std::optional<int64_t> window = layer_sliding_window(c, layer);
  // q[t][nh*hd], k/v[t][nkv*hd].
  Vec q(T * nh * hd), k(T * nkv * hd), v(T * nkv * hd);
  for (int64_t t = 0; t < T; ++t) {
    Vec h(x.begin() + t * H, x.begin() + (t + 1) * H);
    rms_norm(h.data(), H, w.in_norm, c.rms_norm_eps, c.norm_plus_one);
    Vec qt = matvec(precision, w.wq, h.data(), nh * hd, H, opt(w.bq));
    Vec kt = matvec(precision, w.wk, h.data(), nkv * hd, H, opt(w.bk));
    Vec vt = matvec(precision, w.wv, h.data(), nkv * hd, H, opt(w.bv));
    for (int64_t a = 0; a < nh; ++a) {
      if (c.qk_norm) rms_norm(&qt[a * hd], hd, w.qn, c.rms_norm_eps, c.norm_plus_one);
      rope_apply(&qt[a * hd], static_cast<int>(hd), inv_freq.data(), static_cast<int>(t), mscale);
    }
    for (int64_t a = 0; a < nkv; ++a) {
      if (c.qk_norm) rms_norm(&kt[a * hd], hd, w.kn, c.rms_norm_eps, c.norm_plus_one);
      rope_apply(&kt[a * hd], static_cast<int>(hd), inv_freq.data(), static_cast<int>(t), mscale);
    }
    if (precision == Precision::Bf16)  // the attention's products on bf16 values too
      for (Vec* part : {&qt, &kt, &vt})
        for (float& e : *part) e = bf16_to_f32(f32_to_bf16(e));
    std::copy(qt.begin(), qt.end(), q.begin() + t * nh * hd);
    std::copy(kt.begin(), kt.end(), k.begin() + t * nkv * hd);
    std::copy(vt.begin(), vt.end(), v.begin() + t * nkv * hd);
  }
  const double scale =
      c.attention_scale ? *c.attention_scale : 1.0 / std::sqrt(static_cast<double>(hd));
  std::vector<Vec> outs;
  for (int64_t t = 0; t < T; ++t) {
    Vec att(nh * hd, 0.0f);
    for (int64_t a = 0; a < nh; ++a) {
      const int64_t g = a / group;  // repeat_kv: query head a reads kv head a / (nh / nkv)
      std::vector<double> score(t + 1);
      double mx = -INFINITY;
      for (int64_t j = 0; j <= t; ++j) {
        double s = 0;
        for (int64_t i = 0; i < hd; ++i)
          s += static_cast<double>(q[(t * nh + a) * hd + i]) * k[(j * nkv + g) * hd + i];
        s *= scale;
        if (c.attn_logit_softcapping)
          s = *c.attn_logit_softcapping * std::tanh(s / *c.attn_logit_softcapping);
        score[j] = !window || t - j < *window ? s : -INFINITY;
        mx = std::max(mx, score[j]);
      }
      double sum = 0;
      for (auto& s : score) sum += (s = std::exp(s - mx));
      // Precision::Bf16: P·V multiplies the probabilities rounded to bf16; the sum is unrounded.
      if (precision == Precision::Bf16)
        for (auto& s : score) s = bf16_to_f32(f32_to_bf16(static_cast<float>(s)));
      for (int64_t i = 0; i < hd; ++i) {
        double acc = 0;
        for (int64_t j = 0; j <= t; ++j) acc += score[j] / sum * v[(j * nkv + g) * hd + i];
        att[a * hd + i] = static_cast<float>(acc);
      }
    }
    outs.push_back(matvec(precision, w.wo, att.data(), H, nh * hd, opt(w.bo)));
  }
  for (int64_t t = 0; t < T; ++t)
    add_block_output(c, &x[t * H], std::move(outs[t]), w.post_attn_norm);
}

// The gated MLP (act(gate) * up, then down) over every position of x[T x H].
void mlp(const ModelConfig& c, const RefLayer& w, Vec& x, int64_t T, Precision precision) {
  const int64_t H = c.hidden_size, I = c.intermediate_size;
  for (int64_t t = 0; t < T; ++t) {
    Vec h(x.begin() + t * H, x.begin() + (t + 1) * H);
    rms_norm(h.data(), H, w.mlp_norm, c.rms_norm_eps, c.norm_plus_one);
    Vec gt = matvec(precision, w.wg, h.data(), I, H, opt(w.bg));
    Vec ut = matvec(precision, w.wu, h.data(), I, H, opt(w.bu));
    for (int64_t i = 0; i < I; ++i) gt[i] = activation(c, gt[i]) * ut[i];
    add_block_output(c, &x[t * H], matvec(precision, w.wd, gt.data(), H, I, opt(w.bd)),
                     w.post_mlp_norm);
  }
}

}  // namespace

std::vector<float> reference_forward(std::span<const WeightSource* const> models,
                                     std::span<const LayerHop> path,
                                     std::span<const int32_t> tokens, Precision precision) {
  EM_ASSERT(!models.empty());
  const WeightSource& m0 = *models[0];
  const ModelConfig& c0 = m0.config();
  const int64_t T = static_cast<int64_t>(tokens.size()), H = c0.hidden_size, V = c0.vocab_size;

  // x[t][H]: the residual stream; embeddings times embedding_multiplier (Granite, Gemma).
  Vec embed = load(m0, "model.embed_tokens.weight");
  Vec x(T * H);
  for (int64_t t = 0; t < T; ++t) {
    if (tokens[t] < 0 || tokens[t] >= V)
      fail("infer", "token id {} is outside the vocabulary [0, {})", tokens[t], V);
    for (int64_t i = 0; i < H; ++i)
      x[t * H + i] = embed[tokens[t] * H + i] * static_cast<float>(c0.embedding_multiplier);
  }

  for (const LayerHop& hop : path) {
    EM_ASSERT(hop.model >= 0 && hop.model < static_cast<int>(models.size()));
    const WeightSource& w = *models[hop.model];
    const ModelConfig& c = w.config();
    EM_ASSERT(c.hidden_size == H);
    const RefLayer layer(w, hop.layer);
    for (float& v : x) v *= hop.input_scale;  // the scaled residual stream (see LayerHop)
    attention(c, hop.layer, layer, x, T, precision);
    mlp(c, layer, x, T, precision);
  }

  Vec final_norm = load(m0, "model.norm.weight");
  Vec head = c0.tie_word_embeddings ? std::move(embed) : load(m0, "lm_head.weight");
  Vec logits(T * V);
  for (int64_t t = 0; t < T; ++t) {
    rms_norm(&x[t * H], H, final_norm, c0.rms_norm_eps, c0.norm_plus_one);
    Vec l = matvec(precision, head, &x[t * H], V, H);
    for (float& v : l) {
      v /= static_cast<float>(c0.logits_scaling);  // Granite
      if (c0.final_logit_softcapping)              // Gemma 2
        v = static_cast<float>(*c0.final_logit_softcapping *
                               std::tanh(v / *c0.final_logit_softcapping));
    }
    std::copy(l.begin(), l.end(), logits.begin() + t * V);
  }
  return logits;
}

std::vector<float> reference_forward(const WeightSource& model, std::span<const int32_t> tokens,
                                     Precision precision) {
  std::vector<LayerHop> path;
  for (int i = 0; i < model.config().num_hidden_layers; ++i) path.push_back({0, i, 1.0f});
  const WeightSource* models[] = {&model};
  return reference_forward(models, path, tokens, precision);
}

}  // namespace evomerge
