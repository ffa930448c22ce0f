#include "evolve/cmaes.h"

#include <Eigen/Eigenvalues>
#include <algorithm>
#include <cmath>
#include <numeric>

#include "common/error.h"

namespace evomerge {

// ---------------------------------------------------------------------------------------------
// Strategy parameters

CmaesParams CmaesParams::defaults(int n, int lambda, bool active, bool separable) {
  EM_ASSERT(n >= 1);
  CmaesParams p;
  p.n = n;
  p.lambda =
      lambda > 0 ? lambda : 4 + static_cast<int>(std::floor(3 * std::log(static_cast<double>(n))));
  EM_ASSERT(p.lambda >= 2);
  p.mu = p.lambda / 2;
  const double dn = n;

  std::vector<double> wp(p.lambda);  // w'_i = ln((lambda+1)/2) - ln i
  for (int i = 0; i < p.lambda; ++i) wp[i] = std::log((p.lambda + 1) / 2.0) - std::log(i + 1.0);
  double pos_sum = 0, pos_sq = 0, neg_sum = 0, neg_sq = 0;
  for (int i = 0; i < p.mu; ++i) pos_sum += wp[i], pos_sq += wp[i] * wp[i];
  for (int i = p.mu; i < p.lambda; ++i) neg_sum += wp[i], neg_sq += wp[i] * wp[i];
  p.mueff = pos_sum * pos_sum / pos_sq;
  p.mueff_neg = neg_sq > 0 ? neg_sum * neg_sum / neg_sq : 0;

  p.cm = 1;
  p.cs = (p.mueff + 2) / (dn + p.mueff + 5);
  p.ds = 1 + 2 * std::max(0.0, std::sqrt((p.mueff - 1) / (dn + 1)) - 1) + p.cs;
  const double alpha_cov = 2;
  if (!separable) {
    p.cc = (4 + p.mueff / dn) / (dn + 4 + 2 * p.mueff / dn);
    p.c1 = alpha_cov / ((dn + 1.3) * (dn + 1.3) + p.mueff);
    p.cmu = std::min(1 - p.c1, alpha_cov * (p.mueff - 2 + 1 / p.mueff) /
                                   ((dn + 2) * (dn + 2) + alpha_cov * p.mueff / 2));
  } else {
    // pycma's sep-CMA rates: only n free covariance parameters, so they learn ~ (n+2)/3 faster.
    const double sq = std::sqrt(dn);
    p.cc = (1 + 1 / dn + p.mueff / dn) / (sq + 1 / dn + 2 * p.mueff / dn);
    p.c1 = 1 / (dn + 2 * sq + p.mueff / dn);
    p.cmu = std::min(1 - p.c1, (0.25 + p.mueff + 1 / p.mueff - 2) / (dn + 4 * sq + p.mueff / 2));
  }

  p.weights.assign(p.lambda, 0.0);
  for (int i = 0; i < p.mu; ++i) p.weights[i] = wp[i] / pos_sum;
  if (active && neg_sum < 0) {
    const double alpha_mu = 1 + p.c1 / p.cmu;
    const double alpha_mueff = 1 + 2 * p.mueff_neg / (p.mueff + 2);
    const double alpha_posdef = (1 - p.c1 - p.cmu) / (dn * p.cmu);
    const double scale = std::min({alpha_mu, alpha_mueff, alpha_posdef});
    for (int i = p.mu; i < p.lambda; ++i) p.weights[i] = scale * wp[i] / -neg_sum;
  }
  p.sum_w_neg = 0;
  for (int i = p.mu; i < p.lambda; ++i) p.sum_w_neg += p.weights[i];

  p.chi_n = std::sqrt(dn) * (1 - 1 / (4 * dn) + 1 / (21 * dn * dn));
  p.eigen_gap = std::max(1, static_cast<int>(std::floor(1 / (10 * dn * (p.c1 + p.cmu)))));
  return p;
}

std::string_view stop_reason_name(StopReason reason) {
  switch (reason) {
    case StopReason::None:
      return "none";
    case StopReason::MaxFevals:
      return "maxfevals";
    case StopReason::MaxIter:
      return "maxiter";
    case StopReason::FTarget:
      return "ftarget";
    case StopReason::TolFun:
      return "tolfun";
    case StopReason::TolX:
      return "tolx";
    case StopReason::TolUpSigma:
      return "tolupsigma";
    case StopReason::ConditionCov:
      return "conditioncov";
    case StopReason::NoEffectAxis:
      return "noeffectaxis";
    case StopReason::NoEffectCoord:
      return "noeffectcoord";
    case StopReason::FlatFitness:
      return "flatfitness";
    case StopReason::Stagnation:
      return "stagnation";
    case StopReason::MaxGenerations:
      return "maxgenerations";
    case StopReason::Manual:
      return "manual";
  }
  return "?";
}

bool stop_is_global(StopReason reason) {
  return reason == StopReason::MaxFevals || reason == StopReason::FTarget ||
         reason == StopReason::MaxGenerations || reason == StopReason::Manual;
}

// ---------------------------------------------------------------------------------------------
// Construction and runs

Cmaes::Cmaes(const Eigen::VectorXd& x0, double sigma0, CmaesOptions options)
    : options_(std::move(options)) {
  const auto n = x0.size();
  if (n < 1) fail("cmaes", "x0 is empty");
  if (!(sigma0 > 0) || !std::isfinite(sigma0))
    fail("cmaes", "sigma0 must be positive, got {}", sigma0);
  if (!options_.lower.empty() || !options_.upper.empty()) {
    if (options_.lower.size() != static_cast<size_t>(n) ||
        options_.upper.size() != static_cast<size_t>(n))
      fail("cmaes", "bounds have {} / {} entries for dimension {}", options_.lower.size(),
           options_.upper.size(), n);
    bounds_ = BoxTransform(options_.lower, options_.upper);
  }
  if (options_.lambda != 0 && options_.lambda < 2)
    fail("cmaes", "lambda must be >= 2, got {}", options_.lambda);
  if (!(options_.incpopsize >= 1))
    fail("cmaes", "incpopsize must be >= 1, got {}", options_.incpopsize);
  for (Eigen::Index i = 0; i < n; ++i)
    if (!std::isfinite(x0[i])) fail("cmaes", "x0[{}] is not finite", i);
  rng_ = Rng(options_.seed);
  x0_ = bounds_.inverse(x0);
  sigma0_ = sigma0;
  best_x_ = x0;
  start_run(x0_, options_.lambda);
}

void Cmaes::start_run(const Eigen::VectorXd& x0_unbounded, int lambda) {
  const int n = static_cast<int>(x0_unbounded.size());
  params_ = CmaesParams::defaults(n, lambda, options_.active, options_.separable);
  if (options_.eigen_gap > 0) params_.eigen_gap = options_.eigen_gap;
  mean_ = x0_unbounded;
  sigma_ = sigma0_;
  if (options_.separable) {
    C_ = Eigen::MatrixXd::Ones(n, 1);
    B_.resize(0, 0);
  } else {
    C_ = Eigen::MatrixXd::Identity(n, n);
    B_ = Eigen::MatrixXd::Identity(n, n);
  }
  D_ = Eigen::VectorXd::Ones(n);
  ps_ = Eigen::VectorXd::Zero(n);
  pc_ = Eigen::VectorXd::Zero(n);
  eigen_generation_ = 0;
  run_generation_ = 0;
  flat_count_ = 0;
  hist_best_.clear();
  hist_median_.clear();
  const double dn = n, dl = params_.lambda;
  max_iter_ = options_.max_iter >= 0
                  ? options_.max_iter
                  : static_cast<int64_t>(100 + 150 * (dn + 3) * (dn + 3) / std::sqrt(dl));
  tol_stagnation_ = options_.tol_stagnation >= 0
                        ? options_.tol_stagnation
                        : static_cast<int64_t>(100 + 100 * std::pow(dn, 1.5) / dl);
  asked_ = false;
  arz_.clear();
  arx_.clear();
}

const std::vector<Eigen::VectorXd>& Cmaes::ask() {
  EM_ASSERT_MSG(!stopped(), "ask() after the optimiser stopped");
  if (asked_) return arx_;
  const int n = params_.n;
  arz_.assign(params_.lambda, Eigen::VectorXd());
  arx_.assign(params_.lambda, Eigen::VectorXd());
  Eigen::VectorXd z(n);
  for (int k = 0; k < params_.lambda; ++k) {
    for (int i = 0; i < n; ++i) z[i] = rng_.normal();
    Eigen::VectorXd y = options_.separable ? Eigen::VectorXd(D_.cwiseProduct(z))
                                           : Eigen::VectorXd(B_ * D_.cwiseProduct(z));
    arz_[k] = mean_ + sigma_ * y;
    arx_[k] = bounds_.transform(arz_[k]);
  }
  asked_ = true;
  return arx_;
}

void Cmaes::update_eigensystem(bool force) {
  const int n = params_.n;
  if (options_.separable) {
    for (int i = 0; i < n; ++i) D_[i] = std::sqrt(std::max(C_(i, 0), 1e-300));
    eigen_generation_ = run_generation_;
    return;
  }
  if (!force && run_generation_ - eigen_generation_ < params_.eigen_gap) return;
  eigen_generation_ = run_generation_;
  C_ = (0.5 * (C_ + C_.transpose())).eval();
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> solver(C_);
  EM_ASSERT_MSG(solver.info() == Eigen::Success, "covariance eigendecomposition failed");
  Eigen::VectorXd ev = solver.eigenvalues();
  // Numerical noise can push the smallest eigenvalues to <= 0; keep C positive definite with a
  // floor far below the conditioncov threshold (so that criterion, not a NaN, ends the run).
  const double floor = std::max(ev.maxCoeff(), 1e-300) * 1e-20;
  for (int i = 0; i < n; ++i) ev[i] = std::max(ev[i], floor);
  B_ = solver.eigenvectors();
  D_ = ev.cwiseSqrt();
}

void Cmaes::tell(const std::vector<double>& fitness) {
  EM_ASSERT_MSG(asked_, "tell() without ask()");
  EM_ASSERT(!stopped());
  const int lambda = params_.lambda;
  if (fitness.size() != static_cast<size_t>(lambda))
    fail("cmaes", "tell() got {} fitness values for a population of {}", fitness.size(), lambda);

  // Rank by (f, index); NaN counts as +inf.
  std::vector<double> f(fitness);
  for (auto& v : f)
    if (std::isnan(v)) v = std::numeric_limits<double>::infinity();
  std::vector<int> order(lambda);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return f[a] < f[b]; });
  std::vector<double> sorted_f(lambda);
  for (int i = 0; i < lambda; ++i) sorted_f[i] = f[order[i]];

  fevals_ += lambda;
  if (sorted_f[0] < best_f_ || best_x_.size() == 0) {
    best_f_ = sorted_f[0];
    best_x_ = arx_[order[0]];
  }
  update_distribution(order);
  ++run_generation_;
  ++generation_;
  update_eigensystem(false);
  asked_ = false;
  record_generation(sorted_f);
  stop_or_restart(sorted_f);
}

