// The attention kernels (attention_kernels.h) against a plain double-precision attention, on every
// kernel this CPU runs (each forced by name), on awkward shapes: head_dim 64/80/128 and ones that
// end in a partial vector, blocks of 1..64 rows, positions around the panel and block edges, a
// parent cache split at every kind of place, sliding windows, soft-capping, strided (GQA-style)
// layouts. And the vectorised exp against std::exp, silu, and the vocab log-sum-exp.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <optional>
#include <random>
#include <vector>

#include "infer/attention_kernels.h"
#include "tensor/convert.h"

namespace evomerge::infer_detail {
namespace {

std::vector<AttentionKernel> runnable_kernels() {
  std::vector<AttentionKernel> out;
  for (AttentionKernel k : kAllAttentionKernels)
    if (attention_kernel_unavailable(k).empty()) out.push_back(k);
  return out;
}

// Distance in units in the last place between two finite non-negative floats.
int64_t ulp_distance(float a, float b) {
  return std::abs(static_cast<int64_t>(std::bit_cast<int32_t>(a)) -
                  static_cast<int64_t>(std::bit_cast<int32_t>(b)));
}

// Every 61st float of the range the kernels' exp is stated for, [-87.33, 88.37] (about 33 million
// values: every exponent, many mantissas), against exp in double rounded to f32.
TEST(AttentionExp, WithinStatedUlpOfStdExp) {
  constexpr float kLo = -87.3365447505531f, kHi = 88.3762626647949f;
  std::vector<float> x;
  for (uint32_t b = 0x80000000u; b <= std::bit_cast<uint32_t>(kLo); b += 61)
    x.push_back(std::bit_cast<float>(b));
  for (uint32_t b = 0; b <= std::bit_cast<uint32_t>(kHi); b += 61)
    x.push_back(std::bit_cast<float>(b));
  x.insert(x.end(), {kLo, kHi, 0.0f, -0.0f, -1e-30f, 1e-30f});
  std::vector<float> y(x.size());
  for (AttentionKernel k : runnable_kernels()) {
    exp_with(k, x.data(), y.data(), static_cast<int64_t>(x.size()));
    int64_t worst = 0;
    float worst_x = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      const float want = static_cast<float>(std::exp(static_cast<double>(x[i])));
      const int64_t d = ulp_distance(y[i], want);
      if (d > worst) worst = d, worst_x = x[i];
    }
    // Every float of the range checked once (2.24e9, both SIMD kernels): 1 ulp at most, as here.
    EXPECT_LE(worst, 1) << attention_kernel_name(k) << " at x = " << worst_x;
    std::printf("[ info ] %s exp: max %lld ulp from exp (double, rounded) at x = %.9g\n",
                std::string(attention_kernel_name(k)).c_str(), static_cast<long long>(worst),
                worst_x);
  }
}

// Below ln(2^-126) the SIMD exp gives 0 (std::exp a subnormal), and -inf gives 0.
TEST(AttentionExp, UnderflowIsZero) {
  const float x[] = {-87.34f, -90.0f, -103.0f, -1e6f, -INFINITY};
  float y[5];
  for (AttentionKernel k : runnable_kernels()) {
    if (k == AttentionKernel::Scalar) continue;
    exp_with(k, x, y, 5);
    for (int i = 0; i < 5; ++i) EXPECT_EQ(y[i], 0.0f) << attention_kernel_name(k) << " " << x[i];
  }
}

// silu(g) * u against the formula in double, over the range activations take and beyond.
TEST(AttentionSilu, MatchesDoubleFormula) {
  std::vector<float> g, u;
  for (float x = -120.0f; x <= 120.0f; x += 0.0137f) g.push_back(x), u.push_back(0.5f + x * 1e-3f);
  for (AttentionKernel k : runnable_kernels()) {
    std::vector<float> out = g;
    silu_mul(k, out.data(), u.data(), static_cast<int64_t>(out.size()));
    double worst = 0;
    for (size_t i = 0; i < g.size(); ++i) {
      const double want = g[i] / (1.0 + std::exp(-static_cast<double>(g[i]))) * u[i];
      worst = std::max(worst, std::abs(out[i] - want) / std::max(1e-30, std::abs(want)));
    }
    // exp within 1 ulp, then one add, one divide, one multiply: a few f32 ulp (2^-23 = 1.2e-7).
    EXPECT_LE(worst, 5e-7) << attention_kernel_name(k);
  }
}

// The vocab normaliser: 32000 logits of a head's spread, plus a tail shorter than a vector.
TEST(AttentionLogSumExp, MatchesDoubleReference) {
  std::mt19937 rng(7);
  std::normal_distribution<float> dist(0.0f, 3.0f);
  for (int64_t n : {1, 7, 255, 256, 257, 32000, 32003}) {
    std::vector<float> x(n);
    for (float& v : x) v = dist(rng);
    float mx = x[0];
    for (float v : x) mx = std::max(mx, v);
    double sum = 0;
    for (float v : x) sum += std::exp(static_cast<double>(v) - mx);
    for (AttentionKernel k : runnable_kernels())
      EXPECT_NEAR(log_sum_exp(k, x.data(), n, mx), std::log(sum), 2e-6)
          << attention_kernel_name(k) << " n " << n;
  }
}

struct Case {
  int64_t hd, m, p0, base, window;
  float softcap;
};

// Plain attention in double: row i at position p0 + i over keys [max(0, pos-window+1), pos].
// `bf16`: the probabilities rounded to bf16 (as f32 values) before P·V, their sum unrounded
// (AttentionBlock::bf16; q, k and v are rounded by the caller).
std::vector<double> reference(const Case& c, const float* q, int64_t ldq,
                              const std::vector<float>& kv, int64_t ldkv, float scale,
                              bool bf16 = false) {
  std::vector<double> out(c.m * c.hd, 0.0);
  for (int64_t i = 0; i < c.m; ++i) {
    const int64_t pos = c.p0 + i, first = std::max<int64_t>(0, pos - c.window + 1);
    std::vector<double> s(pos + 1);
    double mx = -INFINITY;
    for (int64_t j = first; j <= pos; ++j) {
      double d = 0;
      for (int64_t e = 0; e < c.hd; ++e) d += double(q[i * ldq + e]) * kv[j * ldkv + e];
      d *= scale;
      if (c.softcap > 0) d = c.softcap * std::tanh(d / c.softcap);
      s[j] = d, mx = std::max(mx, d);
    }
    double sum = 0;
    for (int64_t j = first; j <= pos; ++j) sum += (s[j] = std::exp(s[j] - mx));
    if (bf16)
      for (int64_t j = first; j <= pos; ++j) s[j] = bf16_to_f32(f32_to_bf16(float(s[j])));
    for (int64_t j = first; j <= pos; ++j)
      for (int64_t e = 0; e < c.hd; ++e) out[i * c.hd + e] += s[j] / sum * kv[j * ldkv + c.hd + e];
  }
  return out;
}

// How a case's block is attended: attend_block with a kernel, or attend_group_amx with some
// heads (then head h's q and output columns at h * hd).
struct Attend {
  std::optional<AttentionKernel> kernel;  // none: attend_group_amx
  int64_t heads = 1;
  bool bf16 = false;  // AttentionBlock::bf16, inputs rounded to bf16 values
};

// One case on one kernel: Q and the cache in strided layouts (rows of other heads in between, as
// in the engine), the cache split into a parent part [0, base) and an own part [base, L) that live
// in different buffers. The largest error over the heads' outputs (each head's in `per_head`).
double max_error(const Attend& how, const Case& c, std::mt19937& rng,
                 std::vector<double>* per_head = nullptr) {
  const int64_t ldq = 3 * c.hd + 5, ldkv = 4 * c.hd + 3, L = c.p0 + c.m;
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> q(c.m * ldq), kv(L * ldkv);
  for (float& v : q) v = dist(rng);
  for (float& v : kv) v = dist(rng);
  if (how.bf16)
    for (auto* values : {&q, &kv})
      for (float& v : *values) v = bf16_to_f32(f32_to_bf16(v));
  // The parent's and the own part copied apart (own part shifted so that offsets matter).
  const int64_t base = std::min(c.base, L);
  std::vector<float> parent(kv.begin(), kv.begin() + base * ldkv);
  std::vector<float> own(7 + (L - base) * ldkv);
  std::copy(kv.begin() + base * ldkv, kv.end(), own.begin() + 7);
  KvSegment segs[2];
  int nsegs = 0;
  if (base > 0) segs[nsegs++] = {parent.data(), parent.data() + c.hd, 0, base};
  if (L > base) segs[nsegs++] = {own.data() + 7, own.data() + 7 + c.hd, base, L};
  const int64_t ldo = 3 * c.hd + 1;
  std::vector<float> out(c.m * ldo, NAN);
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.hd));
  AttentionBlock b;
  b.q = q.data(), b.ldq = ldq, b.out = out.data(), b.ldo = ldo;
  b.m = c.m, b.hd = c.hd, b.p0 = c.p0, b.window = c.window;
  b.scale = scale, b.softcap = c.softcap;
  b.segments = segs, b.nsegments = nsegs, b.ldkv = ldkv;
  b.bf16 = how.bf16;
  AttentionScratch scratch;
  if (how.kernel)
    attend_block(*how.kernel, b, scratch);
  else
    attend_group_amx(b, how.heads, scratch);
  double err = 0;
  for (int64_t h = 0; h < how.heads; ++h) {
    const std::vector<double> want =
        reference(c, q.data() + h * c.hd, ldq, kv, ldkv, scale, how.bf16);
    double head_err = 0;
    for (int64_t i = 0; i < c.m; ++i)
      for (int64_t e = 0; e < c.hd; ++e) {
        const double d = std::abs(out[i * ldo + h * c.hd + e] - want[i * c.hd + e]);
        head_err = std::isnan(d) ? INFINITY : std::max(head_err, d);
      }
    if (per_head) per_head->push_back(head_err);
    err = std::max(err, head_err);
  }
  return err;
}

