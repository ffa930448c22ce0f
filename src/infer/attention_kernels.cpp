// The attention block driver (attention_kernels.h): tiles, causal skip, softmax; the kernel choice;
// and the scalar reference operations. The SIMD operations are in attention_kernels_avx2.cpp and
// attention_kernels_avx512.cpp.
#include <algorithm>
#include <cmath>
#include <limits>

#include "common/error.h"
#include "infer/attention_kernels.h"

namespace evomerge::infer_detail {
namespace {

// ---- scalar reference operations: plain loops, std::exp ----

void scores_scalar(const float* q, int64_t ldq, int64_t rows, const float* panel, int64_t nkeys,
                   int64_t hd, float scale, float* S, int64_t lds) {
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t jj = 0; jj < nkeys; ++jj) {
      float s = 0;
      for (int64_t d = 0; d < hd; ++d) s += q[i * ldq + d] * panel[d * kPanelKeys + jj];
      S[i * lds + jj] = scale * s;
    }
}

void scores_dot_scalar(const float* q, const float* k, int64_t ldk, int64_t nkeys, int64_t hd,
                       float scale, float* S) {
  for (int64_t jj = 0; jj < nkeys; ++jj) {
    float s = 0;
    for (int64_t d = 0; d < hd; ++d) s += q[d] * k[jj * ldk + d];
    S[jj] = scale * s;
  }
}

float row_max_scalar(const float* x, int64_t n) {
  float mx = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, x[i]);
  return mx;
}

float exp_sum_scalar(float* x, int64_t n, float mx) {
  float sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += (x[i] = std::exp(x[i] - mx));
  return sum;
}

double log_sum_exp_scalar(const float* x, int64_t n, float mx) {
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(static_cast<double>(x[i]) - mx);
  return std::log(sum);
}

void exp_scalar(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = std::exp(x[i]);
}

void silu_mul_scalar(float* g, const float* u, int64_t n) {
  for (int64_t i = 0; i < n; ++i) g[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}

void pv_scalar(const float* P, int64_t ldp, int64_t rows, const KvSegment* segs, int nsegs,
               int64_t ldv, int64_t j0, int64_t j1, int64_t hd, const float* rowscale, float* O,
               int64_t ldo) {
  for (int64_t i = 0; i < rows; ++i) {
    float* o = O + i * ldo;
    std::fill(o, o + hd, 0.0f);
    for (int s = 0; s < nsegs; ++s)
      for (int64_t j = std::max(j0, segs[s].j0); j < std::min(j1, segs[s].j1); ++j) {
        const float p = P[i * ldp + j];
        const float* v = segs[s].v + (j - segs[s].j0) * ldv;
        for (int64_t e = 0; e < hd; ++e) o[e] += p * v[e];
      }
    for (int64_t e = 0; e < hd; ++e) o[e] *= rowscale[i];
  }
}

// ---- the driver ----

// panel[d][jj] = K[j0 + jj][d] for jj < n, zero for n <= jj < kPanelKeys.
void pack_keys(const AttentionBlock& b, int64_t j0, int64_t n, float* panel) {
  for (int64_t jj = 0; jj < n; ++jj) {
    const float* k = kv_row(b, j0 + jj, false);
    for (int64_t d = 0; d < b.hd; ++d) panel[d * kPanelKeys + jj] = k[d];
  }
  for (int64_t jj = n; jj < kPanelKeys; ++jj)
    for (int64_t d = 0; d < b.hd; ++d) panel[d * kPanelKeys + jj] = 0.0f;
}

// S rows [0, m) (stride lds) for every key a tile of ops.score_rows rows sees, panel by panel:
// a panel past a tile's last row (causal) or before its first row's window is skipped.
void block_scores(const AttentionOps& ops, const AttentionBlock& b, AttentionScratch& s,
                  int64_t lds) {
  const int64_t L = b.p0 + b.m;
  for (int64_t c0 = first_key(b, 0); c0 < L; c0 += kPanelKeys) {
    const int64_t nk = std::min(kPanelKeys, L - c0);
    pack_keys(b, c0, nk, s.panel.data());
    for (int64_t t0 = 0; t0 < b.m; t0 += ops.score_rows) {
      const int64_t t1 = std::min<int64_t>(b.m, t0 + ops.score_rows);
      if (c0 > b.p0 + t1 - 1 || c0 + nk <= first_key(b, t0)) continue;
      ops.scores(b.q + t0 * b.ldq, b.ldq, t1 - t0, s.panel.data(), nk, b.hd, b.scale,
                 s.scores.data() + t0 * lds + c0, lds);
    }
  }
}

// Row i's scores over [first, pos] become exp(s - max) (soft-capped first), zero elsewhere in
// [first_key(0), L) (what a P·V tile reads); rowscale[i] = 1 / their sum.
void softmax_row(const AttentionOps& ops, const AttentionBlock& b, float* row, int64_t i,
                 float* rowscale) {
  const int64_t pos = b.p0 + i, first = first_key(b, i), lo = first_key(b, 0);
  const int64_t n = pos + 1 - first;
  if (b.softcap > 0.0f)
    for (int64_t j = first; j <= pos; ++j) row[j] = b.softcap * std::tanh(row[j] / b.softcap);
  const float mx = ops.row_max(row + first, n);
  *rowscale = 1.0f / ops.exp_sum(row + first, n, mx);
  if (b.bf16) round_activations_to_bf16(row + first, n, n, 0, 1, row + first);  // in place
  std::fill(row + lo, row + first, 0.0f);
  std::fill(row + pos + 1, row + b.p0 + b.m, 0.0f);
}

void attend_rows_dot(const AttentionOps& ops, const AttentionBlock& b, AttentionScratch& s) {
  float* row = s.scores.data();
  for (int64_t i = 0; i < b.m; ++i) {
    const int64_t first = first_key(b, i), pos = b.p0 + i;
    for (int g = 0; g < b.nsegments; ++g) {
      const KvSegment& seg = b.segments[g];
      const int64_t j0 = std::max(first, seg.j0), j1 = std::min(pos + 1, seg.j1);
      if (j1 > j0)
        ops.scores_dot(b.q + i * b.ldq, seg.k + (j0 - seg.j0) * b.ldkv, b.ldkv, j1 - j0, b.hd,
                       b.scale, row + j0);
    }
    AttentionBlock one = b;  // row i alone: softmax and P·V over its own keys
    one.p0 = pos, one.m = 1;
    softmax_row(ops, one, row, 0, &s.rowscale[0]);
    ops.pv(row, 0, 1, b.segments, b.nsegments, b.ldkv, first, pos + 1, b.hd, s.rowscale.data(),
           b.out + i * b.ldo, b.ldo);
  }
}

}  // namespace

