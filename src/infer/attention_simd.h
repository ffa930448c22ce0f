// The SIMD attention operations (attention_kernels.h: AttentionOps) written once over a vector type
// V, included by attention_kernels_avx2.cpp and attention_kernels_avx512.cpp, each of which defines
// EM_ATTN_TARGET (the target attribute) and its V before including this file:
//   V::reg, V::kLanes, zero, load, load_n (first n lanes, rest 0), store, store_n, set1, fmadd,
//   mul, recip (1/x within a few ulp), add, sub, max, min, hsum, hmax, round (to nearest), pow2
//   (2^n for integral n in
//   [-126, 127]), zero_below (lanes of x below t set to 0 in v).
// Everything is in an anonymous namespace: each including file gets its own copy for its ISA.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "infer/attention_kernels.h"

namespace evomerge::infer_detail {
namespace {

#define EM_ATTN_INLINE EM_ATTN_TARGET __attribute__((always_inline)) inline

// exp(x): x = n ln2 + r, |r| <= ln2 / 2 (ln2 in two parts, Cody-Waite), e^r by Cephes' expf
// polynomial, times 2^n. x clamped to [kExpLo, kExpHi] (2^n stays a normal float), and 0 below
// kExpLo (std::exp is subnormal there).
constexpr float kExpLo = -87.3365447505531f;  // ln(2^-126)
constexpr float kExpHi = 88.3762626647949f;
template <class V>
EM_ATTN_INLINE typename V::reg vexp(typename V::reg x) {
  using R = typename V::reg;
  const R xc = V::min(V::max(x, V::set1(kExpLo)), V::set1(kExpHi));
  const R n = V::round(V::mul(xc, V::set1(1.44269504088896341f)));
  R r = V::fmadd(n, V::set1(-0.693359375f), xc);
  r = V::fmadd(n, V::set1(2.12194440e-4f), r);
  R p = V::set1(1.9875691500e-4f);
  p = V::fmadd(p, r, V::set1(1.3981999507e-3f));
  p = V::fmadd(p, r, V::set1(8.3334519073e-3f));
  p = V::fmadd(p, r, V::set1(4.1665795894e-2f));
  p = V::fmadd(p, r, V::set1(1.6666665459e-1f));
  p = V::fmadd(p, r, V::set1(5.0000001201e-1f));
  p = V::fmadd(p, V::mul(r, r), V::add(r, V::set1(1.0f)));
  return V::zero_below(x, kExpLo, V::mul(p, V::pow2(n)));
}

// ---- S = scale · Q · panel: MR rows x kPanelKeys keys in registers ----

template <class V, int MR>
EM_ATTN_TARGET void scores_tile(const float* q, int64_t ldq, const float* panel, int64_t nkeys,
                                int64_t hd, float scale, float* S, int64_t lds) {
  constexpr int NV = static_cast<int>(kPanelKeys) / V::kLanes;
  typename V::reg acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int c = 0; c < NV; ++c) acc[i][c] = V::zero();
  for (int64_t d = 0; d < hd; ++d) {
    typename V::reg k[NV];
#pragma GCC unroll 4
    for (int c = 0; c < NV; ++c) k[c] = V::load(panel + d * kPanelKeys + c * V::kLanes);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const typename V::reg qi = V::set1(q[i * ldq + d]);
#pragma GCC unroll 4
      for (int c = 0; c < NV; ++c) acc[i][c] = V::fmadd(qi, k[c], acc[i][c]);
    }
  }
  const typename V::reg sc = V::set1(scale);
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int c = 0; c < NV; ++c) {
      const int64_t left = nkeys - c * V::kLanes;
      if (left >= V::kLanes)
        V::store(S + i * lds + c * V::kLanes, V::mul(acc[i][c], sc));
      else if (left > 0)
        V::store_n(S + i * lds + c * V::kLanes, V::mul(acc[i][c], sc), left);
    }
}

template <class V, int MR>
EM_ATTN_TARGET void scores_simd(const float* q, int64_t ldq, int64_t rows, const float* panel,
                                int64_t nkeys, int64_t hd, float scale, float* S, int64_t lds) {
  static_assert(MR >= 1);
  if (rows == MR) return scores_tile<V, MR>(q, ldq, panel, nkeys, hd, scale, S, lds);
  if constexpr (MR > 1)
    return scores_simd<V, MR - 1>(q, ldq, rows, panel, nkeys, hd, scale, S, lds);
}

// ---- one row's scores by dot products (decode) ----

