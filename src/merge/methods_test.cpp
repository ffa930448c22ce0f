// Every merge method on small hand-computed tensors (values worked out in the comments), plus the
// sparsifiers' selection, determinism and edge cases.
#include "merge/methods.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

#include "common/error.h"
#include "merge/executor.h"

namespace evomerge {
namespace {

struct Case {
  std::vector<std::vector<float>> inputs;
  std::vector<ParamSet> params;
  ParamSet globals;
  int base = -1;
  Shape shape;
  std::string tensor = "model.layers.0.mlp.up_proj.weight";
  uint64_t seed = 0;
  const ParallelFor* parallel = nullptr;

  std::vector<float> run(std::string_view method) const {
    KernelArgs a;
    a.tensor = tensor;
    a.shape = shape.empty() ? Shape{static_cast<int64_t>(inputs[0].size())} : shape;
    for (const auto& in : inputs) a.inputs.push_back(in.data());
    std::vector<ParamSet> p = params;
    p.resize(inputs.size());
    for (const auto& x : p) a.params.push_back(&x);
    a.base = base;
    a.globals = &globals;
    a.seed = seed;
    a.parallel = parallel;
    std::vector<float> out(static_cast<size_t>(shape_numel(a.shape)));
    run_method(method, a, out.data());
    return out;
  }
};

void expect_near(const std::vector<float>& got, const std::vector<float>& want, double tol = 1e-5) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], tol) << "element " << i;
}

TEST(Registry, KnowsEveryMethodOfTheIssue) {
  for (const char* m : {"linear", "slerp", "nuslerp", "multislerp", "karcher", "model_stock", "task_arithmetic", "ties",
                        "dare_ties", "dare_linear", "breadcrumbs", "breadcrumbs_ties", "della", "della_linear", "sce",
                        "nearswap", "arcee_fusion", "passthrough", "ram", "ramplus_tl"})
    EXPECT_NE(find_method(m), nullptr) << m;
  EXPECT_EQ(find_method("consensus_ties"), nullptr);
  // Defaults from the reference table (§2.7).
  auto global_default = [](const char* m, const char* p) {
    for (const auto& g : find_method(m)->globals)
      if (g.name == p) return *g.default_value;
    return -1.0;
  };
  EXPECT_EQ(global_default("ties", "normalize"), 1.0);
  EXPECT_EQ(global_default("dare_ties", "normalize"), 0.0);
  EXPECT_EQ(global_default("dare_ties", "rescale"), 1.0);
  EXPECT_EQ(global_default("della", "normalize"), 1.0);
  EXPECT_EQ(global_default("task_arithmetic", "rescale"), 0.0);
}

TEST(Linear, WeightedMeanNormalised) {
  // (1*1 + 3*3)/4 = 2.5, (1*2 + 3*6)/4 = 5
  Case c{{{1, 2}, {3, 6}}, {{{"weight", 1}}, {{"weight", 3}}}};
  expect_near(c.run("linear"), {2.5f, 5.0f});
  c.globals["normalize"] = 0;  // 1+9, 2+18
  expect_near(c.run("linear"), {10.0f, 20.0f});
}

TEST(Linear, ZeroWeightSumIsAnError) {
  Case c{{{1, 2}, {3, 6}}, {{{"weight", 1}}, {{"weight", -1}}}};
  EXPECT_THROW(c.run("linear"), Error);
}

TEST(TaskArithmetic, SumsWeightedDeltas) {
  // deltas [1,-1,0] and [0,2,-2]; 1*d1 + 0.5*d2 = [1,0,-1]; base [1,1,1] -> [2,1,0]
  Case c{{{1, 1, 1}, {2, 0, 1}, {1, 3, -1}}, {{}, {{"weight", 1}}, {{"weight", 0.5}}}};
  c.base = 0;
  expect_near(c.run("task_arithmetic"), {2, 1, 0});
  c.globals["lambda"] = 2.0;
  expect_near(c.run("task_arithmetic"), {3, 1, -1});
  // Zero deltas give the base back.
  Case z{{{1, 2, 3}, {1, 2, 3}}, {{}, {{"weight", 0.7}}}};
  z.base = 0;
  expect_near(z.run("task_arithmetic"), {1, 2, 3});
}

