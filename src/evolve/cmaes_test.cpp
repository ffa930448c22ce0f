#include "evolve/cmaes.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <numbers>
#include <string>

#include "common/error.h"

using evomerge::Cmaes;
using evomerge::CmaesOptions;
using evomerge::CmaesParams;
using evomerge::StopReason;

namespace {

// The table prints 5-6 significant digits; accept 1e-6 relative or half a unit of the last printed
// digit, whichever is larger (so the test checks every digit the table gives, no more).
void expect_printed(double actual, const std::string& printed, const char* what, int n) {
  const double v = std::stod(printed);
  std::string mant = printed.substr(0, printed.find_first_of("eE"));
  const auto dot = mant.find('.');
  int decimals = dot == std::string::npos ? 0 : static_cast<int>(mant.size() - dot - 1);
  int exp10 = 0;
  if (printed.find_first_of("eE") != std::string::npos)
    exp10 = std::stoi(printed.substr(printed.find_first_of("eE") + 1));
  const double half_unit = 0.5 * std::pow(10.0, exp10 - decimals);
  const double tol = std::max(1e-6 * std::abs(v), half_unit * (1 + 1e-9));
  EXPECT_NEAR(actual, v, tol) << what << " at n=" << n;
}

struct Anchor {
  int n, lambda, mu;
  const char *mueff, *cs, *ds, *cc, *c1, *cmu, *w1, *sum_w_neg, *chi_n;
  int eig;
};

// cmaes.md section 1.2, "Tutorial formulas" table.
const Anchor kAnchors[] = {
    {2, 6, 3, "2.02861", "0.446205", "1.44620", "0.624555", "0.154815", "0.0578591", "0.637043",
     "-2.20732", "1.25427", 1},
    {5, 8, 4, "2.60018", "0.365088", "1.36509", "0.450200", "0.0472923", "0.0381692", "0.529930",
     "-2.23902", "2.12852", 1},
    {10, 10, 5, "3.16730", "0.284429", "1.28443", "0.294990", "0.0152838", "0.0201543", "0.456273",
     "-1.75834", "3.08473", 1},
    {20, 12, 6, "3.72946", "0.199428", "1.19943", "0.171767", "0.00437235", "0.0081914", "0.402403",
     "-1.53377", "4.41677", 1},
    {40, 15, 7, "4.54092", "0.132031", "1.13203", "0.0930092", "0.00116943", "0.0031225",
     "0.344796", "-1.37452", "6.28522", 1},
    {200, 19, 9, "5.64757", "0.036305", "1.03631", "0.0197408", "4.93494e-05", "0.000187438",
     "0.290678", "-1.26328", "14.1245", 2},
};

}  // namespace

TEST(CmaesParams, DefaultsMatchTheAnchorTable) {
  for (const auto& a : kAnchors) {
    const auto p = CmaesParams::defaults(a.n);
    EXPECT_EQ(p.lambda, a.lambda) << a.n;
    EXPECT_EQ(p.mu, a.mu) << a.n;
    expect_printed(p.mueff, a.mueff, "mueff", a.n);
    expect_printed(p.cs, a.cs, "c_sigma", a.n);
    expect_printed(p.ds, a.ds, "d_sigma", a.n);
    expect_printed(p.cc, a.cc, "c_c", a.n);
    expect_printed(p.c1, a.c1, "c_1", a.n);
    expect_printed(p.cmu, a.cmu, "c_mu", a.n);
    expect_printed(p.weights[0], a.w1, "w_1", a.n);
    expect_printed(p.sum_w_neg, a.sum_w_neg, "sum w-", a.n);
    expect_printed(p.chi_n, a.chi_n, "E||N||", a.n);
    EXPECT_EQ(p.eigen_gap, a.eig) << a.n;
    // Positive weights sum to 1 and decrease; the rest are <= 0.
    double pos = 0;
    for (int i = 0; i < p.mu; ++i) pos += p.weights[i];
    EXPECT_NEAR(pos, 1.0, 1e-14);
    for (int i = 1; i < p.lambda; ++i) EXPECT_LT(p.weights[i], p.weights[i - 1]);
    for (int i = p.mu; i < p.lambda; ++i) EXPECT_LE(p.weights[i], 0.0);
  }
}

