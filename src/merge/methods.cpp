// Merge method kernels on f32 arrays. Each follows docs/mergekit-compat.md; the comments name the
// section. Reductions accumulate in f64 per fixed-size chunk and are combined in chunk order, so a
// result never depends on the thread count.
#include "merge/methods.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "common/error.h"
#include "merge/methods_detail.h"
#include "tensor/convert.h"

namespace evomerge {

namespace {

constexpr std::string_view kStage = "merge";
using detail::bernoulli_threshold;
using detail::kChunk;
using detail::rng_bits;

// ---------------------------------------------------------------------------------------------
// Registry

std::vector<MethodSpec> make_registry() {
  auto req = [](std::string n) { return MethodParam{std::move(n), std::nullopt}; };
  auto def = [](std::string n, double v) { return MethodParam{std::move(n), v}; };
  std::vector<MethodSpec> r;
  r.push_back(
      {"linear", {def("normalize", 1)}, {req("weight")}, BaseUse::Optional, 1, 0, true, true});
  r.push_back({"slerp", {req("t")}, {}, BaseUse::Required, 1, 2, true});
  r.push_back({"nuslerp", {def("nuslerp_flatten", 1), def("nuslerp_row_wise", 0)}, {req("weight")}, BaseUse::Optional, 2, 3, false});
  r.push_back({"multislerp", {def("normalize_weights", 1), def("eps", 1e-8)}, {req("weight")}, BaseUse::Optional, 1, 0, false});
  r.push_back({"karcher", {def("max_iter", 10), def("tol", 1e-5)}, {}, BaseUse::Optional, 1, 0, true});
  r.push_back({"model_stock", {def("filter_wise", 0)}, {}, BaseUse::Required, 3, 0, false});
  auto gta = [&](std::string name, double normalize, double rescale, std::vector<MethodParam> extra) {
    std::vector<MethodParam> per = {req("weight"), def("density", 1.0)};
    for (auto& e : extra) per.push_back(e);
    r.push_back({std::move(name),
                 {def("int8_mask", 0), def("normalize", normalize), def("rescale", rescale), def("lambda", 1.0)},
                 per, BaseUse::Required, 1, 0, false});
  };
  gta("task_arithmetic", 0, 0, {});
  r.back().elementwise = true;  // no sparsifier, no consensus: B + lambda * sum w_i (T_i - B)
  gta("ties", 1, 0, {});
  gta("dare_ties", 0, 1, {});
  gta("dare_linear", 0, 1, {});
  gta("breadcrumbs", 0, 0, {def("gamma", 0.01)});
  gta("breadcrumbs_ties", 0, 0, {def("gamma", 0.01)});
  gta("della", 1, 1, {def("epsilon", 0.15)});
  gta("della_linear", 0, 1, {def("epsilon", 0.15)});
  r.push_back({"sce", {def("select_topk", 1.0), def("int8_mask", 0)}, {def("weight", 1.0)}, BaseUse::Required, 1, 0, false});
  r.push_back({"nearswap", {req("t")}, {}, BaseUse::Required, 1, 2, false, true});
  r.push_back({"arcee_fusion", {}, {}, BaseUse::Required, 1, 2, false});
  r.push_back({"passthrough", {}, {def("scale", 1.0)}, BaseUse::Ignored, 1, 1, true, true});
  r.push_back({"ram", {def("epsilon", 1e-5)}, {}, BaseUse::Required, 1, 0, false, true});
  r.push_back({"ramplus_tl", {def("epsilon", 1e-5), def("r", 0.1), def("alpha", 0.2)}, {}, BaseUse::Required, 1, 0, false});
  return r;
}

const std::vector<MethodSpec>& registry() {
  static const std::vector<MethodSpec> r = make_registry();
  return r;
}

// ---------------------------------------------------------------------------------------------
// Chunked execution and scratch

struct Run {
  const KernelArgs& a;
  size_t n;
  const MethodSpec* spec = nullptr;

