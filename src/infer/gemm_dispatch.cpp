// Which GEMM kernel runs: CPU feature detection (cpuid + the OS's saved-state mask), the
// EVOMERGE_GEMM override, and the dispatch of gemm_rows to the per-ISA files.
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>

#include "common/error.h"
#include "infer/attention_kernels.h"
#include "infer/avx512_intrinsics.h"
#include "infer/gemm.h"
#include "infer/kernel_info.h"
#include "tensor/convert.h"

namespace evomerge::infer_detail {
namespace {

struct CpuFeatures {
  bool avx2 = false, fma = false, avx512 = false, avx512bf16 = false, amx = false;
  bool os_avx = false, os_avx512 = false, os_amx = false;
};

uint64_t xcr0() {
  uint32_t lo, hi;
  asm volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<uint64_t>(hi) << 32) | lo;
}

CpuFeatures detect() {
  CpuFeatures f;
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  f.fma = c & (1u << 12);
  const bool osxsave = c & (1u << 27);
  if (osxsave) {
    const uint64_t x = xcr0();
    f.os_avx = (x & 0x6) == 0x6;                         // SSE and AVX state
    f.os_avx512 = f.os_avx && (x & 0xe0) == 0xe0;        // opmask, ZMM_Hi256, Hi16_ZMM
    f.os_amx = f.os_avx512 && (x & 0x60000) == 0x60000;  // XTILECFG, XTILEDATA
  }
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
    f.avx2 = b & (1u << 5);
    // AVX-512 F, DQ, BW, VL: the subset every AVX-512 CPU since Skylake-SP has; the kernels use it.
    f.avx512 = (b & (1u << 16)) && (b & (1u << 17)) && (b & (1u << 30)) && (b & (1u << 31));
    f.amx = (d & (1u << 24)) && (d & (1u << 22));  // AMX-TILE, AMX-BF16
    unsigned a1, b1, c1, d1;
    if (a >= 1 && __get_cpuid_count(7, 1, &a1, &b1, &c1, &d1)) f.avx512bf16 = a1 & (1u << 5);
  }
  return f;
}

const CpuFeatures& cpu() {
  static const CpuFeatures f = detect();
  return f;
}

// Linux keeps AMX tile data disabled per process until asked (the state is 8 KiB per thread).
bool amx_permitted() {
  static const bool ok = [] {
    constexpr int kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
    return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
  }();
  return ok;
}

}  // namespace

std::string_view gemm_kernel_name(GemmKernel kernel) {
  switch (kernel) {
    case GemmKernel::Scalar:
      return "scalar";
    case GemmKernel::Avx2:
      return "avx2";
    case GemmKernel::Avx512:
      return "avx512";
    case GemmKernel::Avx512Bf16:
      return "avx512bf16";
    case GemmKernel::Amx:
      return "amx";
  }
  return "?";
}

std::optional<GemmKernel> parse_gemm_kernel(std::string_view name) {
  for (GemmKernel k : kAllGemmKernels)
    if (gemm_kernel_name(k) == name) return k;
  return std::nullopt;
}

std::string gemm_kernel_unavailable(GemmKernel kernel) {
  const CpuFeatures& f = cpu();
  switch (kernel) {
    case GemmKernel::Scalar:
      return "";
    case GemmKernel::Avx2:
      if (!f.avx2 || !f.fma) return "the CPU has no AVX2+FMA";
      return f.os_avx ? "" : "the OS does not save AVX state";
    case GemmKernel::Avx512:
      if (!f.avx512) return "the CPU has no AVX-512 F/DQ/BW/VL";
      return f.os_avx512 ? "" : "the OS does not save AVX-512 state";
    case GemmKernel::Avx512Bf16:
      if (!f.avx512bf16) return "the CPU has no AVX512-BF16";
      return gemm_kernel_unavailable(GemmKernel::Avx512);
    case GemmKernel::Amx:
      if (!gemm_amx_built()) return "built without oneDNN (libdnnl-dev)";
      if (!f.amx) return "the CPU has no AMX-BF16 tiles";
      if (!f.os_amx) return "the OS does not save AMX tile state";
      if (!amx_permitted()) return "Linux refused the AMX tile-data permission (arch_prctl)";
      return gemm_kernel_unavailable(GemmKernel::Avx512);
  }
  return "unknown kernel";
}