TEST(CmaesParams, SeparableRatesMatchPycma) {
  // cmaes.md section 1.2, pycma 4.4.0 column "sep: c_1 / c_mu / c_c".
  const struct {
    int n;
    const char *c1, *cmu, *cc;
  } rows[] = {
      {2, "0.171153", "0.08898", "0.637691"},     {5, "0.100078", "0.0809983", "0.494812"},
      {10, "0.0600915", "0.0715158", "0.363662"}, {20, "0.034328", "0.0565386", "0.252595"},
      {40, "0.0189528", "0.0445641", "0.173117"}, {200, "0.00437996", "0.0157084", "0.0727447"},
  };
  for (const auto& r : rows) {
    const auto p = CmaesParams::defaults(r.n, 0, true, true);
    expect_printed(p.c1, r.c1, "sep c_1", r.n);
    expect_printed(p.cmu, r.cmu, "sep c_mu", r.n);
    expect_printed(p.cc, r.cc, "sep c_c", r.n);
  }
}

TEST(CmaesParams, PassiveHasNoNegativeWeightsAndLambdaOverride) {
  const auto p = CmaesParams::defaults(10, 20, /*active=*/false);
  EXPECT_EQ(p.lambda, 20);
  EXPECT_EQ(p.mu, 10);
  EXPECT_EQ(p.sum_w_neg, 0.0);
  for (int i = p.mu; i < p.lambda; ++i) EXPECT_EQ(p.weights[i], 0.0);
}

// ---------------------------------------------------------------------------------------------