TEST(Ties, SignElectionAndDisjointMean) {
  // base 0; d1 = [1,-2,3,0], d2 = [2,1,-1,0]; S = [3,-1,2,0]
  // e0: both +, (1+2)/2 = 1.5; e1: only d1 agrees with -, -2/1; e2: only d1, 3; e3: no agreeing entry -> 0
  Case c{{{0, 0, 0, 0}, {1, -2, 3, 0}, {2, 1, -1, 0}}, {{}, {{"weight", 1}}, {{"weight", 1}}}};
  c.base = 0;
  expect_near(c.run("ties"), {1.5f, -2.0f, 3.0f, 0.0f});
  // normalize off: sums of agreeing entries
  c.globals["normalize"] = 0;
  expect_near(c.run("ties"), {3.0f, -2.0f, 3.0f, 0.0f});
}

TEST(Ties, ExactTieInTheVoteGoesPositive) {
  // S = 1 + (-1) = 0 counts as +: only the + delta is kept.
  Case c{{{0}, {1}, {-1}}, {{}, {{"weight", 1}}, {{"weight", 1}}}};
  c.base = 0;
  expect_near(c.run("ties"), {1.0f});
}

TEST(Ties, ExactTieWithWeightsThatAreNotPowersOfTwoGoesPositive) {
  // w_a * d_a == -(w_b * d_b) exactly in float (the products are the same two factors), so the vote
  // S = fl(w_a d_a) + fl(w_b d_b) is exactly 0 and counts as + (mergekit: sign = (sum >= 0)). An
  // FMA-contracted S = fma(w_b, d_b, fl(w_a d_a)) would instead be the rounding residual of either
  // sign: this test fails wherever the merge kernels are built with floating-point contraction.
  // Long enough that the vectorised loop body (not only the scalar tail) is exercised.
  constexpr size_t n = 515;
  std::vector<float> zero(n, 0.0f), da(n), db(n), va(n), vb(n);
  for (size_t j = 0; j < n; ++j) {
    da[j] = 0.3f;  // weight 0.7: w_a d_a = fl(0.7 * 0.3)
    db[j] = -0.7f;  // weight 0.3: w_b d_b = -fl(0.3 * 0.7)
    va[j] = 0.1f * static_cast<float>(j + 1);  // weights 0.3 / 0.3 on +v and -v
    vb[j] = -va[j];
  }
  for (const char* method : {"ties", "dare_ties", "breadcrumbs_ties"}) {
    SCOPED_TRACE(method);
    ParamSet pa{{"weight", 0.7}, {"density", 1.0}}, pb{{"weight", 0.3}, {"density", 1.0}};
    if (std::string_view(method) == "breadcrumbs_ties") pa["gamma"] = pb["gamma"] = 0.0;
    Case c{{zero, da, db}, {{}, pa, pb}};
    c.base = 0;
    c.globals["normalize"] = 1;
    // only the + entry is kept, normalised by its weight: 0.7 * 0.3 / 0.7
    const float kept = (0.7f * 0.3f) / 0.7f;
    auto out = c.run(method);
    for (size_t j = 0; j < n; ++j) ASSERT_EQ(out[j], kept) << "element " << j;

    pa["weight"] = pb["weight"] = 0.3;
    Case c2{{zero, va, vb}, {{}, pa, pb}};
    c2.base = 0;
    c2.globals["normalize"] = 1;
    out = c2.run(method);
    for (size_t j = 0; j < n; ++j) ASSERT_EQ(out[j], (0.3f * va[j]) / 0.3f) << "element " << j;
  }
}

TEST(Ties, NegativeWeightFlipsTheVote) {
  // weighted deltas: 1*1 = 1, -2*1 = -2 -> S = -1, only the second agrees: -2 / (-2) = 1 (normalised)
  Case c{{{0}, {1}, {1}}, {{}, {{"weight", 1}}, {{"weight", -2}}}};
  c.base = 0;
  expect_near(c.run("ties"), {1.0f});
}