const float* kv_row(const AttentionBlock& b, int64_t j, bool value) {
  for (int s = 0; s < b.nsegments; ++s)
    if (j >= b.segments[s].j0 && j < b.segments[s].j1)
      return (value ? b.segments[s].v : b.segments[s].k) + (j - b.segments[s].j0) * b.ldkv;
  EM_ASSERT(false);
  return nullptr;
}

void AttentionScratch::reserve(int64_t rows, int64_t keys, int64_t hd) {
  const auto grow = [](std::vector<float>& v, int64_t n) {
    if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
  };
  grow(scores, rows * keys);
  grow(rowscale, rows);
  if (rows >= kPanelMinRows) grow(panel, hd * kPanelKeys);
}

void attend_block(AttentionKernel kernel, const AttentionBlock& b, AttentionScratch& s) {
  const AttentionOps& ops = attention_ops(kernel);
  const int64_t L = b.p0 + b.m;
  if (b.m < kPanelMinRows) {
    s.reserve(1, L, b.hd);
    attend_rows_dot(ops, b, s);
    return;
  }
  s.reserve(b.m, L, b.hd);
  block_scores(ops, b, s, L);
  for (int64_t i = 0; i < b.m; ++i) softmax_row(ops, b, s.scores.data() + i * L, i, &s.rowscale[i]);
  for (int64_t t0 = 0; t0 < b.m; t0 += ops.pv_rows) {
    const int64_t t1 = std::min<int64_t>(b.m, t0 + ops.pv_rows);
    ops.pv(s.scores.data() + t0 * L, L, t1 - t0, b.segments, b.nsegments, b.ldkv, first_key(b, t0),
           b.p0 + t1, b.hd, s.rowscale.data() + t0, b.out + t0 * b.ldo, b.ldo);
  }
}

double log_sum_exp(AttentionKernel kernel, const float* x, int64_t n, float mx) {
  return attention_ops(kernel).log_sum_exp(x, n, mx);
}

void exp_with(AttentionKernel kernel, const float* x, float* y, int64_t n) {
  attention_ops(kernel).exp(x, y, n);
}

void silu_mul(AttentionKernel kernel, float* g, const float* u, int64_t n) {
  attention_ops(kernel).silu_mul(g, u, n);
}

const AttentionOps& attention_ops_scalar() {
  static const AttentionOps ops{.score_rows = 1,
                                .pv_rows = 1,
                                .scores = scores_scalar,
                                .scores_dot = scores_dot_scalar,
                                .row_max = row_max_scalar,
                                .exp_sum = exp_sum_scalar,
                                .log_sum_exp = log_sum_exp_scalar,
                                .exp = exp_scalar,
                                .silu_mul = silu_mul_scalar,
                                .pv = pv_scalar};
  return ops;
}

const AttentionOps& attention_ops(AttentionKernel kernel) {
  switch (kernel) {
    case AttentionKernel::Avx2:
      return attention_ops_avx2();
    case AttentionKernel::Avx512:
      return attention_ops_avx512();
    case AttentionKernel::Scalar:
      break;
  }
  return attention_ops_scalar();
}

std::string_view attention_kernel_name(AttentionKernel kernel) {
  switch (kernel) {
    case AttentionKernel::Scalar:
      return "scalar";
    case AttentionKernel::Avx2:
      return "avx2";
    case AttentionKernel::Avx512:
      return "avx512";
  }
  return "?";
}

AttentionKernel attention_kernel_for(GemmKernel gemm) {
  switch (gemm) {
    case GemmKernel::Scalar:
      return AttentionKernel::Scalar;
    case GemmKernel::Avx2:
      return AttentionKernel::Avx2;
    case GemmKernel::Avx512:
    case GemmKernel::Avx512Bf16:
    case GemmKernel::Amx:
      return AttentionKernel::Avx512;
  }
  return AttentionKernel::Scalar;
}

AttentionKernel selected_attention_kernel() {
  return attention_kernel_for(selected_gemm_kernel());
}

std::string attention_kernel_unavailable(AttentionKernel kernel) {
  switch (kernel) {
    case AttentionKernel::Scalar:
      return "";
    case AttentionKernel::Avx2:
      return gemm_kernel_unavailable(GemmKernel::Avx2);
    case AttentionKernel::Avx512:
      return gemm_kernel_unavailable(GemmKernel::Avx512);
  }
  return "unknown kernel";
}

}  // namespace evomerge::infer_detail