// Mean, evolution paths, covariance (rank-one and active rank-mu) and step size from the ranked
// samples: order[i] is the index of the i-th best sample of this generation.
void Cmaes::update_distribution(const std::vector<int>& order) {
  const int n = params_.n, lambda = params_.lambda;
  // Steps y_k = (x_k - m) / sigma of the ranked samples, and C^{-1/2} y_k.
  std::vector<Eigen::VectorXd> y(lambda);
  for (int i = 0; i < lambda; ++i) y[i] = (arz_[order[i]] - mean_) / sigma_;
  auto inv_sqrt_c = [&](const Eigen::VectorXd& v) -> Eigen::VectorXd {
    if (options_.separable) return v.cwiseQuotient(D_);
    return B_ * (B_.transpose() * v).cwiseQuotient(D_);
  };

  Eigen::VectorXd yw = Eigen::VectorXd::Zero(n);
  for (int i = 0; i < params_.mu; ++i) yw += params_.weights[i] * y[i];
  mean_ += params_.cm * sigma_ * yw;

  const Eigen::VectorXd c_inv_yw = inv_sqrt_c(yw);
  ps_ =
      (1 - params_.cs) * ps_ + std::sqrt(params_.cs * (2 - params_.cs) * params_.mueff) * c_inv_yw;
  // h_sigma with the tutorial's bias correction for the zero start; g = completed generations.
  const double g1 = static_cast<double>(run_generation_ + 1);
  const double ps_norm = ps_.norm();
  const bool hsig = ps_norm / std::sqrt(1 - std::pow(1 - params_.cs, 2 * g1)) <
                    (1.4 + 2.0 / (n + 1)) * params_.chi_n;
  pc_ = (1 - params_.cc) * pc_ +
        (hsig ? std::sqrt(params_.cc * (2 - params_.cc) * params_.mueff) : 0.0) * yw;

  // Active weights: negative ones rescaled so each negative step has squared Mahalanobis length n.
  std::vector<double> wo(lambda);
  double sum_w = 0;
  for (int i = 0; i < lambda; ++i) {
    const double w = params_.weights[i];
    sum_w += w;
    wo[i] = w >= 0 ? w : w * n / (inv_sqrt_c(y[i]).squaredNorm() + 1e-9);
  }
  const double delta_h = (1 - (hsig ? 1.0 : 0.0)) * params_.cc * (2 - params_.cc);
  const double decay = 1 + params_.c1 * delta_h - params_.c1 - params_.cmu * sum_w;
  if (options_.separable) {
    Eigen::VectorXd rank_mu = Eigen::VectorXd::Zero(n);
    for (int i = 0; i < lambda; ++i)
      if (wo[i] != 0) rank_mu += wo[i] * y[i].cwiseProduct(y[i]);
    C_.col(0) = decay * C_.col(0) + params_.c1 * pc_.cwiseProduct(pc_) + params_.cmu * rank_mu;
  } else {
    Eigen::MatrixXd rank_mu = Eigen::MatrixXd::Zero(n, n);
    for (int i = 0; i < lambda; ++i)
      if (wo[i] != 0) rank_mu.noalias() += wo[i] * y[i] * y[i].transpose();
    C_ = decay * C_ + params_.c1 * pc_ * pc_.transpose() + params_.cmu * rank_mu;
  }

  // CSA; the change per generation is capped at a factor e (as pycma does) against blow-ups.
  sigma_ *= std::exp(std::min(1.0, (params_.cs / params_.ds) * (ps_norm / params_.chi_n - 1)));
}