GemmKernel selected_gemm_kernel() {
  static const GemmKernel chosen = [] {
    if (const char* env = std::getenv("EVOMERGE_GEMM"); env && *env) {
      auto k = parse_gemm_kernel(env);
      if (!k)
        fail("infer", "EVOMERGE_GEMM='{}' is not a kernel (scalar, avx2, avx512, avx512bf16, amx)",
             env);
      if (std::string why = gemm_kernel_unavailable(*k); !why.empty())
        fail("infer", "EVOMERGE_GEMM='{}' cannot run here: {}", env, why);
      return *k;
    }
    for (GemmKernel k :
         {GemmKernel::Amx, GemmKernel::Avx512Bf16, GemmKernel::Avx512, GemmKernel::Avx2})
      if (gemm_kernel_unavailable(k).empty()) return k;
    return GemmKernel::Scalar;
  }();
  return chosen;
}

GemmKernel gemm_kernel_for(GemmKernel kernel, DType dtype) {
  if ((kernel == GemmKernel::Amx || kernel == GemmKernel::Avx512Bf16) && dtype != DType::BF16)
    return GemmKernel::Avx512;
  return kernel;
}

bool gemm_kernel_packs_bf16(GemmKernel kernel) {
  const GemmKernel bf16 = gemm_kernel_for(kernel, DType::BF16);
  return bf16 == GemmKernel::Amx || bf16 == GemmKernel::Avx512 || bf16 == GemmKernel::Avx2;
}

bool gemm_kernel_forced() {
  const char* env = std::getenv("EVOMERGE_GEMM");
  return env && *env;
}

GemmKernel gemm_kernel_for_rows(GemmKernel selected, DType dtype, int64_t m, bool packed) {
  const GemmKernel kernel = gemm_kernel_for(selected, dtype);
  const int64_t min_rows =
      kernel == GemmKernel::Amx && packed ? kPackedAmxMinRows : kBandwidthBoundRows + 1;
  if (m >= min_rows || !gemm_needs_split(kernel)) return kernel;
  return GemmKernel::Avx512;
}

bool gemm_needs_split(GemmKernel kernel) {
  return kernel == GemmKernel::Amx || kernel == GemmKernel::Avx512Bf16;
}

namespace {

// f32_to_bf16 (tensor/convert.h) on 16 lanes: nearest even by integer rounding of the bit pattern
// (no DAZ, unlike vcvtneps2bf16), NaNs made quiet.
__attribute__((target("avx512f,avx512bw,avx512vl"))) inline __m256i bf16_of(__m512 x) {
  const __m512i bits = _mm512_castps_si512(x);
  const __m512i high = _mm512_srli_epi32(bits, 16);
  const __m512i lsb = _mm512_and_si512(high, _mm512_set1_epi32(1));
  __m512i r = _mm512_srli_epi32(
      _mm512_add_epi32(bits, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), lsb)), 16);
  const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
  r = _mm512_mask_or_epi32(r, nan, high, _mm512_set1_epi32(0x40));
  return _mm512_cvtepi32_epi16(r);
}

// split_activations in one pass per 16 values, the parts' rounding and remainders in registers
// (the plain loops staged each 256 values and converted them part by part).
__attribute__((target("avx512f,avx512bw,avx512vl"))) void split_rows_avx512(const float* A,
                                                                            int64_t m, int64_t k,
                                                                            int64_t lda, int64_t i0,
                                                                            int64_t i1, int parts,
                                                                            uint16_t* out) {
  for (int64_t i = i0; i < i1; ++i)
    for (int64_t c = 0; c < k; c += 16) {
      const __mmask16 mask = static_cast<__mmask16>(k - c >= 16 ? 0xffff : (1u << (k - c)) - 1);
      __m512 rest = _mm512_maskz_loadu_ps(mask, A + i * lda + c);
      for (int p = 0; p < parts; ++p) {
        const __m256i h = bf16_of(rest);
        _mm256_mask_storeu_epi16(out + (p * m + i) * k + c, mask, h);
        // Exact: a bf16 rounding of x differs from x by a value representable in f32.
        if (p + 1 < parts)
          rest = _mm512_sub_ps(
              rest, _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)));
      }
    }
}

}  // namespace

void split_activations(const float* A, int64_t m, int64_t k, int64_t lda, int64_t i0, int64_t i1,
                       int parts, uint16_t* out) {
  // Asked once: this runs per task of 16 rows, and the answer builds a string.
  static const bool avx512 = gemm_kernel_unavailable(GemmKernel::Avx512).empty();
  if (avx512) return split_rows_avx512(A, m, k, lda, i0, i1, parts, out);
  split_activations_reference(A, m, k, lda, i0, i1, parts, out);
}

