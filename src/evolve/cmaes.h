// Our own (mu/mu_w, lambda)-CMA-ES (Hansen's tutorial, arXiv:1604.00772) on Eigen, with the
// tutorial's default strategy parameters, the active covariance update (negative recombination
// weights), an ask/tell interface, a smooth box transform for bounds (evolve/bounds.h), a separable
// (diagonal) mode, IPOP restarts (lambda doubles), termination criteria that say which one fired, a
// lazy eigendecomposition, and a complete serialisation so a run resumes bit for bit.
//
// Minimisation. Ranking is by (f, sample index): stable, never by anything correlated with x; NaN
// is ranked worst. Usage:
//
//   Cmaes es(x0, sigma0, options);
//   while (!es.stopped()) {
//     const auto& X = es.ask();              // lambda feasible points (bound transform applied)
//     std::vector<double> f(X.size());  ...  // evaluate f(X[k])
//     es.tell(f);                            // updates with the untransformed samples
//   }
//   es.stop_reason();  es.best_x();  es.mean_x();
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "evolve/bounds.h"
#include "evolve/rng.h"

namespace evomerge {

// Default strategy parameters for dimension n and population lambda (tutorial Table 1, eq. 48-57,
// alpha_cov = 2). `separable`: pycma's sep-CMA learning rates for c_1, c_mu, c_c (Ros & Hansen
// 2008).
struct CmaesParams {
  int n = 0;
  int lambda = 0;
  int mu = 0;
  std::vector<double> weights;  // lambda entries: mu positive (sum 1), then the active negatives
  double mueff = 0, mueff_neg = 0;
  double cm = 1, cs = 0, ds = 0, cc = 0, c1 = 0, cmu = 0;
  double chi_n = 0;      // E||N(0, I)||
  double sum_w_neg = 0;  // sum of the negative weights (0 with active off)
  int eigen_gap = 1;  // generations between eigendecompositions: max(1, floor(1/(10 n (c1+cmu))))

  static CmaesParams defaults(int n, int lambda = 0, bool active = true, bool separable = false);
};

enum class StopReason {
  None,
  MaxFevals,      // the evaluation budget (shared by all restarts) is spent
  MaxIter,        // generations of this run >= max_iter
  FTarget,        // best f <= ftarget
  TolFun,         // range of this generation's f and of the full best-f history window < tolfun
  TolX,           // all sigma*sqrt(C_ii) and sigma*|p_c,i| < tolx
  TolUpSigma,     // sigma*sqrt(max C_ii) > tolfacupx * sigma0 (divergence)
  ConditionCov,   // cond(C) > tol_condition_cov
  NoEffectAxis,   // m + 0.1 sigma d_i b_i == m for axis i = g mod n
  NoEffectCoord,  // m_i + 0.2 sigma sqrt(C_ii) == m_i for some i
  FlatFitness,    // best f == 75th-percentile f for more than tol_flat_fitness generations in a row
  Stagnation,     // medians of the best and median f did not improve over a window
  MaxGenerations,  // total generations over all restarts >= max_generations
  Manual,          // request_stop()
};
std::string_view stop_reason_name(StopReason reason);
// True for criteria that end the whole search (no restart): the budget, the target, a manual stop.
bool stop_is_global(StopReason reason);

struct CmaesOptions {
  int lambda = 0;                    // 0: 4 + floor(3 ln n)
  bool active = true;                // negative weights (active covariance update)
  bool separable = false;            // diagonal C (sep-CMA)
  std::vector<double> lower, upper;  // empty: unbounded
  uint64_t seed = 1;

  // Termination. 0 disables a count; the tolerances are pycma 4.4 defaults.
  int64_t max_fevals = 0;
  int64_t max_generations = 0;  // over all restarts
  int64_t max_iter = -1;        // per run; -1: 100 + 150 (n+3)^2 / sqrt(lambda)
  double ftarget = -std::numeric_limits<double>::infinity();
  double tolfun = 1e-11;
  double tolx = 1e-11;
  double tolfacupx = 1e3;
  double tol_condition_cov = 1e14;
  int tol_flat_fitness = 1;     // flat generations tolerated; -1 disables
  int64_t tol_stagnation = -1;  // -1: 100 + 100 n^1.5 / lambda; 0 disables
  bool check_no_effect = true;

  // IPOP: after a local stop, restart (up to `restarts` times) with lambda *= incpopsize, sigma0,
  // and x0 (or, with restart_uniform and bounds, a point uniform in the box).
  int restarts = 0;
  double incpopsize = 2.0;
  bool restart_uniform = false;