// The generation's summary (last()) and the histories the stopping criteria read, bounded.
void Cmaes::record_generation(const std::vector<double>& sorted_f) {
  const int n = params_.n, lambda = params_.lambda;
  last_ = Generation{};
  last_.generation = generation_;
  last_.restart = restart_;
  last_.lambda = lambda;
  last_.best = sorted_f.front();
  last_.worst = sorted_f.back();
  last_.median =
      lambda % 2 ? sorted_f[lambda / 2] : 0.5 * (sorted_f[lambda / 2 - 1] + sorted_f[lambda / 2]);
  last_.sigma = sigma_;

  hist_best_.push_back(last_.best);
  hist_median_.push_back(last_.median);
  const size_t tolfun_window = 10 + static_cast<size_t>(std::ceil(30.0 * n / lambda));
  const size_t stag_window = std::max<size_t>(20, static_cast<size_t>(tol_stagnation_ / 5));
  const size_t cap = std::max(tolfun_window, 2 * stag_window);
  if (hist_best_.size() > cap) {
    hist_best_.erase(hist_best_.begin(), hist_best_.begin() + (hist_best_.size() - cap));
    hist_median_.erase(hist_median_.begin(), hist_median_.begin() + (hist_median_.size() - cap));
  }
}

// Global criteria end the search; a local one ends this run and, while restarts are left, starts
// the next (IPOP: lambda times incpopsize, from x0 or a uniform point of the box).
void Cmaes::stop_or_restart(const std::vector<double>& sorted_f) {
  const int n = params_.n, lambda = params_.lambda;
  StopReason reason = StopReason::None;
  if (best_f_ <= options_.ftarget)
    reason = StopReason::FTarget;
  else if (options_.max_fevals > 0 && fevals_ >= options_.max_fevals)
    reason = StopReason::MaxFevals;
  else if (options_.max_generations > 0 && generation_ >= options_.max_generations)
    reason = StopReason::MaxGenerations;
  if (reason != StopReason::None) {
    stop_ = reason;
    return;
  }
  reason = check_local_stop(sorted_f);
  if (reason == StopReason::None) return;
  if (restart_ < options_.restarts) {
    ++restart_;
    const int next_lambda = static_cast<int>(std::lround(lambda * options_.incpopsize));
    Eigen::VectorXd x0 = x0_;
    if (options_.restart_uniform && bounds_.bounded()) {
      Eigen::VectorXd u(n);
      for (int i = 0; i < n; ++i) {
        const double lb = bounds_.lower()[i], ub = bounds_.upper()[i];
        u[i] = std::isinf(lb) ? x0_[i] : lb + (ub - lb) * rng_.uniform();
      }
      x0 = bounds_.inverse(u);
    }
    start_run(x0, next_lambda);
    last_.local_stop = reason;
  } else {
    stop_ = reason;
  }
}

