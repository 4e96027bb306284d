// Internal: per-bin (sum, count) accumulation of a block of binned float32 values, the
// second half of bin_uniform.
#pragma once
#include <cstdint>

#include "simd_arch.h"

namespace wsc {
namespace detail {

// (sum, count) of one bin, updated with a single 128-bit add per element. Counts held as
// doubles are exact up to 2^53 elements.
typedef double SumCount __attribute__((vector_size(16)));

// Adds x[0..m) (m <= kBlock) to sub-histogram j % subs of bin bins[j] (subs is 1, 2 or 8;
// the sub-histograms of a bin are adjacent: bin b, sub s is hist[b * subs + s]), except that a
// group of 16 elements all in one bin (most groups when one bin holds most weights) adds their
// pairwise sum once, to sub-histogram (j / 16) % subs; a tail shorter than 16 adds to
// sub-histogram 0. Every SIMD level adds the same values in the same order, so the sums are
// identical bit for bit.
void accumulate(const float* x, const uint32_t* bins, int64_t m, int subs, SumCount* hist);

#if WSC_X86_SIMD
// The pairwise sum of 16 floats in double, in the order of the scalar sum16 of
// bin_accumulate.cpp: ((x0 + x8) + (x4 + x12)) + ((x2 + x10) + (x6 + x14)) + ...
WSC_AVX512 inline double sum16_avx512(__m512 v) {
  const __m512d s8 = _mm512_add_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(v)),
                                   _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1)));
  const __m256d s4 = _mm256_add_pd(_mm512_castpd512_pd256(s8), _mm512_extractf64x4_pd(s8, 1));
  const __m128d s2 = _mm_add_pd(_mm256_castpd256_pd128(s4), _mm256_extractf128_pd(s4, 1));
  return _mm_cvtsd_f64(_mm_add_sd(s2, _mm_unpackhi_pd(s2, s2)));
}
#endif

}  // namespace detail
}  // namespace wsc
