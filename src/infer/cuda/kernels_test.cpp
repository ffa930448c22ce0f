// Every CUDA kernel (cuda/kernels.h) and the cuBLASLt GEMM (cuda/gemm.h) against plain CPU loops
// on random inputs of awkward sizes (not multiples of 32, heads that do not fill a warp, a parent
// KV slot, a sliding window). Skips, saying why, where no CUDA device is present.
//
// Tolerances: elementwise f32 kernels within a few f32 ulps (1e-5 relative); bf16 outputs within
// one bf16 ulp of the f32 reference (the kernel rounds once, the reference's value may sit on the
// other side of a rounding boundary); the GEMM within 3e-5 of the sum of |products| of a
// double-accumulated product of the same bf16 inputs; f32 -> bf16 bit-identical to the host.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "infer/backend.h"
#include "infer/cuda/device.h"
#include "infer/cuda/gemm.h"
#include "infer/cuda/kernels.h"
#include "tensor/convert.h"

namespace evomerge::cuda {
namespace {

#define SKIP_WITHOUT_GPU()                                                                   \
  do {                                                                                       \
    if (infer_detail::cuda_devices() == 0) GTEST_SKIP() << "no CUDA device on this machine"; \
  } while (0)

std::vector<float> random_floats(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

template <class T>
DeviceBuffer<T> to_device(const std::vector<T>& h) {
  DeviceBuffer<T> d(std::max<size_t>(1, h.size()));
  check(cudaMemcpy(d.get(), h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice), "test copy");
  return d;
}

template <class T>
std::vector<T> to_host(const DeviceBuffer<T>& d, size_t n) {
  check(cudaDeviceSynchronize(), "test sync");
  std::vector<T> h(n);
  check(cudaMemcpy(h.data(), d.get(), n * sizeof(T), cudaMemcpyDeviceToHost), "test copy back");
  return h;
}

std::vector<uint16_t> bf16_of(const std::vector<float>& f) {
  std::vector<uint16_t> b(f.size());
  evomerge::f32_to_bf16(f.data(), b.data(), f.size());
  return b;
}

// |got - want| within one bf16 ulp of want (for bf16 outputs rounded from f32 math).
void expect_bf16_near(const std::vector<uint16_t>& got, const std::vector<float>& want,
                      const char* what, float abs_slack = 1e-6f) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    const float g = bf16_to_f32(got[i]);
    const float ulp = std::ldexp(1.0f, std::ilogb(std::max(std::fabs(want[i]), 1e-30f)) - 7);
    ASSERT_LE(std::fabs(g - want[i]), ulp * 1.01f + abs_slack) << what << " at " << i;
  }
}

void expect_f32_near(const std::vector<float>& got, const std::vector<float>& want, float rel,
                     const char* what) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], want[i], rel * (1.0f + std::fabs(want[i]))) << what << " at " << i;
}