StopReason Cmaes::check_local_stop(const std::vector<double>& sorted_f) {
  const int n = params_.n, lambda = params_.lambda;
  if (max_iter_ > 0 && run_generation_ >= max_iter_) return StopReason::MaxIter;

  // Flat fitness: the best equals the 75th percentile (quantised accuracies produce this).
  const int q75 = std::min(lambda - 1, static_cast<int>(0.75 * lambda));
  if (sorted_f[0] == sorted_f[q75])
    ++flat_count_;
  else
    flat_count_ = 0;
  if (options_.tol_flat_fitness >= 0 && flat_count_ > options_.tol_flat_fitness)
    return StopReason::FlatFitness;

  const size_t tolfun_window = 10 + static_cast<size_t>(std::ceil(30.0 * n / lambda));
  // Only once the best-f history window is full, so one lucky flat generation does not end a run.
  if (sorted_f.back() - sorted_f.front() < options_.tolfun && hist_best_.size() >= tolfun_window) {
    const size_t w = tolfun_window;
    const auto [lo, hi] = std::minmax_element(hist_best_.end() - w, hist_best_.end());
    if (*hi - *lo < options_.tolfun) return StopReason::TolFun;
  }

  auto c_diag = [&](int i) { return options_.separable ? C_(i, 0) : C_(i, i); };
  bool all_small = true;
  double max_cii = 0;
  for (int i = 0; i < n; ++i) {
    const double sd = sigma_ * std::sqrt(c_diag(i));
    max_cii = std::max(max_cii, c_diag(i));
    if (!(sd < options_.tolx && sigma_ * std::abs(pc_[i]) < options_.tolx)) all_small = false;
  }
  if (all_small) return StopReason::TolX;
  if (sigma_ * std::sqrt(max_cii) > options_.tolfacupx * sigma0_) return StopReason::TolUpSigma;

  const double dmax = D_.maxCoeff(), dmin = D_.minCoeff();
  if ((dmax / dmin) * (dmax / dmin) > options_.tol_condition_cov) return StopReason::ConditionCov;

  if (options_.check_no_effect) {
    const int axis = static_cast<int>(run_generation_ % n);
    bool no_effect = true;
    for (int i = 0; i < n && no_effect; ++i) {
      const double step = options_.separable ? (i == axis ? 0.1 * sigma_ * D_[axis] : 0.0)
                                             : 0.1 * sigma_ * D_[axis] * B_(i, axis);
      if (mean_[i] + step != mean_[i]) no_effect = false;
    }
    if (no_effect) return StopReason::NoEffectAxis;
    for (int i = 0; i < n; ++i)
      if (mean_[i] + 0.2 * sigma_ * std::sqrt(c_diag(i)) == mean_[i])
        return StopReason::NoEffectCoord;
  }

  if (tol_stagnation_ > 0 && run_generation_ > tol_stagnation_) {
    const size_t w = std::max<size_t>(20, static_cast<size_t>(tol_stagnation_ / 5));
    if (hist_best_.size() >= 2 * w) {
      auto median = [](std::vector<double> v) {
        std::sort(v.begin(), v.end());
        const size_t m = v.size();
        return m % 2 ? v[m / 2] : 0.5 * (v[m / 2 - 1] + v[m / 2]);
      };
      auto window = [&](const std::vector<double>& h, size_t from_end, size_t len) {
        return std::vector<double>(h.end() - from_end, h.end() - from_end + len);
      };
      const bool best_stuck =
          median(window(hist_best_, w, w)) >= median(window(hist_best_, 2 * w, w));
      const bool median_stuck =
          median(window(hist_median_, w, w)) >= median(window(hist_median_, 2 * w, w));
      if (best_stuck && median_stuck) return StopReason::Stagnation;
    }
  }
  return StopReason::None;
}