void split_activations_reference(const float* A, int64_t m, int64_t k, int64_t lda, int64_t i0,
                                 int64_t i1, int parts, uint16_t* out) {
  constexpr int64_t kChunk = 256;
  float rest[kChunk];
  for (int64_t i = i0; i < i1; ++i) {
    if (parts == 1) {  // Precision::Bf16: nothing left over to subtract, no staging copy
      f32_to_bf16(A + i * lda, out + i * k, static_cast<size_t>(k));
      continue;
    }
    for (int64_t c0 = 0; c0 < k; c0 += kChunk) {
      const int64_t c = std::min(kChunk, k - c0);
      std::copy(A + i * lda + c0, A + i * lda + c0 + c, rest);
      for (int p = 0; p < parts; ++p) {
        uint16_t* part = out + (p * m + i) * k + c0;
        f32_to_bf16(rest, part, static_cast<size_t>(c));
        // Exact: a bf16 rounding of x differs from x by a value representable in f32.
        if (p + 1 < parts)
          for (int64_t j = 0; j < c; ++j) rest[j] -= bf16_to_f32(part[j]);
      }
    }
  }
}

void round_activations_to_bf16(const float* A, int64_t k, int64_t lda, int64_t i0, int64_t i1,
                               float* out) {
  constexpr int64_t kChunk = 256;
  uint16_t half[kChunk];
  for (int64_t i = i0; i < i1; ++i)
    for (int64_t c0 = 0; c0 < k; c0 += kChunk) {
      const int64_t c = std::min(kChunk, k - c0);
      f32_to_bf16(A + i * lda + c0, half, static_cast<size_t>(c));
      for (int64_t j = 0; j < c; ++j) out[i * k + c0 + j] = bf16_to_f32(half[j]);
    }
}

void gemm_rows(GemmKernel kernel, const GemmActivations& A, const GemmWeights& W, int64_t r0,
               int64_t r1, float* C, int64_t ldc, GemmScratch& scratch) {
  if (A.m <= 0 || r1 <= r0) return;
  switch (kernel) {
    case GemmKernel::Scalar:
      return gemm_rows_scalar(A, W, r0, r1, C, ldc);
    case GemmKernel::Avx2:
      if (W.packed) return gemm_rows_avx2_packed(A, *W.packed, r0, r1, C, ldc);
      return gemm_rows_avx2(A, W, r0, r1, C, ldc);
    case GemmKernel::Avx512:
      if (W.packed) return gemm_rows_avx512_packed(A, *W.packed, r0, r1, C, ldc);
      return gemm_rows_avx512(A, W, r0, r1, C, ldc);
    case GemmKernel::Avx512Bf16:
      return gemm_rows_avx512bf16(A, W, r0, r1, C, ldc);
    case GemmKernel::Amx:
      return gemm_rows_amx(A, W, r0, r1, C, ldc, scratch);
  }
}

}  // namespace evomerge::infer_detail

namespace evomerge {

std::string cpu_kernel_summary() {
  using namespace infer_detail;
  const GemmKernel k = selected_gemm_kernel();
  std::string s = fmt::format("gemm kernel {}", gemm_kernel_name(k));
  if (gemm_kernel_for(k, DType::F32) != k)
    s += fmt::format(" for bf16 weights, {} for f16/f32",
                     gemm_kernel_name(gemm_kernel_for(k, DType::F32)));
  const bool packed = gemm_kernel_packs_bf16(k);
  if (gemm_kernel_forced()) {
    s += " (EVOMERGE_GEMM, at every batch size)";
  } else {
    s += " (fastest here)";
    const GemmKernel few = gemm_kernel_for_rows(k, DType::BF16, 1, packed);
    if (few != gemm_kernel_for(k, DType::BF16))
      s += fmt::format(", {} for products of <= {} rows (decode: bound by reading the weights)",
                       gemm_kernel_name(few), packed ? kPackedAmxMinRows - 1 : kBandwidthBoundRows);
  }
  if (packed)
    s += fmt::format("; bf16 weights packed once for the {} kernel, the only copy the kernels read",
                     gemm_kernel_name(gemm_kernel_for(k, DType::BF16)));
  s += fmt::format("; attention and softmax kernel {}",
                   attention_kernel_name(attention_kernel_for(k)));
  for (GemmKernel each : kAllGemmKernels) {
    const std::string why = gemm_kernel_unavailable(each);
    s += fmt::format("; {}: {}", gemm_kernel_name(each), why.empty() ? "available" : why);
  }
  return s;
}

}  // namespace evomerge