  size_t chunks() const { return (n + kChunk - 1) / kChunk; }
  template <typename F>
  void each(F&& fn) const {  // fn(begin, end)
    const size_t nc = chunks();
    auto body = [&](size_t c) { fn(c * kChunk, std::min(n, (c + 1) * kChunk)); };
    if (a.parallel && nc > 1) a.parallel->run(nc, body);
    else
      for (size_t c = 0; c < nc; ++c) body(c);
  }
  template <typename F>
  double sum(F&& fn) const {  // fn(begin, end) -> double, summed in chunk order
    std::vector<double> part(chunks(), 0.0);
    each([&](size_t b, size_t e) { part[b / kChunk] = fn(b, e); });
    double s = 0.0;
    for (double p : part) s += p;
    return s;
  }
  double dot(const float* x, const float* y) const {
    return sum([&](size_t b, size_t e) {
      double s = 0;
      for (size_t i = b; i < e; ++i) s += static_cast<double>(x[i]) * y[i];
      return s;
    });
  }
  double norm(const float* x) const { return std::sqrt(dot(x, x)); }
};

// Reusable per-thread float buffers: kernels run on the executor thread, so after the first tensor
// of the largest size nothing is allocated.
float* scratch(size_t slot, size_t n) {
  thread_local std::vector<std::vector<float>> bufs;
  if (bufs.size() <= slot) bufs.resize(slot + 1);
  if (bufs[slot].size() < n) bufs[slot].resize(n);
  return bufs[slot].data();
}
uint8_t* scratch_mask(size_t n) {
  thread_local std::vector<uint8_t> buf;
  if (buf.size() < n) buf.resize(n);
  return buf.data();
}

thread_local const MethodSpec* t_spec = nullptr;  // the method being run (for defaults)

double param(const KernelArgs& a, const ParamSet* set, std::string_view name, bool global) {
  if (set) {
    auto it = set->find(name);
    if (it != set->end()) return it->second;
  }
  // Callers that skip the plan (tests) get the method's default.
  if (t_spec)
    for (const auto& p : global ? t_spec->globals : t_spec->per_model)
      if (p.name == name && p.default_value) return *p.default_value;
  fail(kStage, "tensor '{}': missing required parameter '{}'", a.tensor, name);
}
double gparam(const KernelArgs& a, std::string_view name) { return param(a, a.globals, name, true); }
double mparam(const KernelArgs& a, size_t i, std::string_view name) {
  return param(a, i < a.params.size() ? a.params[i] : nullptr, name, false);
}

std::vector<size_t> non_base(const KernelArgs& a) {
  std::vector<size_t> idx;
  for (size_t i = 0; i < a.inputs.size(); ++i)
    if (static_cast<int>(i) != a.base) idx.push_back(i);
  return idx;
}

void copy_to(const Run& r, const float* src, float* dst) {
  r.each([&](size_t b, size_t e) { std::copy(src + b, src + e, dst + b); });
}

// Marks, in `mask`, the elements whose rank lies in [lo, hi) under the order "value ascending, ties
// by index descending" (the reverse of a stable descending sort, so a top-k keeps the earliest of
// equal values). Two nth_element selections find the boundary values (no full sort); ties at a
// boundary are resolved by index so exactly hi - lo elements are kept.
void rank_range_mask(const float* values, size_t n, size_t lo, size_t hi, uint8_t* mask) {
  if (lo >= hi || n == 0) {
    std::fill(mask, mask + n, 0);
    return;
  }
  struct Bound {
    float v = 0;
    size_t less = 0, equal = 0;
  };
  auto bound = [&](size_t r) {
    RankValue rv = rank_value(values, n, r);
    return Bound{rv.value, rv.less, rv.equal};
  };
  const bool has_lo = lo > 0, has_hi = hi < n;
  Bound L = has_lo ? bound(lo) : Bound{}, H = has_hi ? bound(hi) : Bound{};
  // The e-th (0-based, index order) element equal to a boundary value has rank less + equal-1-e.
  size_t eq_lo = 0, eq_hi = 0;
  for (size_t i = 0; i < n; ++i) {
    const float v = values[i];
    bool ok = true;
    if (has_lo) {
      if (v < L.v) ok = false;
      else if (v == L.v) ok = L.less + (L.equal - 1 - eq_lo++) >= lo;
    }
    if (has_hi) {
      if (v > H.v) ok = false;
      else if (v == H.v) {
        const bool below = H.less + (H.equal - 1 - eq_hi++) < hi;
        ok = ok && below;
      }
    }
    mask[i] = ok;
  }
}

// ---------------------------------------------------------------------------------------------
// §3 sparsifiers, applied to a task vector d[n] in place.

enum class Sparsifier { None, Magnitude, Random, MagnitudeOutliers, DellaMagprune };

// L1 norm matching (mergekit's rescale since v0.1.0).
void l1_rescale(const Run& r, float* d, double l1_before) {
  double l1_after = r.sum([&](size_t b, size_t e) {
    double s = 0;
    for (size_t i = b; i < e; ++i) s += std::fabs(d[i]);
    return s;
  });
  if (l1_before >= 1e-7 && l1_after >= 1e-7) {
    const float f = static_cast<float>(l1_before / l1_after);
    r.each([&](size_t b, size_t e) {
      for (size_t i = b; i < e; ++i) d[i] *= f;
    });
  }
}

void sparsify(const Run& r, Sparsifier kind, float* d, double density, double extra, bool rescale, uint64_t key,
              const Shape& shape) {
  const size_t n = r.n;
  if (kind == Sparsifier::None || density >= 1.0) return;
  double l1 = rescale ? r.sum([&](size_t b, size_t e) {
    double s = 0;
    for (size_t i = b; i < e; ++i) s += std::fabs(d[i]);
    return s;
  })
                      : 0.0;
  switch (kind) {
    case Sparsifier::None: return;
    case Sparsifier::Magnitude: {
      // Top-k of |d|, k = int(density * n). mergekit asserts k > 0; we return zeros instead.
      const size_t k = density <= 0 ? 0 : static_cast<size_t>(density * static_cast<double>(n));
      if (k == 0) {
        std::fill(d, d + n, 0.0f);
        break;
      }
      if (k >= n) break;
      // Keep ranks [n-k, n) of |d| (ties by index: the earliest equal values are kept first).
      const RankValue rv = rank_value_of_abs(d, n, n - k, r.a.parallel);
      size_t quota = rv.less + rv.equal - (n - k);  // equal values to keep
      const float v = rv.value;
      // Branch-free (vectorised) cut below the threshold, then, only when some values equal to the
      // threshold must go, a second pass keeping the first `quota` of them.
      r.each([&](size_t b, size_t e) {
        for (size_t i = b; i < e; ++i) d[i] = std::fabs(d[i]) >= v ? d[i] : 0.0f;
      });
      if (quota < rv.equal)
        for (size_t i = 0; i < n; ++i)
          if (std::fabs(d[i]) == v) {
            if (quota > 0) --quota;
            else d[i] = 0.0f;
          }
      break;
    }
    case Sparsifier::Random: {
      // Bernoulli(density) keep mask from the counter-based generator.
      r.each([&](size_t b, size_t e) {
        for (size_t i = b; i < e; ++i)
          if (!(rng_bits(key, i) < bernoulli_threshold(density))) d[i] = 0.0f;
      });
      break;
    }
    case Sparsifier::MagnitudeOutliers: {
      // Keep ranks [n_bot, n - n_top) of |d| ascending. mergekit's slice [n_bot:-n_top] keeps nothing
      // when n_top == 0 (a quirk); we keep [n_bot, n) as the method intends.
      const size_t target = density <= 0 ? 0 : static_cast<size_t>(density * static_cast<double>(n));
      int64_t n_top = static_cast<int64_t>(extra * static_cast<double>(n));
      int64_t n_bot = static_cast<int64_t>(n) - static_cast<int64_t>(target) - n_top;
      if (n_bot < 0) {
        n_top += n_bot;
        n_bot = 0;
      }
      if (n_top < 0) n_top = 0;
      float* mag = scratch(62, n);
      r.each([&](size_t b, size_t e) {
        for (size_t i = b; i < e; ++i) mag[i] = std::fabs(d[i]);
      });
      uint8_t* mask = scratch_mask(n);
      rank_range_mask(mag, n, static_cast<size_t>(n_bot), n - static_cast<size_t>(n_top), mask);
      for (size_t i = 0; i < n; ++i)
        if (!mask[i]) d[i] = 0.0f;
      break;
    }
    case Sparsifier::DellaMagprune: {
      const double eps = extra;
      if (density <= 0) {
        std::fill(d, d + n, 0.0f);
        return;
      }
      if (density + eps >= 1.0 || density - eps <= 0.0)
        fail(kStage, "della: density {} and epsilon {} must satisfy 0 < density - epsilon and density + epsilon < 1",
             density, eps);
      // Rows along the last dimension (a 1-D tensor is one row); within a row, rank by |d| ascending
      // (ties by index), rho = rank / (len - 1), keep probability density - eps + 2 eps rho.
      const size_t row = shape.empty() ? 1 : static_cast<size_t>(std::max<int64_t>(1, shape.back()));
      const size_t rows = n / row;
      std::vector<uint32_t> order(row);
      for (size_t rr = 0; rr < rows; ++rr) {
        float* x = d + rr * row;
        std::iota(order.begin(), order.end(), 0u);
        std::stable_sort(order.begin(), order.end(), [&](uint32_t p, uint32_t q) { return std::fabs(x[p]) < std::fabs(x[q]); });
        for (size_t rank = 0; rank < row; ++rank) {
          // A one-element row has no spread: rho = 0.5 (mergekit divides 0 by 0 there).
          double rho = row > 1 ? static_cast<double>(rank) / static_cast<double>(row - 1) : 0.5;
          double p = density - eps + 2.0 * eps * rho;
          size_t idx = rr * row + order[rank];
          if (!(rng_uniform(key, idx) < p)) x[order[rank]] = 0.0f;
        }
      }
      break;
    }
  }
  if (rescale) l1_rescale(r, d, l1);
}

// ---------------------------------------------------------------------------------------------
// Methods

void require_base(const KernelArgs& a, std::string_view method) {
  if (a.base < 0 || a.base >= static_cast<int>(a.inputs.size()))
    fail(kStage, "{}: tensor '{}': this method needs base_model", method, a.tensor);
}

// §2.1
void linear(const Run& r, float* out) {
  const KernelArgs& a = r.a;
  const size_t m = a.inputs.size();
  std::vector<float> w(m);
  double wsum = 0;
  for (size_t i = 0; i < m; ++i) wsum += w[i] = static_cast<float>(mparam(a, i, "weight"));
  const bool normalize = gparam(a, "normalize") != 0;
  if (normalize && wsum == 0.0)
    fail(kStage, "linear: tensor '{}': the weights sum to zero and normalize is true", a.tensor);
  const float inv = normalize ? static_cast<float>(1.0 / wsum) : 1.0f;
  r.each([&](size_t b, size_t e) {
    // input-outer, element-inner: contiguous loops the compiler vectorises
    for (size_t j = b; j < e; ++j) out[j] = w[0] * a.inputs[0][j];
    for (size_t i = 1; i < m; ++i) {
      const float wi = w[i];
      const float* x = a.inputs[i];
      for (size_t j = b; j < e; ++j) out[j] += wi * x[j];
    }
    if (inv != 1.0f)
      for (size_t j = b; j < e; ++j) out[j] *= inv;
  });
}

// §2.2
void slerp(const Run& r, float* out) {
  const KernelArgs& a = r.a;
  if (a.inputs.size() == 1) return copy_to(r, a.inputs[0], out);
  require_base(a, "slerp");
  const float* v0 = a.inputs[a.base];
  const float* v1 = a.inputs[a.base == 0 ? 1 : 0];
  const double t = gparam(a, "t");
  double n0 = r.norm(v0), n1 = r.norm(v1);
  double s0 = n0 > 1e-8 ? 1.0 / n0 : 1.0, s1 = n1 > 1e-8 ? 1.0 / n1 : 1.0;
  double dot = r.dot(v0, v1) * s0 * s1;
  double c0, c1;
  if (std::fabs(dot) > 0.9995) {
    c0 = 1 - t;
    c1 = t;
  } else {
    double theta = std::acos(dot), st = std::sin(theta);
    c0 = std::sin((1 - t) * theta) / st;
    c1 = std::sin(t * theta) / st;
  }
  const float f0 = static_cast<float>(c0), f1 = static_cast<float>(c1);
  r.each([&](size_t b, size_t e) {
    for (size_t j = b; j < e; ++j) out[j] = f0 * v0[j] + f1 * v1[j];
  });
}

// Spherical interpolation of vectors laid out with `count` vectors of `len` elements at
// x[v*vstride + k*kstride]. Used by nuslerp.
void ns_slerp(double t, const float* v0, const float* v1, float* out, size_t count, size_t len, size_t vstride,
              size_t kstride) {
  for (size_t v = 0; v < count; ++v) {
    double n0 = 0, n1 = 0, d = 0;
    for (size_t k = 0; k < len; ++k) {
      size_t i = v * vstride + k * kstride;
      n0 += double(v0[i]) * v0[i];
      n1 += double(v1[i]) * v1[i];
      d += double(v0[i]) * v1[i];
    }
    n0 = std::max(std::sqrt(n0), 1e-7);
    n1 = std::max(std::sqrt(n1), 1e-7);
    double c = std::clamp(d / (n0 * n1), -1.0, 1.0);
    double theta = std::acos(c), st = std::sin(theta);
    double c0, c1;
    if (std::fabs(st) < 1e-8) {
      c0 = 1 - t;
      c1 = t;
    } else {
      c0 = std::sin((1 - t) * theta) / st;
      c1 = std::sin(t * theta) / st;
    }
    for (size_t k = 0; k < len; ++k) {
      size_t i = v * vstride + k * kstride;
      out[i] = static_cast<float>(c0 * v0[i] + c1 * v1[i]);
    }
  }
}

// §2.3
void nuslerp(const Run& r, float* out) {
  const KernelArgs& a = r.a;
  auto others = non_base(a);
  if (others.size() != 2)
    fail(kStage, "nuslerp: tensor '{}': needs exactly two models besides the base (got {})", a.tensor, others.size());
  double wa = mparam(a, others[0], "weight"), wb = mparam(a, others[1], "weight");
  double t = std::fabs(wa + wb) < 1e-6 ? 0.5 : wb / (wa + wb);
  const float* A = a.inputs[others[0]];
  const float* B = a.inputs[others[1]];
  const float* base = a.base >= 0 ? a.inputs[a.base] : nullptr;
  const size_t n = r.n;
  float* x0 = scratch(0, n);
  float* x1 = scratch(1, n);
  r.each([&](size_t b, size_t e) {
    for (size_t j = b; j < e; ++j) {
      x0[j] = base ? A[j] - base[j] : A[j];
      x1[j] = base ? B[j] - base[j] : B[j];
    }
  });
  const bool flatten = gparam(a, "nuslerp_flatten") != 0, row_wise = gparam(a, "nuslerp_row_wise") != 0;
  const Shape& s = a.shape;
  if (flatten || s.size() < 2) {
    ns_slerp(t, x0, x1, out, 1, n, 0, 1);
  } else if (!row_wise) {
    const size_t len = static_cast<size_t>(s.back());
    ns_slerp(t, x0, x1, out, n / len, len, len, 1);  // vectors along the last dim
  } else {
    const size_t rows = static_cast<size_t>(s.front()), inner = n / rows;
    ns_slerp(t, x0, x1, out, inner, rows, 1, inner);  // vectors along dim 0
  }
  if (base)
    r.each([&](size_t b, size_t e) {
      for (size_t j = b; j < e; ++j) out[j] += base[j];
    });
}

// §2.4
void multislerp(const Run& r, float* out) {
  const KernelArgs& a = r.a;
  auto idx = non_base(a);
  const float* base = a.base >= 0 ? a.inputs[a.base] : nullptr;
  if (a.inputs.size() == 1) return copy_to(r, a.inputs[0], out);
  const size_t m = idx.size(), n = r.n;
  std::vector<double> w(m);
  double wsum = 0;
  for (size_t i = 0; i < m; ++i) wsum += w[i] = mparam(a, idx[i], "weight");
  if (gparam(a, "normalize_weights") != 0) {
    if (wsum == 0) fail(kStage, "multislerp: tensor '{}': the weights sum to zero", a.tensor);
    for (auto& x : w) x /= wsum;
  }
  const double eps = gparam(a, "eps");
  std::vector<float*> X(m);
  std::vector<double> norms(m);
  for (size_t i = 0; i < m; ++i) {
    X[i] = scratch(i, n);
    const float* T = a.inputs[idx[i]];
    r.each([&](size_t b, size_t e) {
      for (size_t j = b; j < e; ++j) X[i][j] = base ? T[j] - base[j] : T[j];
    });
    norms[i] = r.norm(X[i]);
  }
  // u_i = X_i / (n_i + eps); m = sum w_i u_i
  float* mean = scratch(m, n);
  r.each([&](size_t b, size_t e) {
    for (size_t j = b; j < e; ++j) {
      double s = 0;
      for (size_t i = 0; i < m; ++i) s += w[i] * X[i][j] / (norms[i] + eps);
      mean[j] = static_cast<float>(s);
    }
  });
  const double mnorm = r.norm(mean);
  if (mnorm < eps) {
    if (m != 2) fail(kStage, "multislerp: tensor '{}': the weighted mean direction is zero", a.tensor);
    r.each([&](size_t b, size_t e) {
      for (size_t j = b; j < e; ++j) out[j] = static_cast<float>(w[0] * X[0][j] + w[1] * X[1][j] + (base ? base[j] : 0.0f));
    });
    return;
  }
  // v_i = u_i - (u_i . mhat) mhat; tau = sum w_i v_i
  std::vector<double> proj(m);
  for (size_t i = 0; i < m; ++i) proj[i] = r.dot(X[i], mean) / (norms[i] + eps) / mnorm;
  float* tau = scratch(m + 1, n);
  r.each([&](size_t b, size_t e) {
    for (size_t j = b; j < e; ++j) {
      double mh = mean[j] / mnorm, s = 0;
      for (size_t i = 0; i < m; ++i) s += w[i] * (X[i][j] / (norms[i] + eps) - proj[i] * mh);
      tau[j] = static_cast<float>(s);
    }
  });
  const double rr = r.norm(tau) + eps;
  double scale = 0;
  for (size_t i = 0; i < m; ++i) scale += w[i] * norms[i];
  const double cr = std::cos(rr), sr = std::sin(rr) / rr;
  r.each([&](size_t b, size_t e) {
    for (size_t j = b; j < e; ++j)
      out[j] = static_cast<float>((mean[j] / mnorm * cr + tau[j] * sr) * scale + (base ? base[j] : 0.0f));
  });
}

// §2.5 (weights ignored, alpha = 1/N; base, if listed, is one more input)
void karcher(const Run& r, float* out) {
  const KernelArgs& a = r.a;
  const size_t N = a.inputs.size(), n = r.n;
  const double tol = gparam(a, "tol");
  const int max_iter = static_cast<int>(gparam(a, "max_iter"));
  std::vector<double> norms(N);
  std::vector<size_t> kept;
  for (size_t i = 0; i < N; ++i) {
    norms[i] = r.norm(a.inputs[i]);
    if (norms[i] > tol) kept.push_back(i);
  }
  if (kept.empty()) {
    std::fill(out, out + n, 0.0f);
    return;
  }
  const double alpha = 1.0 / static_cast<double>(kept.size());
  float* u = scratch(0, n);
  float* T = scratch(1, n);
  r.each([&](size_t b, size_t e) {
    for (size_t j = b; j < e; ++j) {
      double s = 0;
      for (size_t i : kept) s += alpha * a.inputs[i][j] / norms[i];
      u[j] = static_cast<float>(s);
    }
  });
  double un = r.norm(u);
  if (un < tol) {
    const size_t f = kept[0];
    r.each([&](size_t b, size_t e) {
      for (size_t j = b; j < e; ++j) u[j] = static_cast<float>(a.inputs[f][j] / norms[f]);
    });
  } else {
    r.each([&](size_t b, size_t e) {
      for (size_t j = b; j < e; ++j) u[j] = static_cast<float>(u[j] / un);
    });
  }
  for (int it = 0; it < max_iter; ++it) {
    std::vector<double> coef(N, 0.0), cosv(N, 0.0);
    for (size_t i : kept) {
      double c = std::clamp(r.dot(u, a.inputs[i]) / norms[i], -1.0, 1.0);
      double th = std::acos(c);
      cosv[i] = c;
      coef[i] = th < tol ? 0.0 : alpha * th / std::sin(th);
    }
    r.each([&](size_t b, size_t e) {
      for (size_t j = b; j < e; ++j) {
        double s = 0;
        for (size_t i : kept)
          if (coef[i] != 0) s += coef[i] * (a.inputs[i][j] / norms[i] - cosv[i] * u[j]);
        T[j] = static_cast<float>(s);
      }
    });
    const double tn = r.norm(T);
    if (tn < tol) break;
    const double ct = std::cos(tn), st = std::sin(tn) / tn;
    r.each([&](size_t b, size_t e) {
      for (size_t j = b; j < e; ++j) u[j] = static_cast<float>(ct * u[j] + st * T[j]);
    });
    double nn = r.norm(u);
    if (nn > tol)
      r.each([&](size_t b, size_t e) {
        for (size_t j = b; j < e; ++j) u[j] = static_cast<float>(u[j] / nn);
      });
  }
  double scale = 0;
  for (size_t i = 0; i < N; ++i) scale += norms[i] / static_cast<double>(N);
  r.each([&](size_t b, size_t e) {
    for (size_t j = b; j < e; ++j) out[j] = static_cast<float>(scale * u[j]);
  });
}

// §2.6
void model_stock(const Run& r, float* out) {
  const KernelArgs& a = r.a;
  require_base(a, "model_stock");
  auto idx = non_base(a);
  if (idx.size() < 2) fail(kStage, "model_stock: tensor '{}': needs the base and at least two other models", a.tensor);
  const float* W0 = a.inputs[a.base];
  const size_t N = idx.size(), n = r.n;
  const bool filter_wise = gparam(a, "filter_wise") != 0;
  const size_t row = filter_wise && a.shape.size() >= 2 ? static_cast<size_t>(a.shape.back()) : n;
  const size_t rows = row ? n / row : 0;
  for (size_t rr = 0; rr < rows; ++rr) {
    const size_t off = rr * row;
    std::vector<double> nrm(N, 0.0);
    std::vector<std::vector<double>> dots(N, std::vector<double>(N, 0.0));
    for (size_t k = 0; k < row; ++k) {
      const size_t j = off + k;
      for (size_t p = 0; p < N; ++p) {
        double dp = double(a.inputs[idx[p]][j]) - W0[j];
        for (size_t q = p; q < N; ++q) dots[p][q] += dp * (double(a.inputs[idx[q]][j]) - W0[j]);
      }
    }
    for (size_t p = 0; p < N; ++p) nrm[p] = std::sqrt(dots[p][p]);
    double csum = 0;
    size_t pairs = 0;
    for (size_t p = 0; p < N; ++p)
      for (size_t q = p + 1; q < N; ++q) {
        csum += std::clamp(dots[p][q] / std::max(nrm[p] * nrm[q], 1e-6), -1.0, 1.0);
        ++pairs;
      }
    const double c = csum / static_cast<double>(pairs);
    const double t = static_cast<double>(N) * c / (1.0 + static_cast<double>(N - 1) * c);
    for (size_t k = 0; k < row; ++k) {
      const size_t j = off + k;
      double mean = 0;
      for (size_t p = 0; p < N; ++p) mean += a.inputs[idx[p]][j];
      mean /= static_cast<double>(N);
      out[j] = static_cast<float>(t * mean + (1.0 - t) * W0[j]);
    }
  }
}

// §2.7 the GTA family
struct GtaKind {
  std::string_view name;
  bool consensus;
  Sparsifier sparsifier;
};
constexpr GtaKind kGta[] = {
    {"task_arithmetic", false, Sparsifier::None},         {"ties", true, Sparsifier::Magnitude},
    {"dare_ties", true, Sparsifier::Random},              {"dare_linear", false, Sparsifier::Random},
    {"breadcrumbs", false, Sparsifier::MagnitudeOutliers}, {"breadcrumbs_ties", true, Sparsifier::MagnitudeOutliers},
    {"della", true, Sparsifier::DellaMagprune},           {"della_linear", false, Sparsifier::DellaMagprune},
};

}  // namespace

std::optional<detail::GtaSetup> detail::gta_setup(std::string_view method, const KernelArgs& a,
                                                  size_t n_inputs) {
  const GtaKind* kind = nullptr;
  for (const auto& g : kGta)
    if (g.name == method) kind = &g;
  if (!kind || a.base < 0 || static_cast<size_t>(a.base) >= n_inputs || n_inputs < 2)
    return std::nullopt;
  if (kind->sparsifier != Sparsifier::Magnitude && kind->sparsifier != Sparsifier::Random)
    return std::nullopt;
  t_spec = find_method(method);
  GtaSetup s;
  s.consensus = kind->consensus;
  s.sparsifier =
      kind->sparsifier == Sparsifier::Magnitude ? GtaSparsifier::Magnitude : GtaSparsifier::Random;
  s.rescale = gparam(a, "rescale") != 0;
  s.normalize = gparam(a, "normalize") != 0;
  s.lambda = static_cast<float>(gparam(a, "lambda"));
  s.base = static_cast<size_t>(a.base);
  for (size_t i = 0; i < n_inputs; ++i) {
    if (i == s.base) continue;
    GtaVector v{i, static_cast<float>(mparam(a, i, "weight")), mparam(a, i, "density"),
                rng_key(a.seed, a.tensor, i)};
    if (s.sparsifier == GtaSparsifier::Magnitude && s.rescale && v.density < 1.0)
      return std::nullopt;
    s.vectors.push_back(v);
  }
  return s;
}

namespace {

void gta(const Run& r, const GtaKind& kind, float* out) {
  const KernelArgs& a = r.a;
  require_base(a, kind.name);
  const float* B = a.inputs[a.base];
  auto idx = non_base(a);
  const size_t m = idx.size(), n = r.n;
  if (m == 0) return copy_to(r, B, out);
  const bool rescale = gparam(a, "rescale") != 0, normalize = gparam(a, "normalize") != 0;
  const double lambda = gparam(a, "lambda");
  std::vector<float*> d(m);
  std::vector<float> w(m), ws(m);  // ws: weight times the rescale factor of that task vector
  for (size_t i = 0; i < m; ++i) {
    const float* T = a.inputs[idx[i]];
    d[i] = scratch(i, n);
    w[i] = ws[i] = static_cast<float>(mparam(a, idx[i], "weight"));
    const double density = kind.sparsifier == Sparsifier::None ? 1.0 : mparam(a, idx[i], "density");
    if (kind.sparsifier == Sparsifier::Random && density < 1.0) {
      // DARE in one pass: delta, Bernoulli keep, and both L1 norms; the rescale goes into ws.
      const uint64_t key = rng_key(a.seed, a.tensor, idx[i]);
      const uint64_t thr = bernoulli_threshold(density);
      std::vector<double> l1b(r.chunks()), l1a(r.chunks());
      float* di = d[i];
      r.each([&](size_t b, size_t e) {
        detail::dare_chunk<true>(T + b, B + b, e - b, b, key, thr, di + b, l1b[b / kChunk],
                                 l1a[b / kChunk]);
      });
      double before = 0, after = 0;
      for (size_t c = 0; c < l1b.size(); ++c) before += l1b[c], after += l1a[c];
      if (rescale && before >= 1e-7 && after >= 1e-7) ws[i] = static_cast<float>(w[i] * (before / after));
      continue;
    }
    r.each([&](size_t b, size_t e) {
      for (size_t j = b; j < e; ++j) d[i][j] = T[j] - B[j];
    });
  }
  // Selection-based sparsifiers. Magnitude (TIES, DARE-TIES' top-k) selects with every thread on one
  // task vector at a time (rank_value_of_abs and the cut are parallel inside), so m < threads keeps
  // all threads busy; the others select serially, one task vector per thread.
  if (kind.sparsifier == Sparsifier::Magnitude) {
    for (size_t i = 0; i < m; ++i)
      sparsify(r, kind.sparsifier, d[i], mparam(a, idx[i], "density"), 0.0, rescale, rng_key(a.seed, a.tensor, idx[i]),
               a.shape);
  } else if (kind.sparsifier != Sparsifier::None && kind.sparsifier != Sparsifier::Random) {
    auto one = [&](size_t i) {
      double extra = 0;
      if (kind.sparsifier == Sparsifier::MagnitudeOutliers) extra = mparam(a, idx[i], "gamma");
      if (kind.sparsifier == Sparsifier::DellaMagprune) extra = mparam(a, idx[i], "epsilon");
      sparsify(r, kind.sparsifier, d[i], mparam(a, idx[i], "density"), extra, rescale, rng_key(a.seed, a.tensor, idx[i]),
               a.shape);
    };
    if (a.parallel) a.parallel->run(m, one);
    else
      for (size_t i = 0; i < m; ++i) one(i);
  }
  double wsum = 0;
  for (float x : w) wsum += x;
  const float lam = static_cast<float>(lambda);
  const float inv = normalize ? static_cast<float>(1.0 / (std::fabs(wsum) < 1e-8 ? 1.0 : wsum)) : 1.0f;
  r.each([&](size_t b, size_t e) {
    std::vector<const float*> x(m);
    for (size_t i = 0; i < m; ++i) x[i] = d[i] + b;
    detail::combine_task_vectors(x.data(), m, ws.data(), w.data(), B + b, e - b, kind.consensus,
                                 normalize, lam, inv, out + b);
  });
}

// §2.8
void sce(const Run& r, float* out) {
  const KernelArgs& a = r.a;
  require_base(a, "sce");
  const float* B = a.inputs[a.base];
  auto idx = non_base(a);
  const size_t m = idx.size(), n = r.n;
  if (m == 0) return copy_to(r, B, out);
  std::vector<float*> tau(m);
  for (size_t i = 0; i < m; ++i) {
    tau[i] = scratch(i, n);
    const float* T = a.inputs[idx[i]];
    r.each([&](size_t b, size_t e) {
      for (size_t j = b; j < e; ++j) tau[i][j] = T[j] - B[j];
    });
  }
  const double topk = gparam(a, "select_topk");
  if (topk < 1.0) {
    float* var = scratch(m, n);
    r.each([&](size_t b, size_t e) {
      for (size_t j = b; j < e; ++j) {
        double mean = 0, sq = 0;
        for (size_t i = 0; i < m; ++i) mean += tau[i][j];
        mean /= static_cast<double>(m);
        for (size_t i = 0; i < m; ++i) sq += (tau[i][j] - mean) * (tau[i][j] - mean);
        var[j] = static_cast<float>(sq / static_cast<double>(m));
      }
    });
    size_t nonzero = 0;
    for (size_t j = 0; j < n; ++j) nonzero += var[j] != 0;
    const size_t k = topk <= 0 ? 0 : static_cast<size_t>(static_cast<double>(nonzero) * topk);
    uint8_t* mask = scratch_mask(n);
    rank_range_mask(var, n, n - std::min(k, n), n, mask);
    for (size_t i = 0; i < m; ++i)
      for (size_t j = 0; j < n; ++j)
        if (!mask[j]) tau[i][j] = 0.0f;
  }
  std::vector<double> omega(m);
  double osum = 0;
  for (size_t i = 0; i < m; ++i) osum += omega[i] = r.dot(tau[i], tau[i]) / static_cast<double>(std::max<size_t>(n, 1));
  for (auto& o : omega) o = osum < 1e-6 ? 1.0 / static_cast<double>(m) : o / osum;
  r.each([&](size_t b, size_t e) {
    for (size_t j = b; j < e; ++j) {
      float s = 0;
      for (size_t i = 0; i < m; ++i) s += tau[i][j];
      const bool pos = s >= 0;
      double num = 0, den = 0;
      for (size_t i = 0; i < m; ++i)
        if (pos ? tau[i][j] > 0 : tau[i][j] < 0) {
          num += tau[i][j] * omega[i];
          den += omega[i];
        }
      out[j] = static_cast<float>(B[j] + num / std::max(den, 1e-6));
    }
  });
}

// §2.9
void nearswap(const Run& r, float* out) {
  const KernelArgs& a = r.a;
  require_base(a, "nearswap");
  auto idx = non_base(a);
  if (idx.empty()) return copy_to(r, a.inputs[a.base], out);
  const float* B = a.inputs[a.base];
  const float* X = a.inputs[idx[0]];
  const double t = gparam(a, "t");
  r.each([&](size_t b, size_t e) {
    for (size_t j = b; j < e; ++j) {
      double w = std::clamp(t / std::max(std::fabs(double(B[j]) - X[j]), 1e-6), 0.0, 1.0);
      out[j] = static_cast<float>(w * X[j] + (1 - w) * B[j]);
    }
  });
}

// §2.10
void arcee_fusion(const Run& r, float* out) {
  const KernelArgs& a = r.a;
  require_base(a, "arcee_fusion");
  auto idx = non_base(a);
  if (idx.empty()) return copy_to(r, a.inputs[a.base], out);
  const float* B = a.inputs[a.base];
  const float* P = a.inputs[idx[0]];
  const size_t n = r.n;
  const size_t row = a.shape.size() >= 1 ? static_cast<size_t>(std::max<int64_t>(1, a.shape.back())) : n;
  const size_t rows = n / row;
  float* imp = scratch(0, n);
  // KL(softmax(P) || softmax(B)) per row along the last dim, each softmax + 1e-8.
  for (size_t rr = 0; rr < rows; ++rr) {
    const float* p = P + rr * row;
    const float* q = B + rr * row;
    double pm = -INFINITY, qm = -INFINITY;
    for (size_t k = 0; k < row; ++k) {
      pm = std::max(pm, double(p[k]));
      qm = std::max(qm, double(q[k]));
    }
    double ps = 0, qs = 0;
    for (size_t k = 0; k < row; ++k) {
      ps += std::exp(p[k] - pm);
      qs += std::exp(q[k] - qm);
    }
    double kl = 0;
    for (size_t k = 0; k < row; ++k) {
      double pp = std::exp(p[k] - pm) / ps + 1e-8, qq = std::exp(q[k] - qm) / qs + 1e-8;
      kl += pp * std::log(pp / qq);
    }
    for (size_t k = 0; k < row; ++k) imp[rr * row + k] = static_cast<float>(std::fabs(double(p[k]) - q[k]) * kl);
  }
  // Quantiles of the importance, on a deterministic random subset of 1e6 elements when larger
  // (mergekit uses torch.randperm; we use our seeded generator).
  constexpr size_t kSample = 1'000'000;
  size_t ns = std::min(n, kSample);
  float* sample = scratch(1, n);
  if (n <= kSample) {
    std::copy(imp, imp + n, sample);
  } else {
    std::vector<uint32_t> perm(n);
    std::iota(perm.begin(), perm.end(), 0u);
    const uint64_t key = rng_key(a.seed, a.tensor, 0xfu);
    for (size_t i = 0; i < ns; ++i) {  // partial Fisher-Yates
      size_t j = i + static_cast<size_t>(rng_uniform(key, i) * static_cast<double>(n - i));
      std::swap(perm[i], perm[std::min(j, n - 1)]);
      sample[i] = imp[perm[i]];
    }
  }
  auto quantile = [&](double q) {
    size_t k = static_cast<size_t>(std::floor(q * static_cast<double>(ns - 1)));
    std::nth_element(sample, sample + k, sample + ns);
    return sample[k];
  };
  const float q25 = quantile(0.25), q50 = quantile(0.5), q75 = quantile(0.75);
  const float thr = q50 + 1.5f * (q75 - q25);
  for (size_t j = 0; j < n; ++j) out[j] = imp[j] >= thr ? P[j] : B[j];
}

// §2.11
void passthrough(const Run& r, float* out) {
  const KernelArgs& a = r.a;
  if (a.inputs.size() != 1)
    fail(kStage, "passthrough: tensor '{}': needs exactly one input model (got {})", a.tensor, a.inputs.size());
  const float s = static_cast<float>(mparam(a, 0, "scale"));
  const float* x = a.inputs[0];
  r.each([&](size_t b, size_t e) {
    for (size_t j = b; j < e; ++j) out[j] = s == 1.0f ? x[j] : x[j] * s;
  });
}

// §2.12
void ram(const Run& r, bool plus, float* out) {
  const KernelArgs& a = r.a;
  require_base(a, plus ? "ramplus_tl" : "ram");
  const float* B = a.inputs[a.base];
  auto idx = non_base(a);
  const size_t m = idx.size();
  const double eps = gparam(a, "epsilon");
  std::vector<double> lam(m, 1.0);
  if (plus) {
    const double rr = gparam(a, "r"), alpha = gparam(a, "alpha");
    for (size_t i = 0; i < m; ++i) {
      double shared = 0, unique = 0;
      for (size_t j = 0; j < r.n; ++j) {
        if (!(std::fabs(double(a.inputs[idx[i]][j]) - B[j]) > eps)) continue;
        int c = 0;
        for (size_t q = 0; q < m; ++q) c += std::fabs(double(a.inputs[idx[q]][j]) - B[j]) > eps;
        (c == 1 ? unique : shared) += 1;
      }
      double rho = shared / std::max(unique, eps);
      lam[i] = 1.0 + rr * std::clamp(rho, 0.0, alpha);
    }
  }
  r.each([&](size_t b, size_t e) {
    for (size_t j = b; j < e; ++j) {
      int c = 0;
      for (size_t i = 0; i < m; ++i) c += std::fabs(double(a.inputs[idx[i]][j]) - B[j]) > eps;
      double s = 0;
      for (size_t i = 0; i < m; ++i) {
        double t = double(a.inputs[idx[i]][j]) - B[j];
        if (!(std::fabs(t) > eps)) continue;
        s += c == 1 ? t * lam[i] : t / c;
      }
      out[j] = static_cast<float>(B[j] + s);
    }
  });
}

}  // namespace

RankValue rank_value_reference(const float* values, size_t n, size_t r) {
  EM_ASSERT(r < n);
  std::vector<float> tmp(values, values + n);
  std::nth_element(tmp.begin(), tmp.begin() + static_cast<std::ptrdiff_t>(r), tmp.end());
  RankValue rv{tmp[r], 0, 0};
  for (size_t i = 0; i < n; ++i) {
    rv.less += values[i] < rv.value;
    rv.equal += values[i] == rv.value;
  }
  return rv;
}

namespace {
// Order-preserving map of a float to uint32 (-0 and +0 map alike; NaNs are not expected).
inline uint32_t float_key(float v) {
  uint32_t b = f32_to_bits(v == 0.0f ? 0.0f : v);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}
inline float key_float(uint32_t k) { return bits_to_f32((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k); }
}  // namespace

namespace {
// Radix select on 32-bit keys: digits of 11, 11 and 10 bits, most significant first. Each pass
// histograms the elements whose higher digits match the prefix found so far. With `par`, each pass
// histograms blocks of the input in parallel and adds the counts (exact integers: the result does
// not depend on the thread count).
template <typename KeyOf>
uint32_t radix_select(size_t n, size_t r, KeyOf key_of, size_t& less, size_t& equal, const ParallelFor* par) {
  EM_ASSERT(r < n);
  constexpr int kShift[3] = {21, 10, 0};
  constexpr uint32_t kWidth[3] = {11, 11, 10};
  constexpr size_t kBlock = size_t{1} << 20;  // elements per histogram block (its counts fit uint32)
  const size_t blocks = (n + kBlock - 1) / kBlock;
  uint32_t prefix = 0, prefix_mask = 0;
  less = equal = 0;
  std::vector<size_t> hist;
  std::vector<uint32_t> block_hist;
  for (int p = 0; p < 3; ++p) {
    const uint32_t digit_mask = (1u << kWidth[p]) - 1;
    const size_t bins = size_t{1} << kWidth[p];
    block_hist.assign(blocks * bins, 0);
    auto count = [&](size_t blk) {
      uint32_t* h = block_hist.data() + blk * bins;
      for (size_t i = blk * kBlock, e = std::min(n, i + kBlock); i < e; ++i) {
        const uint32_t k = key_of(i);
        if ((k & prefix_mask) == prefix) ++h[(k >> kShift[p]) & digit_mask];
      }
    };
    if (par && blocks > 1) par->run(blocks, count);
    else
      for (size_t blk = 0; blk < blocks; ++blk) count(blk);
    hist.assign(bins, 0);
    for (size_t blk = 0; blk < blocks; ++blk)
      for (size_t b = 0; b < bins; ++b) hist[b] += block_hist[blk * bins + b];
    size_t need = r - less;
    uint32_t b = 0;
    for (; b < hist.size(); ++b) {
      if (need < hist[b]) break;
      need -= hist[b];
      less += hist[b];
    }
    EM_ASSERT(b < hist.size());
    prefix |= b << kShift[p];
    prefix_mask |= digit_mask << kShift[p];
    equal = hist[b];
  }
  return prefix;
}
}  // namespace

RankValue rank_value(const float* values, size_t n, size_t r) {
  RankValue rv;
  uint32_t k =
      radix_select(n, r, [values](size_t i) { return float_key(values[i]); }, rv.less, rv.equal, nullptr);
  rv.value = key_float(k);
  return rv;
}

RankValue rank_value_of_abs(const float* values, size_t n, size_t r, const ParallelFor* par) {
  // |x| is non-negative: its key is its bits with the top bit set (no separate |x| buffer).
  RankValue rv;
  uint32_t k = radix_select(n, r, [values](size_t i) { return f32_to_bits(std::fabs(values[i])) | 0x80000000u; }, rv.less,
                            rv.equal, par);
  rv.value = key_float(k);
  return rv;
}

void ParallelFor::run(size_t n_chunks, const std::function<void(size_t)>& fn) const {
  for (size_t c = 0; c < n_chunks; ++c) fn(c);
}

const MethodSpec* find_method(std::string_view name) {
  for (const auto& m : registry())
    if (m.name == name) return &m;
  return nullptr;
}

std::vector<std::string> method_names() {
  std::vector<std::string> out;
  for (const auto& m : registry()) out.push_back(m.name);
  return out;
}

namespace {
uint64_t splitmix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
}  // namespace

uint64_t rng_key(uint64_t seed, std::string_view tensor, uint64_t stream) {
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a of the tensor name
  for (char c : tensor) h = (h ^ static_cast<uint8_t>(c)) * 0x100000001b3ull;
  return splitmix(splitmix(seed) ^ h) ^ splitmix(stream + 0x632be59bd9b4e019ull);
}

double rng_uniform(uint64_t key, uint64_t index) { return static_cast<double>(rng_bits(key, index)) * 0x1.0p-53; }

void run_method(std::string_view method, const KernelArgs& args, float* out) {
  EM_ASSERT(args.params.empty() || args.params.size() == args.inputs.size());
  Run r{args, static_cast<size_t>(shape_numel(args.shape)), find_method(method)};
  t_spec = r.spec;
  if (args.inputs.empty()) fail(kStage, "{}: tensor '{}': no input tensors", method, args.tensor);
  if (method == "linear") return linear(r, out);
  if (method == "slerp") return slerp(r, out);
  if (method == "nuslerp") return nuslerp(r, out);
  if (method == "multislerp") return multislerp(r, out);
  if (method == "karcher") return karcher(r, out);
  if (method == "model_stock") return model_stock(r, out);
  for (const auto& g : kGta)
    if (g.name == method) return gta(r, g, out);
  if (method == "sce") return sce(r, out);
  if (method == "nearswap") return nearswap(r, out);
  if (method == "arcee_fusion") return arcee_fusion(r, out);
  if (method == "passthrough") return passthrough(r, out);
  if (method == "ram") return ram(r, false, out);
  if (method == "ramplus_tl") return ram(r, true, out);
  fail(kStage, "unknown merge method '{}'", method);
}

}  // namespace evomerge