// ---------------------------------------------------------------------------------------------
// Serialisation. Doubles as JSON numbers (nlohmann writes the shortest round-trip form, so the
// values come back bit for bit); non-finite ones as the strings "inf", "-inf", "nan".

namespace {

nlohmann::json num(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return v;
}

double get_num(const nlohmann::json& j) {
  if (j.is_string()) {
    const auto s = j.get<std::string>();
    if (s == "nan") return std::numeric_limits<double>::quiet_NaN();
    if (s == "inf") return std::numeric_limits<double>::infinity();
    if (s == "-inf") return -std::numeric_limits<double>::infinity();
    fail("cmaes", "state: '{}' is not a number", s);
  }
  if (!j.is_number()) fail("cmaes", "state: expected a number, got {}", j.type_name());
  return j.get<double>();
}

nlohmann::json vec(const std::vector<double>& v) {
  nlohmann::json a = nlohmann::json::array();
  for (double x : v) a.push_back(num(x));
  return a;
}
std::vector<double> get_vec(const nlohmann::json& j) {
  if (!j.is_array()) fail("cmaes", "state: expected an array");
  std::vector<double> v;
  v.reserve(j.size());
  for (const auto& x : j) v.push_back(get_num(x));
  return v;
}
nlohmann::json evec(const Eigen::VectorXd& v) {
  return vec(std::vector<double>(v.data(), v.data() + v.size()));
}
Eigen::VectorXd get_evec(const nlohmann::json& j, Eigen::Index n) {
  const auto v = get_vec(j);
  if (static_cast<Eigen::Index>(v.size()) != n)
    fail("cmaes", "state: vector of {} entries, expected {}", v.size(), n);
  return Eigen::Map<const Eigen::VectorXd>(v.data(), n);
}
nlohmann::json emat(const Eigen::MatrixXd& m) {
  // Column-major, as Eigen stores it.
  return {{"rows", m.rows()},
          {"cols", m.cols()},
          {"data", vec(std::vector<double>(m.data(), m.data() + m.size()))}};
}
Eigen::MatrixXd get_emat(const nlohmann::json& j, Eigen::Index rows, Eigen::Index cols) {
  if (j.at("rows").get<Eigen::Index>() != rows || j.at("cols").get<Eigen::Index>() != cols)
    fail("cmaes", "state: matrix is {}x{}, expected {}x{}", j.at("rows").get<Eigen::Index>(),
         j.at("cols").get<Eigen::Index>(), rows, cols);
  const auto v = get_vec(j.at("data"));
  if (static_cast<Eigen::Index>(v.size()) != rows * cols)
    fail("cmaes", "state: matrix data has {} entries", v.size());
  return Eigen::Map<const Eigen::MatrixXd>(v.data(), rows, cols);
}

}  // namespace