std::vector<Case> awkward_cases() {
  constexpr int64_t kNoWindow = INT64_MAX;
  std::vector<Case> cases;
  for (int64_t hd : {64, 80, 128, 40, 9})
    for (int64_t m : {1, 2, 3, 4, 5, 8, 9, 31, 32, 33, 64})
      for (int64_t p0 : {0, 1, 31, 32, 33, 95}) cases.push_back({hd, m, p0, 0, kNoWindow, 0.0f});
  // The amx path's longest blocks (kAmxAttentionRows) and one just short of them.
  for (int64_t hd : {64, 80})
    for (int64_t p0 : {0, 95}) {
      cases.push_back({hd, kAmxAttentionRows, p0, 0, kNoWindow, 0.0f});
      cases.push_back({hd, kAmxAttentionRows - 27, p0, 40, 50, 0.0f});
    }
  // A parent cache split before, inside and after the block's keys; windows; soft-capping.
  for (int64_t hd : {64, 80})
    for (int64_t m : {1, 3, 7, 40, 64})
      for (int64_t base : {1, 17, 32, 70, 200}) {
        cases.push_back({hd, m, 70, base, kNoWindow, 0.0f});
        cases.push_back({hd, m, 70, base, 1, 0.0f});
        cases.push_back({hd, m, 70, base, 33, 0.0f});
        cases.push_back({hd, m, 70, base, kNoWindow, 5.0f});
      }
  return cases;
}