template <class V>
EM_ATTN_TARGET float dot_simd(const float* a, const float* b, int64_t n) {
  typename V::reg acc0 = V::zero(), acc1 = V::zero();
  int64_t d = 0;
  for (; d + 2 * V::kLanes <= n; d += 2 * V::kLanes) {
    acc0 = V::fmadd(V::load(a + d), V::load(b + d), acc0);
    acc1 = V::fmadd(V::load(a + d + V::kLanes), V::load(b + d + V::kLanes), acc1);
  }
  for (; d < n; d += V::kLanes) {
    const int64_t left = std::min<int64_t>(V::kLanes, n - d);
    acc0 = V::fmadd(V::load_n(a + d, left), V::load_n(b + d, left), acc0);
  }
  return V::hsum(V::add(acc0, acc1));
}

template <class V>
EM_ATTN_TARGET void scores_dot_simd(const float* q, const float* k, int64_t ldk, int64_t nkeys,
                                    int64_t hd, float scale, float* S) {
  for (int64_t j = 0; j < nkeys; ++j) S[j] = scale * dot_simd<V>(q, k + j * ldk, hd);
}

// ---- softmax pieces ----

template <class V>
EM_ATTN_TARGET float row_max_simd(const float* x, int64_t n) {
  typename V::reg m = V::set1(-std::numeric_limits<float>::infinity());
  int64_t i = 0;
  for (; i + V::kLanes <= n; i += V::kLanes) m = V::max(m, V::load(x + i));
  float mx = V::hmax(m);
  for (; i < n; ++i) mx = std::max(mx, x[i]);
  return mx;
}

template <class V>
EM_ATTN_TARGET float exp_sum_simd(float* x, int64_t n, float mx) {
  const typename V::reg m = V::set1(mx);
  typename V::reg s0 = V::zero(), s1 = V::zero();
  int64_t i = 0;
  for (; i + 2 * V::kLanes <= n; i += 2 * V::kLanes) {
    const typename V::reg e0 = vexp<V>(V::sub(V::load(x + i), m));
    const typename V::reg e1 = vexp<V>(V::sub(V::load(x + i + V::kLanes), m));
    V::store(x + i, e0), V::store(x + i + V::kLanes, e1);
    s0 = V::add(s0, e0), s1 = V::add(s1, e1);
  }
  for (; i < n; i += V::kLanes) {
    const int64_t left = std::min<int64_t>(V::kLanes, n - i);
    // Lanes past n hold exp(0 - mx) garbage: store_n drops them, zero_below cannot, so mask here.
    const typename V::reg e = V::and_n(vexp<V>(V::sub(V::load_n(x + i, left), m)), left);
    V::store_n(x + i, e, left);
    s0 = V::add(s0, e);
  }
  return V::hsum(V::add(s0, s1));
}

template <class V>
EM_ATTN_TARGET double log_sum_exp_simd(const float* x, int64_t n, float mx) {
  constexpr int64_t kChunk = 256;  // terms summed in f32 lanes before the double total
  const typename V::reg m = V::set1(mx);
  double total = 0;
  for (int64_t c0 = 0; c0 < n; c0 += kChunk) {
    const int64_t c1 = std::min(n, c0 + kChunk);
    typename V::reg s0 = V::zero(), s1 = V::zero();
    int64_t i = c0;
    for (; i + 2 * V::kLanes <= c1; i += 2 * V::kLanes) {
      s0 = V::add(s0, vexp<V>(V::sub(V::load(x + i), m)));
      s1 = V::add(s1, vexp<V>(V::sub(V::load(x + i + V::kLanes), m)));
    }
    for (; i < c1; i += V::kLanes) {
      const int64_t left = std::min<int64_t>(V::kLanes, c1 - i);
      s0 = V::add(s0, V::and_n(vexp<V>(V::sub(V::load_n(x + i, left), m)), left));
    }
    total += static_cast<double>(V::hsum(V::add(s0, s1)));
  }
  return std::log(total);
}

template <class V>
EM_ATTN_TARGET void exp_simd(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; i += V::kLanes) {
    const int64_t left = std::min<int64_t>(V::kLanes, n - i);
    V::store_n(y + i, vexp<V>(V::load_n(x + i, left)), left);
  }
}

template <class V>
EM_ATTN_TARGET void silu_mul_simd(float* g, const float* u, int64_t n) {
  const typename V::reg one = V::set1(1.0f);
  for (int64_t i = 0; i < n; i += V::kLanes) {
    const int64_t left = std::min<int64_t>(V::kLanes, n - i);
    const typename V::reg x = V::load_n(g + i, left);
    const typename V::reg e = vexp<V>(V::sub(V::zero(), x));
    V::store_n(g + i, V::mul(V::mul(x, V::recip(V::add(one, e))), V::load_n(u + i, left)), left);
  }
}