nlohmann::json Cmaes::to_json() const {
  EM_ASSERT_MSG(!asked_, "serialise between tell() and ask()");
  nlohmann::json o;
  o["lambda"] = options_.lambda;
  o["active"] = options_.active;
  o["separable"] = options_.separable;
  o["lower"] = vec(options_.lower);
  o["upper"] = vec(options_.upper);
  o["seed"] = options_.seed;
  o["max_fevals"] = options_.max_fevals;
  o["max_generations"] = options_.max_generations;
  o["max_iter"] = options_.max_iter;
  o["ftarget"] = num(options_.ftarget);
  o["tolfun"] = num(options_.tolfun);
  o["tolx"] = num(options_.tolx);
  o["tolfacupx"] = num(options_.tolfacupx);
  o["tol_condition_cov"] = num(options_.tol_condition_cov);
  o["tol_flat_fitness"] = options_.tol_flat_fitness;
  o["tol_stagnation"] = options_.tol_stagnation;
  o["check_no_effect"] = options_.check_no_effect;
  o["restarts"] = options_.restarts;
  o["incpopsize"] = num(options_.incpopsize);
  o["restart_uniform"] = options_.restart_uniform;
  o["eigen_gap"] = options_.eigen_gap;

  nlohmann::json s;
  s["format"] = "evomerge-cmaes-1";
  s["options"] = o;
  s["n"] = params_.n;
  s["run_lambda"] = params_.lambda;
  const auto& r = rng_.state();
  s["rng"] = {
      {"s", {r.s[0], r.s[1], r.s[2], r.s[3]}}, {"has_spare", r.has_spare}, {"spare", num(r.spare)}};
  s["x0"] = evec(x0_);
  s["sigma0"] = num(sigma0_);
  s["mean"] = evec(mean_);
  s["sigma"] = num(sigma_);
  s["C"] = emat(C_);
  s["B"] = emat(B_);
  s["D"] = evec(D_);
  s["ps"] = evec(ps_);
  s["pc"] = evec(pc_);
  s["eigen_generation"] = eigen_generation_;
  s["fevals"] = fevals_;
  s["generation"] = generation_;
  s["run_generation"] = run_generation_;
  s["restart"] = restart_;
  s["max_iter"] = max_iter_;
  s["tol_stagnation"] = tol_stagnation_;
  s["flat_count"] = flat_count_;
  s["hist_best"] = vec(hist_best_);
  s["hist_median"] = vec(hist_median_);
  s["stop"] = std::string(stop_reason_name(stop_));
  s["best_x"] = evec(best_x_);
  s["best_f"] = num(best_f_);
  s["last"] = {{"generation", last_.generation},
               {"restart", last_.restart},
               {"lambda", last_.lambda},
               {"best", num(last_.best)},
               {"median", num(last_.median)},
               {"worst", num(last_.worst)},
               {"sigma", num(last_.sigma)},
               {"local_stop", std::string(stop_reason_name(last_.local_stop))}};
  return s;
}