TEST(AttentionBlock, MatchesDoubleReferenceOnAwkwardShapes) {
  const std::vector<Case> cases = awkward_cases();
  for (AttentionKernel k : runnable_kernels()) {
    std::mt19937 rng(11);
    double worst = 0;
    for (const Case& c : cases) {
      const double err = max_error({k}, c, rng);
      worst = std::max(worst, err);
      // Values of size ~1 summed over <= 160 keys in f32: a few 1e-7 of rounding, 1e-5 of margin.
      ASSERT_LE(err, 1e-5) << attention_kernel_name(k) << " hd " << c.hd << " m " << c.m << " p0 "
                           << c.p0 << " base " << c.base << " window " << c.window << " softcap "
                           << c.softcap;
    }
    std::printf("[ info ] %s attention: max abs error %.3g over %zu cases\n",
                std::string(attention_kernel_name(k)).c_str(), worst, cases.size());
  }
}

// Precision::Bf16's attention (AttentionBlock::bf16, q/k/v given as bf16 values) against the
// double reference with the same rounding of P, on every kernel: attend_block on each runnable ISA
// and attend_group_amx (blocks of kAmxAttentionMinRows or more rows, 1 and 3 query heads sharing
// the kv head). The tolerance, as in precision_test.cpp: the sums are f32 in the kernels' order
// (a few 1e-7 here), but a probability within that distance of a midpoint between two bf16 values
// can round to the other neighbour on the two sides, moving the outputs by up to one bf16 ulp of
// its share (~4e-3 at worst): every case within kFlipTol, most within kTol. And the rounding
// happened: the bf16 outputs differ from the exact ones by more than kTol.
TEST(AttentionBlock, Bf16MatchesRoundedReferenceOnEveryKernel) {
  constexpr double kTol = 2e-5, kFlipTol = 5e-3, kMostCases = 0.9;
  std::vector<Attend> runs;
  for (AttentionKernel k : runnable_kernels()) runs.push_back({k, 1, true});
  if (amx_attention_unavailable().empty())
    for (int64_t heads : {1, 3}) runs.push_back({std::nullopt, heads, true});
  else
    std::printf("[ info ] attend_group_amx not tested: %s\n", amx_attention_unavailable().c_str());
  for (const Attend& how : runs) {
    const std::string name = how.kernel ? std::string(attention_kernel_name(*how.kernel))
                                        : "amx x" + std::to_string(how.heads);
    std::mt19937 rng(13);
    size_t heads = 0, close = 0;  // (case, head) pairs
    double worst = 0;
    for (const Case& c : awkward_cases()) {
      if (!how.kernel && c.m < kAmxAttentionMinRows) continue;
      std::vector<double> per_head;
      const double err = max_error(how, c, rng, &per_head);
      ASSERT_LE(err, kFlipTol) << name << " hd " << c.hd << " m " << c.m << " p0 " << c.p0
                               << " base " << c.base << " window " << c.window << " softcap "
                               << c.softcap;
      worst = std::max(worst, err);
      for (double e : per_head) ++heads, close += e <= kTol;
    }
    EXPECT_GE(static_cast<double>(close), kMostCases * static_cast<double>(heads))
        << name << ": " << close << " of " << heads << " heads within " << kTol;
    std::printf("[ info ] %s bf16 attention: max abs error %.3g, %zu of %zu heads within %g\n",
                name.c_str(), worst, close, heads, kTol);
  }
  // The rounding is there: the exact reference is further away than kTol.
  std::mt19937 rng(17);
  const Case c{64, 33, 70, 0, INT64_MAX, 0.0f};
  std::vector<float> q(c.m * 64), kv((c.p0 + c.m) * 128);
  for (auto* values : {&q, &kv})
    for (float& v : *values) v = bf16_to_f32(f32_to_bf16(std::normal_distribution<float>()(rng)));
  const auto exact = reference(c, q.data(), 64, kv, 128, 0.125f);
  const auto rounded = reference(c, q.data(), 64, kv, 128, 0.125f, true);
  double moved = 0;
  for (size_t i = 0; i < exact.size(); ++i)
    moved = std::max(moved, std::abs(exact[i] - rounded[i]));
  EXPECT_GT(moved, 5 * kTol);
}

// The scratch a decode step uses is reserved up front: attending a row at the reserved length
// does not grow it (the backend reserves in reset_seq).
TEST(AttentionBlock, ReservedScratchDoesNotGrow) {
  AttentionScratch s;
  s.reserve(1, 100, 64);
  const float* scores = s.scores.data();
  std::vector<float> q(64, 0.1f), kv(100 * 128, 0.2f), out(64);
  KvSegment seg{kv.data(), kv.data() + 64, 0, 100};
  AttentionBlock b;
  b.q = q.data(), b.ldq = 64, b.out = out.data(), b.ldo = 64;
  b.m = 1, b.hd = 64, b.p0 = 99, b.segments = &seg, b.nsegments = 1, b.ldkv = 128;
  for (AttentionKernel k : runnable_kernels()) {
    attend_block(k, b, s);
    EXPECT_EQ(s.scores.data(), scores);
    EXPECT_NEAR(out[5], 0.2f, 1e-6f);  // equal keys: the mean of equal values
  }
}

}  // namespace
}  // namespace evomerge::infer_detail