TEST(Ties, MagnitudeTopK) {
  // density 0.5 of 4 -> k = 2. d1 = [4,-1,3,0.5] keeps 4,3; d2 = [-1,-2,0.1,0.2] keeps -1,-2.
  // S = [3,-2,3,0] -> [4, -2, 3, 0] (normalised by the one agreeing weight each).
  Case c{{{10, 10, 10, 10}, {14, 9, 13, 10.5}, {9, 8, 10.1f, 10.2f}},
         {{}, {{"weight", 1}, {"density", 0.5}}, {{"weight", 1}, {"density", 0.5}}}};
  c.base = 0;
  expect_near(c.run("ties"), {14, 8, 13, 10}, 1e-5);
}

TEST(Ties, TiedMagnitudesKeepExactlyKByIndex) {
  // |d| all equal: density 0.5 of 4 keeps the first two (lowest index).
  Case c{{{0, 0, 0, 0}, {1, 1, 1, 1}}, {{}, {{"weight", 1}, {"density", 0.5}}}};
  c.base = 0;
  expect_near(c.run("ties"), {1, 1, 0, 0});
}

TEST(Ties, DensityNearZeroLeavesTheBase) {
  // int(0.001 * 4) = 0 elements: mergekit asserts; we keep nothing, so the base comes back.
  Case c{{{1, 2, 3, 4}, {5, 5, 5, 5}}, {{}, {{"weight", 1}, {"density", 0.001}}}};
  c.base = 0;
  expect_near(c.run("ties"), {1, 2, 3, 4});
  // density 1 keeps everything: base + delta
  c.params[1]["density"] = 1.0;
  expect_near(c.run("ties"), {5, 5, 5, 5});
}

std::vector<float> iota_vec(size_t n, float start = 1.0f) {
  std::vector<float> v(n);
  std::iota(v.begin(), v.end(), start);
  return v;
}

TEST(Dare, BernoulliKeepRateAndL1Rescale) {
  const size_t n = 20000;
  Case c{{std::vector<float>(n, 0.0f), std::vector<float>(n, 1.0f)}, {{}, {{"weight", 1}, {"density", 0.3}}}};
  c.base = 0;
  auto out = c.run("dare_linear");
  size_t kept = 0;
  double sum = 0;
  for (float x : out) {
    kept += x != 0;
    sum += x;
  }
  EXPECT_NEAR(static_cast<double>(kept) / n, 0.3, 0.015);
  // L1 matching: the kept entries carry the whole L1 mass of the delta (n), each n/kept.
  EXPECT_NEAR(sum, static_cast<double>(n), 1e-2 * n / kept);
  for (float x : out)
    if (x != 0) EXPECT_NEAR(x, static_cast<double>(n) / kept, 1e-3);
}

TEST(Dare, DeterministicPerSeedAndTensorIndependentOfThreads) {
  const size_t n = 100000;  // several chunks
  std::vector<float> d(n);
  for (size_t i = 0; i < n; ++i) d[i] = std::sin(0.1f * i);
  Case c{{std::vector<float>(n, 0.0f), d, iota_vec(n, -50000)},
         {{}, {{"weight", 1}, {"density", 0.4}}, {{"weight", 0.5}, {"density", 0.6}}}};
  c.base = 0;
  c.seed = 7;
  auto a = c.run("dare_ties");
  ThreadPool pool(3);
  c.parallel = &pool;
  auto b = c.run("dare_ties");
  EXPECT_EQ(a, b);
  c.seed = 8;
  EXPECT_NE(a, c.run("dare_ties"));
  c.seed = 7;
  c.tensor = "model.layers.1.mlp.up_proj.weight";
  EXPECT_NE(a, c.run("dare_ties"));
}

TEST(Dare, DensityNearZeroKeepsNothingAndDoesNotDivideByZero) {
  Case c{{{1, 1, 1, 1}, {2, 3, 4, 5}}, {{}, {{"weight", 1}, {"density", 1e-12}}}};
  c.base = 0;
  expect_near(c.run("dare_ties"), {1, 1, 1, 1});
}

TEST(Breadcrumbs, KeepsTheMiddleBand) {
  // n = 10, density 0.5, gamma 0.1: target 5, n_top 1, n_bot 4 -> ranks [4, 9): values 5..9.
  Case c{{std::vector<float>(10, 0.0f), iota_vec(10)}, {{}, {{"weight", 1}, {"density", 0.5}, {"gamma", 0.1}}}};
  c.base = 0;
  expect_near(c.run("breadcrumbs"), {0, 0, 0, 0, 5, 6, 7, 8, 9, 0});
  // gamma 0: mergekit's [n_bot:-0] keeps nothing (quirk); we keep ranks [5, 10).
  c.params[1]["gamma"] = 0.0;
  expect_near(c.run("breadcrumbs"), {0, 0, 0, 0, 0, 6, 7, 8, 9, 10});
}

