// Internal: compiler support for the x86 SIMD kernels. WSC_X86_SIMD is 1 where functions can
// be compiled for AVX2 / AVX-512 with target attributes (GCC, Clang on x86-64) whatever the
// build's baseline; elsewhere only the scalar code is built.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__)
#define WSC_X86_SIMD 1
// GCC 12 reports the intrinsics' own _mm512_undefined_* placeholders as maybe-uninitialized
// (GCC bug 105593, fixed in GCC 13); the warning points into the header, so it is silenced there.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#define WSC_AVX2 __attribute__((target("avx2")))
#define WSC_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))
#else
#define WSC_X86_SIMD 0
#endif