namespace {

using Fn = std::function<double(const Eigen::VectorXd&)>;

double sphere(const Eigen::VectorXd& x) {
  return x.squaredNorm();
}
double ellipsoid(const Eigen::VectorXd& x) {
  const auto n = x.size();
  double f = 0;
  for (Eigen::Index i = 0; i < n; ++i)
    f += std::pow(1e6, static_cast<double>(i) / (n - 1)) * x[i] * x[i];
  return f;
}
double rosenbrock(const Eigen::VectorXd& x) {
  double f = 0;
  for (Eigen::Index i = 0; i + 1 < x.size(); ++i)
    f += 100 * std::pow(x[i] * x[i] - x[i + 1], 2) + std::pow(x[i] - 1, 2);
  return f;
}
double rastrigin(const Eigen::VectorXd& x) {
  double f = 10.0 * x.size();
  for (Eigen::Index i = 0; i < x.size(); ++i)
    f += x[i] * x[i] - 10 * std::cos(2 * std::numbers::pi * x[i]);
  return f;
}

// Runs to completion; returns the optimiser.
Cmaes run(const Fn& f, Eigen::VectorXd x0, double sigma0, CmaesOptions opt) {
  Cmaes es(x0, sigma0, opt);
  while (!es.stopped()) {
    const auto& X = es.ask();
    std::vector<double> fx(X.size());
    for (size_t k = 0; k < X.size(); ++k) fx[k] = f(X[k]);
    es.tell(fx);
  }
  return es;
}

// Evaluations to reach f < 1e-8 (or -1) for each seed.
std::vector<int64_t> evals_to_target(const Fn& f, int n, int seeds, CmaesOptions base) {
  std::vector<int64_t> out;
  for (int s = 0; s < seeds; ++s) {
    CmaesOptions opt = base;
    opt.seed = 1000 + s;
    opt.ftarget = 1e-8;
    opt.max_fevals = 100000;
    auto es = run(f, Eigen::VectorXd::Constant(n, 3.0), 1.0, opt);
    out.push_back(es.stop_reason() == StopReason::FTarget ? es.fevals() : -1);
  }
  return out;
}

int64_t median_of(std::vector<int64_t> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

// Median evaluations to f < 1e-8 at n = 10 from x0 = 3, sigma0 = 1 over 11 seeds, against the
// published CMA-ES figures (sphere ~1,500, ellipsoid 1e6 ~4,200, Rosenbrock ~5,300), within 15%.
TEST(Cmaes, SphereEvaluationsNearPublished) {
  const auto e = evals_to_target(sphere, 10, 11, {});
  for (auto v : e) EXPECT_GT(v, 0);
  const auto m = median_of(e);
  RecordProperty("median_evals", static_cast<int>(m));
  std::printf("sphere n=10 median evaluations: %lld\n", static_cast<long long>(m));
  EXPECT_NEAR(static_cast<double>(m), 1500.0, 0.15 * 1500);
}

TEST(Cmaes, EllipsoidEvaluationsNearPublished) {
  const auto e = evals_to_target(ellipsoid, 10, 11, {});
  for (auto v : e) EXPECT_GT(v, 0);
  const auto m = median_of(e);
  std::printf("ellipsoid n=10 median evaluations: %lld\n", static_cast<long long>(m));
  EXPECT_NEAR(static_cast<double>(m), 4200.0, 0.15 * 4200);
}

TEST(Cmaes, RosenbrockEvaluationsNearPublished) {
  const auto e = evals_to_target(rosenbrock, 10, 11, {});
  const auto m = median_of(e);
  std::printf("rosenbrock n=10 median evaluations: %lld\n", static_cast<long long>(m));
  EXPECT_GT(m, 0);
  EXPECT_NEAR(static_cast<double>(m), 5300.0, 0.15 * 5300);
}

TEST(Cmaes, ActiveUpdateBeatsPassiveOnEllipsoid) {
  CmaesOptions passive;
  passive.active = false;
  const auto a = median_of(evals_to_target(ellipsoid, 10, 5, {}));
  const auto p = median_of(evals_to_target(ellipsoid, 10, 5, passive));
  std::printf("ellipsoid n=10 median evaluations: active %lld passive %lld\n",
              static_cast<long long>(a), static_cast<long long>(p));
  EXPECT_LT(a, p);
}

TEST(Cmaes, SeparableModeSolvesSeparableEllipsoidAt100D) {
  CmaesOptions opt;
  opt.separable = true;
  opt.ftarget = 1e-8;
  opt.max_fevals = 200000;
  opt.seed = 3;
  const auto es = run(ellipsoid, Eigen::VectorXd::Constant(100, 3.0), 1.0, opt);
  std::printf("sep-CMA ellipsoid n=100: %lld evaluations\n", static_cast<long long>(es.fevals()));
  EXPECT_EQ(es.stop_reason(), StopReason::FTarget);
  EXPECT_EQ(es.covariance().cols(), 1);  // only the diagonal is held
  // The learned diagonal follows the ellipsoid's axis scales: variance falls along i.
  EXPECT_GT(es.covariance()(0, 0) / es.covariance()(99, 0), 1e4);
}

TEST(Cmaes, IpopFindsRastriginOptimumMoreOften) {
  auto successes = [](int restarts) {
    int ok = 0;
    for (int s = 0; s < 8; ++s) {
      CmaesOptions opt;
      opt.seed = 77 + s;
      opt.ftarget = 1e-8;
      opt.max_fevals = 60000;
      opt.restarts = restarts;
      opt.lower.assign(5, -5.12);
      opt.upper.assign(5, 5.12);
      opt.restart_uniform = true;
      const auto es = run(rastrigin, Eigen::VectorXd::Constant(5, 3.0), 2.0, opt);
      ok += es.stop_reason() == StopReason::FTarget;
    }
    return ok;
  };
  const int plain = successes(0), ipop = successes(9);
  std::printf("rastrigin n=5 successes out of 8: plain %d, IPOP %d\n", plain, ipop);
  EXPECT_GT(ipop, plain);
  EXPECT_GE(ipop, 6);
}

TEST(Cmaes, IpopDoublesLambdaOnRestart) {
  CmaesOptions opt;
  opt.restarts = 2;
  opt.tol_flat_fitness = 0;  // a constant f stops each run after one generation
  opt.seed = 9;
  Cmaes es(Eigen::VectorXd::Zero(4), 1.0, opt);
  std::vector<int> lambdas;
  while (!es.stopped()) {
    const auto& X = es.ask();
    lambdas.push_back(static_cast<int>(X.size()));
    es.tell(std::vector<double>(X.size(), 1.0));
  }
  EXPECT_EQ(lambdas, (std::vector<int>{8, 16, 32}));
  EXPECT_EQ(es.stop_reason(), StopReason::FlatFitness);
  EXPECT_EQ(es.restarts_done(), 2);
}

TEST(Cmaes, TerminationSaysWhichCriterionFired) {
  {
    CmaesOptions opt;
    opt.max_fevals = 100;
    const auto es = run(sphere, Eigen::VectorXd::Constant(2, 3.0), 1.0, opt);
    EXPECT_EQ(es.stop_reason(), StopReason::MaxFevals);
    EXPECT_EQ(es.fevals(), 102);  // 17 generations of 6
  }
  {
    CmaesOptions opt;
    const auto es =
        run([](const Eigen::VectorXd&) { return 0.5; }, Eigen::VectorXd::Zero(3), 1.0, opt);
    EXPECT_EQ(es.stop_reason(), StopReason::FlatFitness);
    EXPECT_EQ(es.generation(), 2);  // tolerated once, stops on the second flat generation
  }
  {
    CmaesOptions opt;  // sphere with no target: ends on a tolerance, not the budget
    const auto es = run(sphere, Eigen::VectorXd::Constant(2, 3.0), 1.0, opt);
    EXPECT_EQ(es.stop_reason(), StopReason::TolFun);
    EXPECT_LT(es.best_f(), 1e-11);
  }
  {
    CmaesOptions opt;
    opt.tolfun = 0;
    opt.tol_flat_fitness = -1;
    opt.tolx = 1e-6;
    const auto es = run(sphere, Eigen::VectorXd::Constant(2, 3.0), 1.0, opt);
    EXPECT_EQ(es.stop_reason(), StopReason::TolX);
  }
  {
    CmaesOptions opt;
    opt.max_generations = 5;
    const auto es = run(sphere, Eigen::VectorXd::Constant(2, 3.0), 1.0, opt);
    EXPECT_EQ(es.stop_reason(), StopReason::MaxGenerations);
    EXPECT_EQ(es.generation(), 5);
  }
  {
    CmaesOptions opt;  // f decreasing without bound as x grows: sigma diverges
    const auto es =
        run([](const Eigen::VectorXd& x) { return -x.sum(); }, Eigen::VectorXd::Zero(2), 1.0, opt);
    EXPECT_EQ(es.stop_reason(), StopReason::TolUpSigma);
  }
  EXPECT_EQ(evomerge::stop_reason_name(StopReason::ConditionCov), "conditioncov");
}

TEST(Cmaes, BoundsKeepEveryPointFeasibleAndReachTheBoundary) {
  CmaesOptions opt;
  opt.lower.assign(3, 0.0);
  opt.upper.assign(3, 1.0);
  opt.max_fevals = 3000;
  opt.seed = 4;
  // Optimum (2, 0.5, -1) lies outside the box in coordinates 0 and 2: the box optimum is (1, .5,
  // 0).
  Cmaes es(Eigen::VectorXd::Constant(3, 0.5), 0.3, opt);
  while (!es.stopped()) {
    const auto& X = es.ask();
    std::vector<double> f;
    for (const auto& x : X) {
      for (int i = 0; i < 3; ++i) {
        EXPECT_GE(x[i], 0.0);
        EXPECT_LE(x[i], 1.0);
      }
      f.push_back(std::pow(x[0] - 2, 2) + std::pow(x[1] - 0.5, 2) + std::pow(x[2] + 1, 2));
    }
    es.tell(f);
  }
  EXPECT_NEAR(es.best_x()[0], 1.0, 1e-4);
  EXPECT_NEAR(es.best_x()[1], 0.5, 1e-4);
  EXPECT_NEAR(es.best_x()[2], 0.0, 1e-4);
  EXPECT_NEAR(es.mean_x()[1], 0.5, 1e-3);
  // The genotypes behind the points are the untransformed samples (some outside the box).
  EXPECT_EQ(es.genotypes().size(), es.params().lambda);
}

TEST(Cmaes, AskTwiceReturnsTheSamePointsAndBadTellFails) {
  Cmaes es(Eigen::VectorXd::Zero(3), 1.0, {});
  const auto first = es.ask();
  const auto& second = es.ask();
  ASSERT_EQ(first.size(), second.size());
  for (size_t k = 0; k < first.size(); ++k) EXPECT_EQ(first[k], second[k]);
  EXPECT_THROW(es.tell({1.0, 2.0}), evomerge::Error);
  EXPECT_THROW(Cmaes(Eigen::VectorXd::Zero(3), -1.0, {}), evomerge::Error);
  CmaesOptions bad;
  bad.lower = {0, 0};
  bad.upper = {1, 1};
  EXPECT_THROW(Cmaes(Eigen::VectorXd::Zero(3), 1.0, bad), evomerge::Error);
}

TEST(Cmaes, NanFitnessRanksWorst) {
  CmaesOptions opt;
  opt.max_fevals = 2000;
  opt.seed = 11;
  // Half the space is "failed" (NaN); the optimum at 1 lies in the valid half.
  const auto es = run(
      [](const Eigen::VectorXd& x) {
        return x[0] < 0 ? std::nan("") : (x.array() - 1).square().sum();
      },
      Eigen::VectorXd::Constant(2, 2.0), 0.5, opt);
  EXPECT_LT(es.best_f(), 1e-6);
}

// Resume: N generations, serialise, restore into a new object, continue -> bit-identical to the
// uninterrupted run (full and separable modes, with bounds and IPOP restarts in play).
namespace {
void check_resume(CmaesOptions opt, int n, int split_generation) {
  auto f = [](const Eigen::VectorXd& x) { return rastrigin(x) + 0.1 * x[0]; };
  auto step = [&](Cmaes& es, std::vector<double>& trace) {
    const auto& X = es.ask();
    std::vector<double> fx;
    for (const auto& x : X) fx.push_back(f(x)), trace.push_back(fx.back());
    es.tell(fx);
  };
  std::vector<double> trace_a, trace_b;
  Cmaes a(Eigen::VectorXd::Constant(n, 1.5), 1.0, opt);
  while (!a.stopped()) step(a, trace_a);
  ASSERT_GT(a.generation(), split_generation + 5);

  Cmaes first(Eigen::VectorXd::Constant(n, 1.5), 1.0, opt);
  for (int g = 0; g < split_generation; ++g) step(first, trace_b);
  const auto blob = first.to_blob();
  const auto json_text = first.to_json().dump();
  Cmaes b = Cmaes::from_blob(blob);
  Cmaes c = Cmaes::from_json(nlohmann::json::parse(json_text));
  std::vector<double> trace_c = trace_b;
  while (!b.stopped()) step(b, trace_b);
  while (!c.stopped()) step(c, trace_c);

  ASSERT_EQ(trace_a.size(), trace_b.size());
  for (size_t i = 0; i < trace_a.size(); ++i)
    ASSERT_EQ(trace_a[i], trace_b[i]) << i;  // bit for bit
  ASSERT_EQ(trace_a, trace_c);
  EXPECT_EQ(a.stop_reason(), b.stop_reason());
  EXPECT_EQ(a.restarts_done(), b.restarts_done());
  EXPECT_EQ(a.sigma(), b.sigma());
  EXPECT_EQ(a.mean(), b.mean());
  EXPECT_EQ(a.covariance(), b.covariance());
  EXPECT_EQ(a.best_x(), b.best_x());
  EXPECT_EQ(a.to_json(), b.to_json());
}
}  // namespace

TEST(Cmaes, ResumeIsBitExactFull) {
  CmaesOptions opt;
  opt.seed = 123;
  opt.lower.assign(6, -5.0);
  opt.upper.assign(6, 5.0);
  opt.restarts = 2;
  opt.restart_uniform = true;
  opt.max_fevals = 6000;
  opt.eigen_gap = 3;  // exercise the lazy eigendecomposition across the split
  check_resume(opt, 6, 37);
}

TEST(Cmaes, ResumeIsBitExactSeparable) {
  CmaesOptions opt;
  opt.seed = 5;
  opt.separable = true;
  opt.max_fevals = 3000;
  opt.restarts = 1;
  check_resume(opt, 12, 20);
}

TEST(Cmaes, CorruptStateFailsClearly) {
  Cmaes es(Eigen::VectorXd::Zero(3), 1.0, {});
  auto j = es.to_json();
  j["mean"] = {1.0, 2.0};
  EXPECT_THROW(Cmaes::from_json(j), evomerge::Error);
  EXPECT_THROW(Cmaes::from_blob({0xff, 0x00, 0x12}), evomerge::Error);
  auto k = es.to_json();
  k.erase("C");
  EXPECT_THROW(Cmaes::from_json(k), evomerge::Error);
}