// ---- O = rowscale · P · V: MR rows x NV vectors of head_dim columns in registers ----

// Columns [c0, c0 + NV * kLanes) of rows [0, MR) (the last vector partial when `tail` < kLanes).
template <class V, int MR, int NV>
EM_ATTN_TARGET void pv_tile(const float* P, int64_t ldp, const KvSegment* segs, int nsegs,
                            int64_t ldv, int64_t j0, int64_t j1, int64_t c0, int64_t tail,
                            const float* rowscale, float* O, int64_t ldo) {
  typename V::reg acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int c = 0; c < NV; ++c) acc[i][c] = V::zero();
  for (int s = 0; s < nsegs; ++s) {
    const int64_t a = std::max(j0, segs[s].j0), b = std::min(j1, segs[s].j1);
    const float* vbase = segs[s].v - segs[s].j0 * ldv + c0;
    for (int64_t j = a; j < b; ++j) {
      const float* vr = vbase + j * ldv;
      typename V::reg v[NV];
#pragma GCC unroll 8
      for (int c = 0; c < NV; ++c)
        v[c] = (c + 1 < NV || tail == V::kLanes) ? V::load(vr + c * V::kLanes)
                                                 : V::load_n(vr + c * V::kLanes, tail);
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i) {
        const typename V::reg p = V::set1(P[i * ldp + j]);
#pragma GCC unroll 8
        for (int c = 0; c < NV; ++c) acc[i][c] = V::fmadd(p, v[c], acc[i][c]);
      }
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    const typename V::reg sc = V::set1(rowscale[i]);
#pragma GCC unroll 8
    for (int c = 0; c < NV; ++c) {
      float* o = O + i * ldo + c0 + c * V::kLanes;
      if (c + 1 < NV || tail == V::kLanes)
        V::store(o, V::mul(acc[i][c], sc));
      else
        V::store_n(o, V::mul(acc[i][c], sc), tail);
    }
  }
}

template <class V, int MR, int NV>
EM_ATTN_TARGET void pv_cols(const float* P, int64_t ldp, const KvSegment* segs, int nsegs,
                            int64_t ldv, int64_t j0, int64_t j1, int64_t c0, int64_t nvec,
                            int64_t tail, const float* rowscale, float* O, int64_t ldo) {
  if (nvec == NV)
    return pv_tile<V, MR, NV>(P, ldp, segs, nsegs, ldv, j0, j1, c0, tail, rowscale, O, ldo);
  if constexpr (NV > 1)
    return pv_cols<V, MR, NV - 1>(P, ldp, segs, nsegs, ldv, j0, j1, c0, nvec, tail, rowscale, O,
                                  ldo);
}

template <class V, int MR, int MaxNV>
EM_ATTN_TARGET void pv_rows(const float* P, int64_t ldp, int64_t rows, const KvSegment* segs,
                            int nsegs, int64_t ldv, int64_t j0, int64_t j1, int64_t hd,
                            const float* rowscale, float* O, int64_t ldo) {
  if (rows != MR) {
    if constexpr (MR > 1)
      pv_rows<V, MR - 1, MaxNV>(P, ldp, rows, segs, nsegs, ldv, j0, j1, hd, rowscale, O, ldo);
    return;
  }
  const int64_t vectors = (hd + V::kLanes - 1) / V::kLanes;
  for (int64_t v0 = 0; v0 < vectors; v0 += MaxNV) {
    const int64_t nvec = std::min<int64_t>(MaxNV, vectors - v0);
    const int64_t c0 = v0 * V::kLanes;
    const int64_t tail = std::min<int64_t>(V::kLanes, hd - (c0 + (nvec - 1) * V::kLanes));
    pv_cols<V, MR, MaxNV>(P, ldp, segs, nsegs, ldv, j0, j1, c0, nvec, tail, rowscale, O, ldo);
  }
}

// The operations table for V: score tiles of ScoreRows rows, P·V tiles of PvRows rows by up to
// PvVectors vectors of head_dim.
template <class V, int ScoreRows, int PvRows, int PvVectors>
const AttentionOps& simd_ops() {
  static const AttentionOps ops{.score_rows = ScoreRows,
                                .pv_rows = PvRows,
                                .scores = scores_simd<V, ScoreRows>,
                                .scores_dot = scores_dot_simd<V>,
                                .row_max = row_max_simd<V>,
                                .exp_sum = exp_sum_simd<V>,
                                .log_sum_exp = log_sum_exp_simd<V>,
                                .exp = exp_simd<V>,
                                .silu_mul = silu_mul_simd<V>,
                                .pv = pv_rows<V, PvRows, PvVectors>};
  return ops;
}

}  // namespace
}  // namespace evomerge::infer_detail
