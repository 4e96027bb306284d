// The binning rule over a block of float32 values.
//
// Fast path: t = (x - lo) * (1/width) in double. It differs from the rule's
// t = (x - lo) / width by at most a few ulps (relative error <= 3 * 2^-53, i.e. < 3e-11 for
// t <= 65538), so floor(t) can only disagree when t lies within kAmbiguous of an integer.
// Any block holding such an element (or a NaN/Inf) is recomputed with the rule's exact
// division, so the result is always the rule's, bit for bit, at every SIMD level (AVX-512:
// 8 doubles a step, AVX2: 4, scalar: the portable loop, which also takes the SIMD tails).
#include <cmath>

#include "bin_rule.h"
#include "simd_arch.h"
#include "wsc/simd.h"

namespace wsc {
namespace detail {
namespace {

constexpr double kAmbiguous = 1e-9;

// Returns how many elements need the exact rule: t near an integer, or x NaN/Inf (then
// frac is NaN and fails both tests).
int64_t fast_scalar(const float* x, int64_t m, double lo, double inv, double top, uint32_t* out) {
  int64_t amb = 0;
  for (int64_t j = 0; j < m; ++j) {
    if (j % 16 == 0) prefetch_next_chunk(x + j);
    double t = (double(x[j]) - lo) * inv;
    double f = std::floor(t);
    double frac = t - f;
    amb += !((frac >= kAmbiguous) & (frac <= 1.0 - kAmbiguous));
    f = f >= 0.0 ? f : 0.0;  // NaN lands in bin 0 (reported by the exact pass)
    f = f <= top ? f : top;
    out[j] = uint32_t(int32_t(f));
  }
  return amb;
}

#if WSC_X86_SIMD

// The scalar loop's steps on the live lanes of x[0..8); returns the ambiguous ones. max/min
// return their second operand for a NaN first one, so a NaN lands in bin 0 as above.
WSC_AVX512 inline __mmask8 fast8_avx512(const float* x, __mmask8 live, __m512d vlo,
                                            __m512d vinv, __m512d vtop, uint32_t* out) {
  const __m512d amb_lo = _mm512_set1_pd(kAmbiguous), amb_hi = _mm512_set1_pd(1.0 - kAmbiguous);
  const __m512d t =
      _mm512_mul_pd(_mm512_sub_pd(_mm512_cvtps_pd(_mm256_maskz_loadu_ps(live, x)), vlo), vinv);
  __m512d f = _mm512_roundscale_pd(t, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  const __m512d frac = _mm512_sub_pd(t, f);
  const __mmask8 ok = _mm512_cmp_pd_mask(frac, amb_lo, _CMP_GE_OQ) &
                      _mm512_cmp_pd_mask(frac, amb_hi, _CMP_LE_OQ);
  f = _mm512_min_pd(_mm512_max_pd(f, _mm512_setzero_pd()), vtop);
  _mm256_mask_storeu_epi32(out, live, _mm512_cvttpd_epi32(f));
  return __mmask8(live & ~ok);
}

WSC_AVX512 int64_t fast_avx512(const float* x, int64_t m, double lo, double inv, double top,
                               uint32_t* out) {
  const __m512d vlo = _mm512_set1_pd(lo), vinv = _mm512_set1_pd(inv), vtop = _mm512_set1_pd(top);
  __mmask8 amb = 0;
  int64_t j = 0;
  for (; j + 8 <= m; j += 8) {
    if (j % 16 == 0) prefetch_next_chunk(x + j);
    amb |= fast8_avx512(x + j, 0xff, vlo, vinv, vtop, out + j);
  }
  if (j < m) amb |= fast8_avx512(x + j, __mmask8((1u << (m - j)) - 1), vlo, vinv, vtop, out + j);
  return amb;
}

WSC_AVX2 int64_t fast_avx2(const float* x, int64_t m, double lo, double inv, double top,
                           uint32_t* out) {
  const __m256d vlo = _mm256_set1_pd(lo), vinv = _mm256_set1_pd(inv), vtop = _mm256_set1_pd(top);
  const __m256d amb_lo = _mm256_set1_pd(kAmbiguous), amb_hi = _mm256_set1_pd(1.0 - kAmbiguous);
  int amb = 0;
  int64_t j = 0;
  for (; j + 4 <= m; j += 4) {
    if (j % 16 == 0) prefetch_next_chunk(x + j);
    const __m256d t = _mm256_mul_pd(
        _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(x + j)), vlo), vinv);
    __m256d f = _mm256_floor_pd(t);
    const __m256d frac = _mm256_sub_pd(t, f);
    const __m256d ok = _mm256_and_pd(_mm256_cmp_pd(frac, amb_lo, _CMP_GE_OQ),
                                     _mm256_cmp_pd(frac, amb_hi, _CMP_LE_OQ));
    amb |= _mm256_movemask_pd(ok) ^ 15;
    f = _mm256_min_pd(_mm256_max_pd(f, _mm256_setzero_pd()), vtop);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + j), _mm256_cvttpd_epi32(f));
  }
  return amb + fast_scalar(x + j, m - j, lo, inv, top, out + j);
}

#endif

int64_t fast_block(const float* x, int64_t m, double lo, double inv, double top, uint32_t* out) {
#if WSC_X86_SIMD
  switch (simd_level()) {
    case SimdLevel::Avx512: return fast_avx512(x, m, lo, inv, top, out);
    case SimdLevel::Avx2: return fast_avx2(x, m, lo, inv, top, out);
    case SimdLevel::Scalar: break;
  }
#endif
  return fast_scalar(x, m, lo, inv, top, out);
}

}  // namespace

int64_t BinRule::apply_f32(const float* x, int64_t m, uint32_t* out) const {
  if (width == 0.0) {
    int64_t bad = 0;
    for (int64_t j = 0; j < m; ++j) {
      bad += !(x[j] - x[j] == 0.0f);
      out[j] = 0;
    }
    return bad;
  }
  if (fast_block(x, m, lo, inv, top, out) == 0) return 0;
  int64_t bad = 0;  // the exact rule on the whole block, counting NaN/Inf inputs
  for (int64_t j = 0; j < m; ++j) {
    bad += !(x[j] - x[j] == 0.0f);  // false exactly for NaN and +-Inf
    out[j] = exact(x[j]);
  }
  return bad;
}

}  // namespace detail
}  // namespace wsc