TEST(Della, RejectsBadEpsilonAndPrefersLargeMagnitudes) {
  Case bad{{{0, 0}, {1, 2}}, {{}, {{"weight", 1}, {"density", 0.5}, {"epsilon", 0.6}}}};
  bad.base = 0;
  EXPECT_THROW(bad.run("della"), Error);
  // One row of 4000 increasing magnitudes, density 0.5, eps 0.4: keep probability 0.1 at the bottom
  // rising to 0.9 at the top.
  const size_t n = 4000;
  Case c{{std::vector<float>(n, 0.0f), iota_vec(n)}, {{}, {{"weight", 1}, {"density", 0.5}, {"epsilon", 0.4}}}};
  c.base = 0;
  c.globals["rescale"] = 0;
  auto out = c.run("della_linear");
  size_t low = 0, high = 0;
  for (size_t i = 0; i < n / 10; ++i) low += out[i] != 0;
  for (size_t i = n - n / 10; i < n; ++i) high += out[i] != 0;
  EXPECT_NEAR(low / 400.0, 0.14, 0.06);   // mean p over the bottom decile ~ 0.1 + 0.8*0.05
  EXPECT_NEAR(high / 400.0, 0.86, 0.06);  // top decile ~ 0.9 - 0.8*0.05
  for (size_t i = 0; i < n; ++i)
    if (out[i] != 0) EXPECT_EQ(out[i], static_cast<float>(i + 1));  // kept entries unchanged without rescale
}

TEST(Slerp, OrthogonalHalfway) {
  // theta = pi/2: both coefficients sin(pi/4) = 0.70711
  Case c{{{1, 0}, {0, 1}}};
  c.base = 0;
  c.globals["t"] = 0.5;
  expect_near(c.run("slerp"), {0.70710678f, 0.70710678f});
  // un-normalised originals: 2*0.7071, 3*0.7071
  Case d{{{2, 0}, {0, 3}}};
  d.base = 0;
  d.globals["t"] = 0.5;
  expect_near(d.run("slerp"), {1.4142136f, 2.1213203f});
}

TEST(Slerp, ParallelVectorsFallBackToLerpAndBaseIsTheTZeroEnd) {
  Case c{{{2, 4}, {1, 2}}};  // parallel: |dot| = 1 > 0.9995
  c.base = 1;
  c.globals["t"] = 0.25;
  expect_near(c.run("slerp"), {0.75f * 1 + 0.25f * 2, 0.75f * 2 + 0.25f * 4});
  c.globals["t"] = 0.0;
  expect_near(c.run("slerp"), {1, 2});
  Case one{{{3, 4}}};  // a single tensor passes through
  one.base = 0;
  one.globals["t"] = 0.3;
  expect_near(one.run("slerp"), {3, 4});
}

TEST(Nuslerp, WeightsGiveTAndRowWiseVectors) {
  // t = wB/(wA+wB) = 0.75: sin(pi/8) = 0.382683, sin(3pi/8) = 0.923880
  Case c{{{1, 0}, {0, 1}}, {{{"weight", 1}}, {{"weight", 3}}}};
  expect_near(c.run("nuslerp"), {0.38268343f, 0.92387953f});
  // rows of a [2,2]: row0 orthogonal -> 0.7071 each; row1 parallel -> lerp (1+2)/2 = 1.5
  Case r{{{1, 0, 1, 0}, {0, 1, 2, 0}}, {{{"weight", 1}}, {{"weight", 1}}}};
  r.shape = {2, 2};
  r.globals["nuslerp_flatten"] = 0;
  expect_near(r.run("nuslerp"), {0.70710678f, 0.70710678f, 1.5f, 0.0f});
  // with a base: base + ns(A-base, B-base)
  Case b{{{1, 1}, {2, 1}, {1, 2}}, {{}, {{"weight", 1}}, {{"weight", 1}}}};
  b.base = 0;
  expect_near(b.run("nuslerp"), {1.70710678f, 1.70710678f});
}

