// Per-bin sums and counts. The per-element adds are scalar (a 128-bit {x, 1} add into the
// element's bin) at every level; SIMD finds the groups of 16 in one bin and sums them with
// the same pairwise tree as the scalar sum16. With hot bins (CPUs with AVX-512 only), the full
// groups' elements in a hot bin go to lane accumulators instead and only the others to the
// histogram: accumulate_hot here is the portable twin of the AVX-512 kernel's additions.
#include "bin_accumulate.h"

#include <algorithm>

#include "bin_rule.h"
#include "simd_arch.h"
#include "wsc/common.h"
#include "wsc/simd.h"

namespace wsc {
namespace detail {
namespace {

// ((x0 + x8) + (x4 + x12)) + ((x2 + x10) + (x6 + x14)) + ...: v[u] += v[u + w] for w = 8..1.
double sum16(const float* x) {
  double v[16];
  for (int u = 0; u < 16; ++u) v[u] = double(x[u]);
  return tree16(v);
}

bool one_bin16(const uint32_t* bins) {
  uint32_t diff = 0;
  for (int u = 0; u < 16; ++u) diff |= bins[u] ^ bins[0];
  return diff == 0;
}

// Element u to sub-histogram u % S of its bin (hist holds S sub-histograms per bin).
template <int S>
inline void add_elements(const float* x, const uint32_t* bins, int64_t m, int subs,
                         SumCount* hist) {
  for (int64_t u = 0; u < m; ++u) {
    SumCount add = {double(x[u]), 1.0};
    hist[size_t(bins[u]) * size_t(subs) + size_t(u % S)] += add;
  }
}

constexpr int64_t kMaxGroups = kBlock / 16;

// Groups of 16 in one bin: one[g] = 1 and sum[g] = their pairwise sum (else one[g] = 0).
void groups_scalar(const float* x, const uint32_t* bins, int64_t groups, uint8_t* one,
                   double* sum) {
  for (int64_t g = 0; g < groups; ++g) {
    one[g] = one_bin16(bins + 16 * g);
    if (one[g]) sum[g] = sum16(x + 16 * g);
  }
}

template <int S>
void accumulate_with(const float* x, const uint32_t* bins, int64_t m, const uint8_t* one,
                     const double* sum, SumCount* hist) {
  int64_t j = 0;
  for (; j + 16 <= m; j += 16) {
    if (one[j / 16]) {
      SumCount add = {sum[j / 16], 16.0};
      hist[size_t(bins[j]) * S + size_t((j / 16) % S)] += add;
    } else {
      add_elements<S>(x + j, bins + j, 16, S, hist);
    }
  }
  add_elements<1>(x + j, bins + j, m - j, S, hist);
}

// The hot-bin form of accumulate, without branches: every element of the full groups adds to
// the float32 partial of lane j % 16 of its slot (the cold ones to a spare row, never read),
// each partial added to the lane's float64 sum every kHotPartial elements, so a hot bin's lanes
// get exactly the additions of the AVX-512 kernel's masked adds; the cold elements are listed
// and then added to the histogram (add_listed; hot bins come with 8 or 2 sub-histograms).
void accumulate_hot(const float* x, const uint32_t* bins, int64_t m, int subs, const HotBins& hot,
                    HotSums& sums, SumCount* hist) {
  int64_t count[kMaxHot + 1] = {};  // rows past hot.n are never hit (slot says so)
  uint32_t cold[kBlock];
  int64_t n_cold = 0;
  const int64_t full = m / 16 * 16;
  for (int64_t c = 0; c < full; c += kHotPartial) {
    float partial[kMaxHot + 1][16] = {};
    for (int64_t j = c; j < std::min(c + kHotPartial, full); j += 16)
      for (int u = 0; u < 16; ++u) {
        const int s = hot.slot[bins[j + u]];
        partial[s][u] += x[j + u];
        ++count[s];
        cold[n_cold] = uint32_t(j + u);
        n_cold += s == kMaxHot;
      }
    for (int i = 0; i < hot.n; ++i)
      for (int u = 0; u < 16; ++u) sums.acc[i][u] += double(partial[i][u]);
  }
  for (int i = 0; i < hot.n; ++i) sums.count[i] += count[i];
  check(subs == 8 || subs == 2, "bin_uniform: hot bins need 8 or 2 sub-histograms");
  if (subs == 8) add_listed<8>(x, bins, cold, n_cold, hist);
  else add_listed<2>(x, bins, cold, n_cold, hist);
  add_elements<1>(x + full, bins + full, m - full, subs, hist);
}

#if WSC_X86_SIMD

WSC_AVX512 void groups_avx512(const float* x, const uint32_t* bins, int64_t groups,
                              uint8_t* one, double* sum) {
  for (int64_t g = 0; g < groups; ++g, x += 16, bins += 16) {
    const __m512i b = _mm512_loadu_si512(bins);
    one[g] = _mm512_cmpneq_epi32_mask(b, _mm512_set1_epi32(int(bins[0]))) == 0;
    if (!one[g]) continue;
    sum[g] = sum16_avx512(_mm512_loadu_ps(x));
  }
}

WSC_AVX2 void groups_avx2(const float* x, const uint32_t* bins, int64_t groups, uint8_t* one,
                          double* sum) {
  for (int64_t g = 0; g < groups; ++g, x += 16, bins += 16) {
    const __m256i* bv = reinterpret_cast<const __m256i*>(bins);
    const __m256i first = _mm256_set1_epi32(int(bins[0]));
    const __m256i diff = _mm256_or_si256(_mm256_xor_si256(_mm256_loadu_si256(bv), first),
                                         _mm256_xor_si256(_mm256_loadu_si256(bv + 1), first));
    one[g] = _mm256_testz_si256(diff, diff);
    if (!one[g]) continue;
    const __m256d a0 = _mm256_cvtps_pd(_mm_loadu_ps(x)), a1 = _mm256_cvtps_pd(_mm_loadu_ps(x + 4));
    const __m256d a2 = _mm256_cvtps_pd(_mm_loadu_ps(x + 8));
    const __m256d a3 = _mm256_cvtps_pd(_mm_loadu_ps(x + 12));
    const __m256d s4 = _mm256_add_pd(_mm256_add_pd(a0, a2), _mm256_add_pd(a1, a3));
    const __m128d s2 = _mm_add_pd(_mm256_castpd256_pd128(s4), _mm256_extractf128_pd(s4, 1));
    sum[g] = _mm_cvtsd_f64(_mm_add_sd(s2, _mm_unpackhi_pd(s2, s2)));
  }
}

#endif

}  // namespace

void choose_hot(const SumCount* hist, int64_t k, int subs, HotBins& hot) {
  double count[kMaxHotK + 2] = {};  // count[b + 1] of bin b; count[0] = count[k + 1] = 0
  double total = 0.0;
  int64_t top = 0;
  for (int64_t b = 0; b < k; ++b) {
    for (int s = 0; s < subs; ++s) count[b + 1] += hist[b * subs + s][1];
    total += count[b + 1];
    if (count[b + 1] > count[top + 1]) top = b;
  }
  const auto qualifies = [&](double c) { return c > 0.0 && c * 32.0 >= total; };
  int64_t first = top, last = top;  // the window [first, last]
  hot.n = qualifies(count[top + 1]) ? 1 : 0;
  while (hot.n > 0 && hot.n < kMaxHot) {
    const double below = count[first], above = count[last + 2];
    if (qualifies(below) && below >= above) --first;
    else if (qualifies(above)) ++last;
    else break;
    ++hot.n;
  }
  std::fill(hot.slot, hot.slot + k, uint8_t(kMaxHot));
  for (int i = 0; i < hot.n; ++i) {
    hot.bin[i] = uint32_t(first + i);
    hot.slot[first + i] = uint8_t(i);
  }
}

void add_hot(const HotBins& hot, HotSums& sums, int subs, SumCount* hist) {
  for (int i = 0; i < hot.n; ++i) {
    const SumCount add = {tree16(sums.acc[i]), double(sums.count[i])};
    hist[size_t(hot.bin[i]) * size_t(subs)] += add;
    std::fill(sums.acc[i], sums.acc[i] + 16, 0.0);
    sums.count[i] = 0;
  }
}

void accumulate(const float* x, const uint32_t* bins, int64_t m, int subs, const HotBins& hot,
                HotSums& sums, SumCount* hist) {
  if (hot.n > 0) {
    accumulate_hot(x, bins, m, subs, hot, sums, hist);
    return;
  }
  uint8_t one[kMaxGroups];
  double sum[kMaxGroups];
  const int64_t groups = m / 16;
  switch (simd_level()) {
#if WSC_X86_SIMD
    case SimdLevel::Avx512: groups_avx512(x, bins, groups, one, sum); break;
    case SimdLevel::Avx2: groups_avx2(x, bins, groups, one, sum); break;
#endif
    default: groups_scalar(x, bins, groups, one, sum);
  }
  if (subs == 8) accumulate_with<8>(x, bins, m, one, sum, hist);
  else if (subs == 2) accumulate_with<2>(x, bins, m, one, sum, hist);
  else accumulate_with<1>(x, bins, m, one, sum, hist);
}

}  // namespace detail
}  // namespace wsc
