// AMX GEMM kernel (gemm.h) for bf16 weights. Weights packed for the tiles (GemmWeights::packed, as
// the engine's are) go to our tile kernel (gemm_amx_packed.cpp); weights read in place to oneDNN's
// matmul (its brgemm kernels use the AMX tiles of Sapphire Rapids and later), below.
// oneDNN on the packed bytes as its blocked BA16a16b2a weights was measured too and rejected: at
// m = 512 (2 threads, load ~4) 121 GFLOP/s exact and 0.07 (a reference fallback) bf16, against 296
// and 919 for the tile kernel and 168 / 510 for oneDNN on W in place.
// oneDNN on W in place, measured on this class of CPU, idle (bf16 m=512,
// n=k=2048, W read in place as a "ba" matrix, no reorder): 1.6 TFLOP/s on one core, 3.0 on two;
// a reordered ("any") W was slower (1.0 / 1.8). Any f32-FMA kernel is bounded by 64 FLOP/cycle
// (~0.2 TFLOP/s a core). W is not copied, but oneDNN re-packs each W block into the tile layout on
// every call, which at decode's few rows costs more than reading W: hence the packed path.
//
// The bf16 parts of the activations (kSplitParts exact, one under Precision::Bf16) are stacked
// into one [parts*m x k] source, so each weight is read once per call for all parts; the parts'
// products are then summed. One part is written straight into C (oneDNN takes C's row stride). The
// caller's threads split W's rows, each running oneDNN single-threaded (its OpenMP team would
// compete with the engine's pool for the same cores).
#include "infer/gemm.h"

#if EVOMERGE_HAVE_ONEDNN
#include <omp.h>

#include <dnnl.hpp>
#endif

#include "common/error.h"

namespace evomerge::infer_detail {

#if EVOMERGE_HAVE_ONEDNN
namespace {

struct Primitive {
  dnnl::matmul matmul;
  size_t scratch_bytes = 0;
};

dnnl::engine& cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// oneDNN's primitive cache (a global LRU of 1024 entries) makes a repeated shape a lookup of a few
// microseconds; the first use of a shape JIT-compiles its kernel (~0.5 ms). The primitive may run
// on several threads at once: each passes its own scratchpad (user mode).
// dst [rows x n] f32 with row stride ldc.
Primitive primitive_for(int64_t rows, int64_t n, int64_t k, int64_t ldc) {
  using dnnl::memory;
  const memory::desc src({rows, k}, memory::data_type::bf16, memory::format_tag::ab);
  const memory::desc wei({k, n}, memory::data_type::bf16, memory::dims{1, k});
  const memory::desc dst({rows, n}, memory::data_type::f32, memory::dims{ldc, 1});
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src, wei, dst), attr, cpu_engine());
  return {dnnl::matmul(pd), pd.scratchpad_desc().get_size()};
}

}  // namespace

bool gemm_amx_built() {
  return true;
}

void gemm_rows_amx(const GemmActivations& A, const GemmWeights& W, int64_t r0, int64_t r1, float* C,
                   int64_t ldc, GemmScratch& scratch) {
  using dnnl::memory;
  if (W.packed) return gemm_rows_amx_packed(A, *W.packed, r0, r1, C, ldc, scratch);
  thread_local const bool one_thread = (omp_set_num_threads(1), true);
  (void)one_thread;
  const int64_t m = A.m, n = r1 - r0, k = A.k, parts = A.parts, rows = parts * m;
  const bool direct = parts == 1;  // one part: its product is C
  const int64_t ld_dst = direct ? ldc : n;
  const Primitive p = primitive_for(rows, n, k, ld_dst);
  if (!direct && scratch.wide.size() < static_cast<size_t>(rows * n)) scratch.wide.resize(rows * n);
  if (scratch.library.size() < p.scratch_bytes) scratch.library.resize(p.scratch_bytes);
  dnnl::engine& eng = cpu_engine();
  thread_local dnnl::stream stream(eng);
  auto* w = const_cast<std::byte*>(W.data) + r0 * k * 2;
  memory src({{rows, k}, memory::data_type::bf16, memory::format_tag::ab}, eng,
             const_cast<uint16_t*>(A.split));
  memory wei({{k, n}, memory::data_type::bf16, memory::dims{1, k}}, eng, w);
  memory dst({{rows, n}, memory::data_type::f32, memory::dims{ld_dst, 1}}, eng,
             direct ? C : scratch.wide.data());
  memory pad({{static_cast<int64_t>(scratch.library.size())},
              memory::data_type::u8,
              memory::format_tag::a},
             eng, scratch.library.data());
  p.matmul.execute(stream, {{DNNL_ARG_SRC, src},
                            {DNNL_ARG_WEIGHTS, wei},
                            {DNNL_ARG_DST, dst},
                            {DNNL_ARG_SCRATCHPAD, pad}});
  stream.wait();
  if (direct) return;
  // C = sum of the parts' products, the smallest first (rows p*m.. of `wide` hold part p's).
  const float* wide = scratch.wide.data();
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      const int64_t e = i * n + j;
      float sum = wide[(parts - 1) * m * n + e];
      for (int64_t p = parts - 2; p >= 0; --p) sum += wide[p * m * n + e];
      C[i * ldc + j] = sum;
    }
}

#else

bool gemm_amx_built() {
  return false;
}

void gemm_rows_amx(const GemmActivations&, const GemmWeights&, int64_t, int64_t, float*, int64_t,
                   GemmScratch&) {
  EM_ASSERT(!"gemm_rows_amx called in a build without oneDNN");
}

#endif

}  // namespace evomerge::infer_detail