TEST(Multislerp, TwoOrthogonalUnitVectorsMeetHalfway) {
  Case c{{{1, 0}, {0, 1}}, {{{"weight", 1}}, {{"weight", 1}}}};
  expect_near(c.run("multislerp"), {0.70710678f, 0.70710678f}, 1e-5);
  // opposite vectors: the mean direction is zero; with two models the weighted sum is returned
  Case o{{{1, 0}, {-1, 0}}, {{{"weight", 1}}, {{"weight", 1}}}};
  expect_near(o.run("multislerp"), {0, 0}, 1e-6);
}

TEST(Karcher, MeanOnTheSphereTimesMeanNorm) {
  // directions [1,0], [0,1] -> [0.7071, 0.7071]; mean norm (2+4)/2 = 3
  Case c{{{2, 0}, {0, 4}}};
  expect_near(c.run("karcher"), {2.1213203f, 2.1213203f}, 1e-5);
  Case z{{{0, 0}, {0, 0}}};
  expect_near(z.run("karcher"), {0, 0});
}

TEST(ModelStock, AngleGivesTheInterpolation) {
  // d1 = [1,1], d2 = [1,0]: cos = 0.70711, N = 2: t = 2c/(1+c) = 0.828427; mean = [1, 0.5]
  Case c{{{0, 0}, {1, 1}, {1, 0}}};
  c.base = 0;
  expect_near(c.run("model_stock"), {0.82842712f, 0.41421356f});
  // orthogonal deltas: t = 0 -> the base
  Case o{{{5, 5}, {6, 5}, {5, 6}}};
  o.base = 0;
  expect_near(o.run("model_stock"), {5, 5});
}

TEST(Sce, VarianceWeightsAndConsensus) {
  // tau1 = [1,-1,2], tau2 = [3,1,-2]; omega = mean(tau^2) = 2, 14/3 -> 0.3, 0.7
  // e0: both + -> (0.3*1 + 0.7*3)/1 = 2.4; e1: S = 0 -> +, tau2 -> 1; e2: S = 0 -> +, tau1 -> 2
  Case c{{{0, 0, 0}, {1, -1, 2}, {3, 1, -2}}};
  c.base = 0;
  expect_near(c.run("sce"), {2.4f, 1.0f, 2.0f});
  // select_topk 1/3 of the 3 non-zero variances keeps only the highest-variance element (e2, var 4)
  c.globals["select_topk"] = 1.0 / 3.0 + 1e-9;
  expect_near(c.run("sce"), {0.0f, 0.0f, 2.0f});
}

TEST(Nearswap, InterpolatesTowardsNearValues) {
  // w = clamp(0.5/|B-X|, 0, 1) = [0.5, 1, 0.125]
  Case c{{{0, 0, 0}, {1, 0.1f, -4}}};
  c.base = 0;
  c.globals["t"] = 0.5;
  expect_near(c.run("nearswap"), {0.5f, 0.1f, -0.5f});
}

TEST(ArceeFusion, KeepsOnlyOutlyingImportance) {
  // |P-B| = [1..7, 100] times one KL: quantiles 4 (q50), 6 (q75), 2 (q25) -> thr = 4 + 1.5*4 = 10
  Case c{{std::vector<float>(8, 0.0f), {1, 2, 3, 4, 5, 6, 7, 100}}};
  c.base = 0;
  expect_near(c.run("arcee_fusion"), {0, 0, 0, 0, 0, 0, 0, 100});
}

TEST(Passthrough, ScaleAndExactlyOneInput) {
  Case c{{{1, 2}}, {{{"scale", 0.5}}}};
  expect_near(c.run("passthrough"), {0.5f, 1.0f});
  Case two{{{1, 2}, {3, 4}}};
  EXPECT_THROW(two.run("passthrough"), Error);
}

TEST(Ram, UniqueKeptSharedAveraged) {
  // tau1 = [1,0,2], tau2 = [3,0,0]: e0 shared -> (1+3)/2; e2 unique -> 2
  Case c{{{0, 0, 0}, {1, 0, 2}, {3, 0, 0}}};
  c.base = 0;
  expect_near(c.run("ram"), {2, 0, 2});
  // ramplus_tl: rho clamps to alpha 0.2 for both -> lambda = 1 + 0.1*0.2 = 1.02 on unique entries
  expect_near(c.run("ramplus_tl"), {2, 0, 2.04f});
}

