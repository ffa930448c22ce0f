// Internal to the AVX-512 code (gemm_avx512*.cpp, gemm_amx_packed.cpp, gemm_dispatch.cpp,
// attention_kernels_avx512.cpp, attention_amx.cpp): <immintrin.h> with GCC 12's false positives on
// it switched off for the including file. Its
// _mm512_reduce_add_ps / _mm512_reduce_max_ps pass _mm256_undefined_pd() to the extract builtins,
// which -Wuninitialized and -Wmaybe-uninitialized flag at every inlined use (the compiler's own
// header, not our code; the value is never read).
#pragma once

#include <immintrin.h>

#pragma GCC diagnostic ignored "-Wuninitialized"
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