void ref_rms_norm(const float* x, float* y, int n, const float* w, float eps) {
  double ss = 0;
  for (int i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const double inv = 1.0 / std::sqrt(ss / n + eps);
  for (int i = 0; i < n; ++i) y[i] = static_cast<float>(w[i] * (x[i] * inv));
}

TEST(CudaKernels, F32ToBf16IsBitIdenticalToTheHost) {
  SKIP_WITHOUT_GPU();
  auto f = random_floats(1003, 1, 100.0f);
  f.push_back(INFINITY), f.push_back(-0.0f), f.push_back(1e-40f), f.push_back(NAN);
  DeviceBuffer<bf16_t> out(f.size());
  f32_to_bf16(to_device(f).get(), static_cast<int64_t>(f.size()), out.get(), nullptr);
  const auto got = to_host(out, f.size());
  const auto want = bf16_of(f);
  for (size_t i = 0; i + 1 < f.size(); ++i) ASSERT_EQ(got[i], want[i]) << i;
  EXPECT_TRUE(std::isnan(bf16_to_f32(got.back())));
}

TEST(CudaKernels, EmbedRows) {
  SKIP_WITHOUT_GPU();
  const int V = 37, H = 75;
  const auto table = bf16_of(random_floats(V * H, 2));
  const std::vector<int32_t> tokens = {5, 0, 36, 5};
  DeviceBuffer<float> x(tokens.size() * H);
  embed_rows(to_device(table).get(), to_device(tokens).get(), 4, H, x.get(), nullptr);
  const auto got = to_host(x, tokens.size() * H);
  for (size_t r = 0; r < tokens.size(); ++r)
    for (int i = 0; i < H; ++i)
      ASSERT_EQ(got[r * H + i], bf16_to_f32(table[tokens[r] * H + i])) << r << " " << i;
}

TEST(CudaKernels, ScaleRmsNormAndResidualAddNorm) {
  SKIP_WITHOUT_GPU();
  for (int H : {7, 77, 1000, 4099}) {
    const int n = 5;
    auto x = random_floats(n * H, 3 + H), w = random_floats(H, 4), t = random_floats(n * H, 5);
    auto bias = random_floats(H, 6);
    const float scale = 0.7f, eps = 1e-5f;
    // scale_rms_norm over rows {3, 1} (the head's selection), then over every row.
    auto dx = to_device(x);
    DeviceBuffer<bf16_t> out(n * H);
    const std::vector<int32_t> sel = {3, 1};
    scale_rms_norm(dx.get(), to_device(sel).get(), 2, H, 1.0f, to_device(w).get(), eps, out.get(),
                   nullptr);
    std::vector<float> want(2 * H);
    for (int i = 0; i < 2; ++i) ref_rms_norm(&x[sel[i] * H], &want[i * H], H, w.data(), eps);
    expect_bf16_near(to_host(out, 2 * H), want, "selected rows");
    scale_rms_norm(dx.get(), nullptr, n, H, scale, to_device(w).get(), eps, out.get(), nullptr);
    for (float& v : x) v *= scale;
    want.assign(n * H, 0.0f);
    for (int r = 0; r < n; ++r) ref_rms_norm(&x[r * H], &want[r * H], H, w.data(), eps);
    expect_f32_near(to_host(dx, n * H), x, 1e-6f, "scaled x");
    expect_bf16_near(to_host(out, n * H), want, "scaled norm");
    // residual_add_norm: x += t + bias, then the norm.
    residual_add_norm(dx.get(), to_device(t).get(), to_device(bias).get(), n, H, to_device(w).get(),
                      eps, out.get(), nullptr);
    for (int r = 0; r < n; ++r)
      for (int i = 0; i < H; ++i) x[r * H + i] = x[r * H + i] + t[r * H + i] + bias[i];
    for (int r = 0; r < n; ++r) ref_rms_norm(&x[r * H], &want[r * H], H, w.data(), eps);
    expect_f32_near(to_host(dx, n * H), x, 1e-6f, "residual");
    expect_bf16_near(to_host(out, n * H), want, "residual norm");
  }
}

TEST(CudaKernels, SwigluWithAndWithoutBias) {
  SKIP_WITHOUT_GPU();
  const int n = 3, I = 131;
  const auto g = random_floats(n * I, 7, 3.0f), u = random_floats(n * I, 8),
             bg = random_floats(I, 9), bu = random_floats(I, 10);
  for (bool bias : {false, true}) {
    DeviceBuffer<bf16_t> out(n * I);
    auto dbg = to_device(bg), dbu = to_device(bu);
    swiglu(to_device(g).get(), to_device(u).get(), bias ? dbg.get() : nullptr,
           bias ? dbu.get() : nullptr, n * I, I, out.get(), nullptr);
    std::vector<float> want(n * I);
    for (int e = 0; e < n * I; ++e) {
      const double gv = g[e] + (bias ? bg[e % I] : 0.0f), uv = u[e] + (bias ? bu[e % I] : 0.0f);
      want[e] = static_cast<float>(gv / (1.0 + std::exp(-gv)) * uv);
    }
    expect_bf16_near(to_host(out, n * I), want, bias ? "bias" : "plain");
  }
}

// Two slots: slot 0 a context of `base` positions, slot 1 its child from `base`. Rows: three
// positions of the child and one of the parent.
struct AttnCase {
  int nh, nkv, hd, base;
  int64_t window;
};

TEST(CudaKernels, QkvRopeStoreThenAttentionMatchPlainLoops) {
  SKIP_WITHOUT_GPU();
  for (const AttnCase& tc : {AttnCase{4, 2, 24, 9, INT64_MAX}, AttnCase{6, 1, 40, 33, 5},
                             AttnCase{3, 3, 64, 70, INT64_MAX}, AttnCase{16, 2, 128, 4, 3}}) {
    const int nh = tc.nh, nkv = tc.nkv, hd = tc.hd, qd = nh * hd, kvd = nkv * hd;
    const int64_t kvfp = 2 * kvd + 2 * 8, off = 8;  // another hop's K/V around this one's
    // The context's K/V (already in the parent slot) and the rows to add.
    const std::vector<RowDesc> rows = {
        {1, tc.base}, {1, tc.base + 1}, {1, tc.base + 2}, {0, tc.base - 1}};
    const int n = static_cast<int>(rows.size());
    std::vector<float> parent_kv = random_floats(tc.base * kvfp, 11), child_kv(3 * kvfp, 0.0f);
    auto q = random_floats(n * qd, 12), k = random_floats(n * kvd, 13),
         v = random_floats(n * kvd, 14);
    const auto bq = random_floats(qd, 15), bk = random_floats(kvd, 16), bv = random_floats(kvd, 17);
    auto qn = random_floats(hd, 18), kn = random_floats(hd, 19);
    std::vector<float> inv(hd / 2);
    for (int i = 0; i < hd / 2; ++i) inv[i] = 1.0f / std::pow(10000.0f, 2.0f * i / hd);
    auto dparent = to_device(parent_kv), dchild = to_device(child_kv);
    const std::vector<SlotDesc> slots = {{dparent.get(), 0, -1}, {dchild.get(), tc.base, 0}};
    auto dq = to_device(q);
    auto dslots = to_device(slots);
    auto drows = to_device(rows);
    auto dbq = to_device(bq), dbk = to_device(bk), dbv = to_device(bv), dqn = to_device(qn),
         dkn = to_device(kn), dinv = to_device(inv);
    QkvParams p;
    p.n = n, p.nh = nh, p.nkv = nkv, p.hd = hd, p.bq = dbq.get(), p.bk = dbk.get(),
    p.bv = dbv.get(), p.q_norm = dqn.get(), p.k_norm = dkn.get(), p.inv_freq = dinv.get();
    p.eps = 1e-6f, p.kv_offset = off, p.kvfp = kvfp;
    qkv_rope_store(dq.get(), to_device(k).get(), to_device(v).get(), drows.get(), dslots.get(), p,
                   nullptr);
    // Reference: the same steps as the CPU backend, in plain loops.
    auto rope = [&](float* x, int pos) {
      for (int i = 0; i < hd / 2; ++i) {
        const float ang = static_cast<float>(pos) * inv[i], c = std::cos(ang), s = std::sin(ang);
        const float a = x[i], b = x[i + hd / 2];
        x[i] = a * c - b * s, x[i + hd / 2] = b * c + a * s;
      }
    };
    for (int r = 0; r < n; ++r) {
      for (int i = 0; i < qd; ++i) q[r * qd + i] += bq[i];
      for (int i = 0; i < kvd; ++i) k[r * kvd + i] += bk[i], v[r * kvd + i] += bv[i];
      for (int a = 0; a < nh; ++a) {
        ref_rms_norm(&q[r * qd + a * hd], &q[r * qd + a * hd], hd, qn.data(), 1e-6f);
        rope(&q[r * qd + a * hd], rows[r].pos);
      }
      for (int a = 0; a < nkv; ++a) {
        ref_rms_norm(&k[r * kvd + a * hd], &k[r * kvd + a * hd], hd, kn.data(), 1e-6f);
        rope(&k[r * kvd + a * hd], rows[r].pos);
      }
      float* dst = rows[r].seq == 0 ? &parent_kv[rows[r].pos * kvfp + off]
                                    : &child_kv[(rows[r].pos - tc.base) * kvfp + off];
      std::copy(&k[r * kvd], &k[r * kvd] + kvd, dst);
      std::copy(&v[r * kvd], &v[r * kvd] + kvd, dst + kvd);
    }
    expect_f32_near(to_host(dq, n * qd), q, 1e-5f, "q after rope");
    expect_f32_near(to_host(dparent, parent_kv.size()), parent_kv, 1e-5f, "parent kv");
    expect_f32_near(to_host(dchild, child_kv.size()), child_kv, 1e-5f, "child kv");

    AttnParams ap;
    ap.n = n, ap.nh = nh, ap.nkv = nkv, ap.hd = hd, ap.window = tc.window, ap.kv_offset = off,
    ap.kvfp = kvfp;
    DeviceBuffer<bf16_t> out(n * qd);
    attention(dq.get(), drows.get(), dslots.get(), ap, out.get(), nullptr);
    std::vector<float> want(n * qd, 0.0f);
    for (int r = 0; r < n; ++r) {
      const int64_t pos = rows[r].pos, first = std::max<int64_t>(0, pos - tc.window + 1);
      for (int a = 0; a < nh; ++a) {
        const int g = a / (nh / nkv);
        auto kv_row = [&](int64_t j) {
          return j < tc.base ? &parent_kv[j * kvfp + off] : &child_kv[(j - tc.base) * kvfp + off];
        };
        std::vector<double> s(pos + 1, 0.0);
        double mx = -INFINITY, sum = 0;
        for (int64_t j = first; j <= pos; ++j) {
          double d = 0;
          for (int e = 0; e < hd; ++e)
            d += static_cast<double>(q[r * qd + a * hd + e]) * kv_row(j)[g * hd + e];
          s[j] = d / std::sqrt(static_cast<double>(hd));
          mx = std::max(mx, s[j]);
        }
        for (int64_t j = first; j <= pos; ++j) sum += (s[j] = std::exp(s[j] - mx));
        for (int e = 0; e < hd; ++e) {
          double o = 0;
          for (int64_t j = first; j <= pos; ++j) o += s[j] / sum * kv_row(j)[kvd + g * hd + e];
          want[r * qd + a * hd + e] = static_cast<float>(o);
        }
      }
    }
    // The online softmax in f32 rounds differently from the two-pass double reference: 1 bf16 ulp
    // plus 2e-5 absolute (outputs are averages of V values of size ~1).
    expect_bf16_near(to_host(out, n * qd), want, "attention", 2e-5f);
  }
}

TEST(CudaKernels, RowStatsAndTargetLogprobs) {
  SKIP_WITHOUT_GPU();
  const int m = 3;
  const int64_t V = 1003, vocab = 1000;
  auto logits = random_floats(m * V, 21, 4.0f);
  logits[0 * V + 17] = logits[0 * V + 500] = 50.0f;  // a tie: the first index wins
  logits[1 * V + 1001] = 99.0f;                      // beyond `vocab`: ignored
  auto dl = to_device(logits);
  DeviceBuffer<RowStats> stats(m);
  row_stats(dl.get(), m, V, vocab, stats.get(), nullptr);
  const auto got = to_host(stats, m);
  const std::vector<int64_t> sel = {0, 0, 1, 2};
  const std::vector<int32_t> tok = {17, 500, 3, 999};
  DeviceBuffer<double> lp(sel.size());
  DeviceBuffer<int32_t> greedy(sel.size());
  target_logprobs(dl.get(), V, stats.get(), to_device(sel).get(), to_device(tok).get(),
                  static_cast<int>(sel.size()), lp.get(), greedy.get(), nullptr);
  const auto glp = to_host(lp, sel.size());
  const auto gg = to_host(greedy, sel.size());
  for (int r = 0; r < m; ++r) {
    const float* l = &logits[r * V];
    int64_t best = 0;
    for (int64_t i = 1; i < vocab; ++i)
      if (l[i] > l[best]) best = i;
    double sum = 0;
    for (int64_t i = 0; i < vocab; ++i) sum += std::exp(static_cast<double>(l[i]) - l[best]);
    EXPECT_EQ(got[r].argmax, best) << r;
    EXPECT_EQ(got[r].max, l[best]) << r;
    EXPECT_NEAR(got[r].lse, std::log(sum), 1e-12) << r;
    for (size_t t = 0; t < sel.size(); ++t)
      if (sel[t] == r) {
        EXPECT_NEAR(glp[t], l[tok[t]] - l[best] - std::log(sum), 1e-9) << t;
        EXPECT_EQ(gg[t] != 0, tok[t] == best) << t;
      }
  }
  EXPECT_EQ(got[0].argmax, 17);
}

TEST(CudaGemm, Bf16LinearMatchesDoubleLoops) {
  SKIP_WITHOUT_GPU();
  cudaStream_t stream = nullptr;
  Gemm gemm(stream);
  for (auto [n, in, out] : {std::tuple{1, 37, 53}, {17, 129, 300}, {64, 256, 96}, {5, 4096, 33}}) {
    const auto W = bf16_of(random_floats(static_cast<size_t>(out) * in, 30 + n));
    const auto X = bf16_of(random_floats(static_cast<size_t>(n) * in, 40 + n));
    DeviceBuffer<float> Y(static_cast<size_t>(n) * out);
    gemm.linear(to_device(W).get(), out, in, to_device(X).get(), n, Y.get());
    const auto got = to_host(Y, static_cast<size_t>(n) * out);
    for (int i = 0; i < n; ++i)
      for (int o = 0; o < out; ++o) {
        double acc = 0, mag = 0;
        for (int c = 0; c < in; ++c) {
          const double p =
              static_cast<double>(bf16_to_f32(X[i * in + c])) * bf16_to_f32(W[o * in + c]);
          acc += p, mag += std::fabs(p);
        }
        ASSERT_NEAR(got[i * out + o], acc, 3e-5 * mag + 1e-6) << n << "x" << in << "x" << out;
      }
  }
}

}  // namespace
}  // namespace evomerge::cuda