TEST(Methods, MissingBaseIsAClearError) {
  Case c{{{1}, {2}}, {{{"weight", 1}}, {{"weight", 1}}}};
  try {
    c.run("ties");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("base_model"), std::string::npos);
  }
}

TEST(Rng, UniformAndKeyed) {
  uint64_t k = rng_key(1, "a", 0);
  double mean = 0;
  for (int i = 0; i < 10000; ++i) {
    double u = rng_uniform(k, i);
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    mean += u;
  }
  EXPECT_NEAR(mean / 10000, 0.5, 0.01);
  EXPECT_NE(rng_key(1, "a", 0), rng_key(1, "b", 0));
  EXPECT_NE(rng_key(1, "a", 0), rng_key(1, "a", 1));
  EXPECT_EQ(rng_uniform(k, 5), rng_uniform(k, 5));
}

}  // namespace
}  // namespace evomerge

namespace evomerge {
namespace {

TEST(Selection, RadixSelectMatchesNthElement) {
  // Values with many ties (bf16-like grid), negatives, zeros of both signs.
  std::vector<float> v(5000);
  uint64_t x = 12345;
  for (auto& f : v) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    int q = static_cast<int>((x >> 33) % 41) - 20;
    f = q == 0 ? ((x >> 20) & 1 ? -0.0f : 0.0f) : static_cast<float>(q) * 0.125f;
  }
  v[17] = 1e30f;
  v[18] = -1e-30f;
  for (size_t r : {size_t{0}, size_t{1}, size_t{17}, size_t{2499}, size_t{2500}, size_t{4998}, size_t{4999}}) {
    RankValue a = rank_value(v.data(), v.size(), r), b = rank_value_reference(v.data(), v.size(), r);
    EXPECT_EQ(a.value, b.value) << r;
    EXPECT_EQ(a.less, b.less) << r;
    EXPECT_EQ(a.equal, b.equal) << r;
  }
  std::vector<float> absv(v.size());
  for (size_t i = 0; i < v.size(); ++i) absv[i] = std::fabs(v[i]);
  for (size_t r : {size_t{0}, size_t{1200}, size_t{4999}}) {
    RankValue a = rank_value_of_abs(v.data(), v.size(), r), b = rank_value_reference(absv.data(), absv.size(), r);
    EXPECT_EQ(a.value, b.value) << r;
    EXPECT_EQ(a.less, b.less) << r;
    EXPECT_EQ(a.equal, b.equal) << r;
  }
  float one[1] = {-3.5f};
  EXPECT_EQ(rank_value(one, 1, 0).value, -3.5f);
}

// Blocks of a selection handed out in an order unlike a serial loop (last first), as threads would.
struct ReversedParallelFor : ParallelFor {
  mutable size_t calls = 0;
  void run(size_t n_chunks, const std::function<void(size_t)>& fn) const override {
    ++calls;
    for (size_t c = n_chunks; c-- > 0;) fn(c);
  }
};

TEST(Selection, ParallelAbsSelectMatchesNthElement) {
  // 2.5 M values: three histogram blocks, the last partial.
  std::vector<float> v(2'500'000), absv(v.size());
  uint64_t x = 777;
  for (size_t i = 0; i < v.size(); ++i) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    v[i] = static_cast<float>(static_cast<int>((x >> 33) % 2001) - 1000) * 1e-3f;
    absv[i] = std::fabs(v[i]);
  }
  ReversedParallelFor par;
  for (size_t r : {size_t{0}, size_t{1'048'576}, size_t{2'000'000}, v.size() - 1}) {
    RankValue a = rank_value_of_abs(v.data(), v.size(), r, &par), b = rank_value_reference(absv.data(), absv.size(), r);
    EXPECT_EQ(a.value, b.value) << r;
    EXPECT_EQ(a.less, b.less) << r;
    EXPECT_EQ(a.equal, b.equal) << r;
  }
  EXPECT_EQ(par.calls, 4u * 3u);  // three passes per selection, each through the ParallelFor
}

}  // namespace
}  // namespace evomerge