  int eigen_gap = 0;  // 0: CmaesParams default
};

class Cmaes {
 public:
  // x0 is a feasible point (it is mapped through the inverse bound transform); sigma0 > 0 is in the
  // unbounded space (for [0, 1] bounds the two coincide away from the margins).
  Cmaes(const Eigen::VectorXd& x0, double sigma0, CmaesOptions options);

  // The next generation's lambda feasible points. Calling ask() twice without tell() returns the
  // same points.
  const std::vector<Eigen::VectorXd>& ask();
  // The untransformed samples behind the last ask() (what the distribution is updated with).
  const std::vector<Eigen::VectorXd>& genotypes() const { return arz_; }
  // Fitness of the last ask()'s points, in order (lower is better; NaN ranks worst). Updates the
  // distribution, checks termination, and restarts (IPOP) when a local criterion fires.
  void tell(const std::vector<double>& fitness);

  bool stopped() const { return stop_ != StopReason::None; }
  StopReason stop_reason() const { return stop_; }
  void request_stop() { stop_ = StopReason::Manual; }

  // Statistics of the last completed generation.
  struct Generation {
    int64_t generation = 0;  // total over restarts, 1-based after the first tell
    int restart = 0;
    int lambda = 0;
    double best = 0, median = 0, worst = 0;
    double sigma = 0;
    StopReason local_stop = StopReason::None;  // a criterion that fired and caused a restart
  };
  const Generation& last_generation() const { return last_; }

  int dimension() const { return params_.n; }
  const CmaesParams& params() const { return params_; }
  const CmaesOptions& options() const { return options_; }
  int64_t fevals() const { return fevals_; }
  int64_t generation() const { return generation_; }
  int restarts_done() const { return restart_; }
  double sigma() const { return sigma_; }
  const Eigen::VectorXd& mean() const { return mean_; }  // unbounded space
  const Eigen::MatrixXd& covariance() const { return C_; }
  Eigen::VectorXd mean_x() const {
    return bounds_.transform(mean_);
  }                                                          // the distribution mean, feasible
  const Eigen::VectorXd& best_x() const { return best_x_; }  // best point ever told, feasible
  double best_f() const { return best_f_; }
  const BoxTransform& bounds() const { return bounds_; }

  // The complete state (options, parameters, distribution, paths, eigensystem, counters, histories,
  // RNG, restart state). Only between tell() and ask(). JSON numbers round-trip doubles exactly;
  // non-finite values are written as strings. to_blob() is the same as CBOR.
  nlohmann::json to_json() const;
  static Cmaes from_json(const nlohmann::json& state);
  std::vector<uint8_t> to_blob() const;
  static Cmaes from_blob(const std::vector<uint8_t>& blob);

 private:
  Cmaes() = default;
  void start_run(const Eigen::VectorXd& x0_unbounded, int lambda);
  void update_eigensystem(bool force);
  StopReason check_local_stop(const std::vector<double>& sorted_f);
  // The steps of tell(), in order.
  void update_distribution(const std::vector<int>& order);
  void record_generation(const std::vector<double>& sorted_f);
  void stop_or_restart(const std::vector<double>& sorted_f);

  CmaesOptions options_;
  CmaesParams params_;
  BoxTransform bounds_;
  Rng rng_{1};

  Eigen::VectorXd x0_;  // unbounded
  double sigma0_ = 1;
  Eigen::VectorXd mean_;
  double sigma_ = 1;
  Eigen::MatrixXd C_;  // full mode: n x n; sep mode: n x 1 (the diagonal)
  Eigen::MatrixXd B_;  // eigenvectors (full mode)
  Eigen::VectorXd D_;  // sqrt of eigenvalues (full) or of diag C (sep)
  Eigen::VectorXd ps_, pc_;
  int64_t eigen_generation_ = 0;  // run generation of the last decomposition

  int64_t fevals_ = 0;
  int64_t generation_ = 0;      // total over restarts
  int64_t run_generation_ = 0;  // this run
  int restart_ = 0;
  int64_t max_iter_ = 0, tol_stagnation_ = 0;
  int flat_count_ = 0;
  std::vector<double> hist_best_;    // per generation of this run, bounded
  std::vector<double> hist_median_;  // per generation of this run, bounded
  StopReason stop_ = StopReason::None;

  bool asked_ = false;
  std::vector<Eigen::VectorXd> arz_;  // untransformed samples x_k = m + sigma y_k
  std::vector<Eigen::VectorXd> arx_;  // feasible points transform(x_k)

  Eigen::VectorXd best_x_;
  double best_f_ = std::numeric_limits<double>::infinity();
  Generation last_;
};

}  // namespace evomerge