namespace {
StopReason parse_stop(const std::string& s) {
  for (int r = 0; r <= static_cast<int>(StopReason::Manual); ++r)
    if (stop_reason_name(static_cast<StopReason>(r)) == s) return static_cast<StopReason>(r);
  fail("cmaes", "state: unknown stop reason '{}'", s);
}
}  // namespace

Cmaes Cmaes::from_json(const nlohmann::json& s) {
  try {
    if (s.value("format", "") != "evomerge-cmaes-1")
      fail("cmaes", "state: not an evomerge-cmaes-1 state");
    Cmaes es;
    const auto& o = s.at("options");
    auto& op = es.options_;
    op.lambda = o.at("lambda").get<int>();
    op.active = o.at("active").get<bool>();
    op.separable = o.at("separable").get<bool>();
    op.lower = get_vec(o.at("lower"));
    op.upper = get_vec(o.at("upper"));
    op.seed = o.at("seed").get<uint64_t>();
    op.max_fevals = o.at("max_fevals").get<int64_t>();
    op.max_generations = o.at("max_generations").get<int64_t>();
    op.max_iter = o.at("max_iter").get<int64_t>();
    op.ftarget = get_num(o.at("ftarget"));
    op.tolfun = get_num(o.at("tolfun"));
    op.tolx = get_num(o.at("tolx"));
    op.tolfacupx = get_num(o.at("tolfacupx"));
    op.tol_condition_cov = get_num(o.at("tol_condition_cov"));
    op.tol_flat_fitness = o.at("tol_flat_fitness").get<int>();
    op.tol_stagnation = o.at("tol_stagnation").get<int64_t>();
    op.check_no_effect = o.at("check_no_effect").get<bool>();
    op.restarts = o.at("restarts").get<int>();
    op.incpopsize = get_num(o.at("incpopsize"));
    op.restart_uniform = o.at("restart_uniform").get<bool>();
    op.eigen_gap = o.at("eigen_gap").get<int>();
    if (!op.lower.empty()) es.bounds_ = BoxTransform(op.lower, op.upper);

    const int n = s.at("n").get<int>();
    if (n < 1 || n > (1 << 24)) fail("cmaes", "state: bad dimension {}", n);
    const int lambda = s.at("run_lambda").get<int>();
    if (lambda < 2) fail("cmaes", "state: bad lambda {}", lambda);
    es.params_ = CmaesParams::defaults(n, lambda, op.active, op.separable);
    if (op.eigen_gap > 0) es.params_.eigen_gap = op.eigen_gap;
    Rng::State rs;
    const auto& rj = s.at("rng");
    for (int i = 0; i < 4; ++i) rs.s[i] = rj.at("s").at(i).get<uint64_t>();
    rs.has_spare = rj.at("has_spare").get<bool>();
    rs.spare = get_num(rj.at("spare"));
    es.rng_ = Rng::from_state(rs);
    es.x0_ = get_evec(s.at("x0"), n);
    es.sigma0_ = get_num(s.at("sigma0"));
    es.mean_ = get_evec(s.at("mean"), n);
    es.sigma_ = get_num(s.at("sigma"));
    es.C_ = op.separable ? get_emat(s.at("C"), n, 1) : get_emat(s.at("C"), n, n);
    es.B_ = op.separable ? get_emat(s.at("B"), 0, 0) : get_emat(s.at("B"), n, n);
    es.D_ = get_evec(s.at("D"), n);
    es.ps_ = get_evec(s.at("ps"), n);
    es.pc_ = get_evec(s.at("pc"), n);
    es.eigen_generation_ = s.at("eigen_generation").get<int64_t>();
    es.fevals_ = s.at("fevals").get<int64_t>();
    es.generation_ = s.at("generation").get<int64_t>();
    es.run_generation_ = s.at("run_generation").get<int64_t>();
    es.restart_ = s.at("restart").get<int>();
    es.max_iter_ = s.at("max_iter").get<int64_t>();
    es.tol_stagnation_ = s.at("tol_stagnation").get<int64_t>();
    es.flat_count_ = s.at("flat_count").get<int>();
    es.hist_best_ = get_vec(s.at("hist_best"));
    es.hist_median_ = get_vec(s.at("hist_median"));
    if (es.hist_best_.size() != es.hist_median_.size())
      fail("cmaes", "state: history lengths differ");
    es.stop_ = parse_stop(s.at("stop").get<std::string>());
    es.best_x_ = get_evec(s.at("best_x"), n);
    es.best_f_ = get_num(s.at("best_f"));
    const auto& l = s.at("last");
    es.last_.generation = l.at("generation").get<int64_t>();
    es.last_.restart = l.at("restart").get<int>();
    es.last_.lambda = l.at("lambda").get<int>();
    es.last_.best = get_num(l.at("best"));
    es.last_.median = get_num(l.at("median"));
    es.last_.worst = get_num(l.at("worst"));
    es.last_.sigma = get_num(l.at("sigma"));
    es.last_.local_stop = parse_stop(l.at("local_stop").get<std::string>());
    return es;
  } catch (const nlohmann::json::exception& e) {
    fail("cmaes", "state: {}", e.what());
  }
}

std::vector<uint8_t> Cmaes::to_blob() const {
  return nlohmann::json::to_cbor(to_json());
}

Cmaes Cmaes::from_blob(const std::vector<uint8_t>& blob) {
  nlohmann::json j;
  try {
    j = nlohmann::json::from_cbor(blob);
  } catch (const nlohmann::json::exception& e) {
    fail("cmaes", "state blob: {}", e.what());
  }
  return from_json(j);
}

}  // namespace evomerge
