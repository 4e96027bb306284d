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

// The bins whose elements are summed in 16 lane accumulators (lane j % 16 for element j of a
// block) instead of added to the histogram one by one: on weights a few adjacent bins hold most
// elements, so most additions then leave the histogram's load-add-store chain (binning.cpp
// decides where they are used). The hot bins are a window bin[i] = bin[0] + i, i < n, so one
// subtract and compare tell the cold elements apart. A lane adds its elements first in float32,
// kHotPartial / 16 of them at most, and then that partial to its float64 sum (a masked float32
// add per group and hot bin, half the work of float64: k = 256 on 25M weights, two threads,
// 6.4-6.6 -> 5.0-5.3 ms); a hot bin's sum thus errs by at most about kHotPartial / 16 * 2^-24
// times the sum of its elements' magnitudes (tests/conftest.py, assert_sums_close).
constexpr int kMaxHot = 4;
constexpr int64_t kMaxHotK = 4096;  // hot bins only for k <= this
constexpr int64_t kHotPartial = 256;  // elements of a block per float32 partial of the lanes
struct HotBins {
  int n = 0;
  uint32_t bin[kMaxHot] = {};
  uint8_t slot[kMaxHotK];  // bin b's hot slot (index into bin), or kMaxHot: set by choose_hot
};

// The hot bins' lane sums and counts, kept across blocks until add_hot.
struct HotSums {
  alignas(64) double acc[kMaxHot][16] = {};
  int64_t count[kMaxHot] = {};
};

// The hot bins for the blocks to come (k <= kMaxHotK), from the counts in hist (k bins of subs
// sub-histograms) so far: the most counted bin (ties to the lower) if it holds at least 1/32 of
// the elements, then its more counted neighbour (ties to the lower) while that one does too, up
// to kMaxHot adjacent bins. Depends on the counts alone, so every SIMD level chooses the same.
void choose_hot(const SumCount* hist, int64_t k, int subs, HotBins& hot);

// Adds each hot bin's 16 lane sums (pairwise, as sum16: lane u + lane u + 8, then + 4, + 2,
// + 1) and its count to sub-histogram 0 of the bin, and zeroes them: before the hot bins
// change, and at the end.
void add_hot(const HotBins& hot, HotSums& sums, int subs, SumCount* hist);

// Adds x[0..m) (m <= kBlock) to sub-histogram j % subs of bin bins[j] (subs is 1, 2 or 8;
// the sub-histograms of a bin are adjacent: bin b, sub s is hist[b * subs + s]); a tail
// shorter than 16 adds to sub-histogram 0. Without hot bins, a group of 16 elements all in one
// bin (most groups when one bin holds most weights) adds their pairwise sum once, to
// sub-histogram (j / 16) % subs. With hot bins, an element of the full groups in a hot bin
// adds to its lane's float32 partial instead (added to the lane of sums every kHotPartial
// elements), and the others go to sub-histogram c % subs, c their place in the list of the
// block's other elements. Every SIMD level adds the same values in the same
// order, so the sums are identical bit for bit.
void accumulate(const float* x, const uint32_t* bins, int64_t m, int subs, const HotBins& hot,
                HotSums& sums, SumCount* hist);

// The listed elements x[list[c]], in order of c, each {x, 1} to sub-histogram c % S of its bin
// bins[list[c]]: the cold elements of the hot-bin path, shared by the AVX-512 kernel and its
// portable twin so both add them in the same order.
template <int S, class Bin, class Pos>
inline void add_listed(const float* x, const Bin* bins, const Pos* list, int64_t n,
                       SumCount* hist) {
  for (int64_t c = 0; c < n; ++c) {
    const int64_t j = list[c];
    hist[size_t(bins[j]) * S + size_t(c % S)] += SumCount{double(x[j]), 1.0};
  }
}

// The pairwise sum of 16 doubles in place: v[u] += v[u + w] for w = 8, 4, 2, 1; returns v[0].
inline double tree16(double* v) {
  for (int w = 8; w >= 1; w /= 2)
    for (int u = 0; u < w; ++u) v[u] += v[u + w];
  return v[0];
}

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
