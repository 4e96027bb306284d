// Fused AVX-512 uniform binning: float32 index rule, index store, per-bin sums and counts over
// a block of up to kBlock elements, 16 at a time.
//
// Index rule in float32: t = (x - lo) * inv + e with one fused multiply-add, e = (k + 2) * 2^-21,
// clamped to [0.5, k - 0.5] and truncated. Three float32 roundings put t within
// 3 * 2^-24 * (k + 2) of the exact (x - lo) / width + e, so trunc(t) is the rule's bin unless
// t lies within 2e above an integer: those lanes, found as trunc(t - 2e) != trunc(t) (the
// subtraction's rounding, at most 2^-24 * k, stays within the margin e - 3 * 2^-24 * (k + 2)),
// and NaN/Inf inputs are recomputed with the rule's exact division. Beyond the clamps both
// give bin 0 or k - 1. A group is first tried without the clamps: where trunc(t) lies in
// [0, k) and equals trunc(t - 2e), it is the rule's bin by the same margin (for t in (-1, 2e)
// both truncate to 0, and the rule clamps to 0); any other lane (outside [lo, hi], NaN/Inf:
// truncation gives INT_MIN) sends the group through the clamped rule.
//
// Sums and counts: the additions of bin_accumulate.cpp in the same order (a group of 16 in
// one bin adds its pairwise sum16 to sub-histogram g % S, other elements add {x, 1} to
// sub-histogram j % S, a tail shorter than 16 to sub-histogram 0; with hot bins, a full
// group's elements in a hot bin add to lane j % 16 of the bin's float32 partial by a masked
// add, the partial to the lane's float64 sum every kHotPartial elements, and the others,
// listed by position, add to sub-histogram (place in the list) % S after the block's rule),
// so results are bit-identical.
#include "bin_avx512.h"

#include <algorithm>
#include <cfloat>
#include <stdexcept>
#include <utility>

#include "simd_arch.h"
#include "wsc/common.h"
#include "wsc/simd.h"

namespace wsc {
namespace detail {

bool fused_avx512_applies(const BinRule& rule, int64_t k) {
  const float inv = float(rule.inv);
  return WSC_X86_SIMD && simd_level() == SimdLevel::Avx512 && k <= 4096 && inv >= FLT_MIN &&
         inv <= FLT_MAX;
}

#if WSC_X86_SIMD
namespace {

struct Rule16 {
  __m512 lo, inv, e, below, above, two_e;
  __m512i k;

  WSC_AVX512 static Rule16 of(const BinRule& rule) {
    const float e = float(rule.top + 3.0) * 0x1p-21f;  // (k + 2) * 2^-21, exact
    return {_mm512_set1_ps(float(rule.lo)), _mm512_set1_ps(float(rule.inv)), _mm512_set1_ps(e),
            _mm512_set1_ps(0.5f), _mm512_set1_ps(float(rule.top) + 0.5f), _mm512_set1_ps(2.0f * e),
            _mm512_set1_epi32(int(rule.top) + 1)};
  }
};

// t = (x - lo) * inv + e of the 16 lanes of v (one rounding after the subtraction's).
WSC_AVX512 inline __m512 ticks16(__m512 v, const Rule16& c) {
  return _mm512_fmadd_ps(_mm512_sub_ps(v, c.lo), c.inv, c.e);
}

// The lanes where b = trunc(t) may not be the rule's bin: t within 2e above an integer.
WSC_AVX512 inline __mmask16 near_edge16(__m512 t, __m512i b, const Rule16& c) {
  return _mm512_cmpneq_epi32_mask(_mm512_cvttps_epi32(_mm512_sub_ps(t, c.two_e)), b);
}

// Bin indices of the 16 lanes of v; *redo gets the lanes the float32 rule cannot decide.
WSC_AVX512 inline __m512i rule16(__m512 v, const Rule16& c, __mmask16* redo) {
  const __m512 t = _mm512_min_ps(_mm512_max_ps(ticks16(v, c), c.below), c.above);
  const __m512i b = _mm512_cvttps_epi32(t);
  *redo = near_edge16(t, b, c) | _mm512_fpclass_ps_mask(v, 0x99);  // NaN/Inf by class
  return b;
}

// rule16 without the clamps and the class test (5% faster on weights): *check gets the lanes
// it cannot decide, among them every lane outside [lo, hi] and every NaN/Inf.
WSC_AVX512 inline __m512i rule16_inside(__m512 v, const Rule16& c, __mmask16* check) {
  const __m512 t = ticks16(v, c);
  const __m512i b = _mm512_cvttps_epi32(t);
  *check = near_edge16(t, b, c) | _mm512_cmpge_epu32_mask(b, c.k);
  return b;
}

// 16 indices packed into uint8 or uint16 lanes of a vector register.
template <class I> struct Packed;
template <> struct Packed<uint8_t> {
  __m128i v;
  WSC_AVX512 static Packed of(__m512i b) { return {_mm512_cvtepi32_epi8(b)}; }
  WSC_AVX512 static Packed load(const uint8_t* p) { return {_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))}; }
  WSC_AVX512 void store(uint8_t* p) const { _mm_storeu_si128(reinterpret_cast<__m128i*>(p), v); }
  WSC_AVX512 __m512i widen() const { return _mm512_cvtepu8_epi32(v); }
};
template <> struct Packed<uint16_t> {
  __m256i v;
  WSC_AVX512 static Packed of(__m512i b) { return {_mm512_cvtepi32_epi16(b)}; }
  WSC_AVX512 static Packed load(const uint16_t* p) { return {_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))}; }
  WSC_AVX512 void store(uint16_t* p) const { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v); }
  WSC_AVX512 __m512i widen() const { return _mm512_cvtepu16_epi32(v); }
};

// The rule's exact division on the lanes in redo; returns how many of them are NaN/Inf.
template <class I>
int64_t redo_lanes(const float* x, __mmask16 redo, const BinRule& rule, I* idx) {
  int64_t bad = 0;
  for (unsigned r = redo; r != 0; r &= r - 1) {
    const int u = __builtin_ctz(r);
    bad += !(x[u] - x[u] == 0.0f);
    idx[u] = I(rule.exact(x[u]));
  }
  return bad;
}

// A chunk's use of index16: whether it tries rule16_inside first, how many groups then needed
// the clamped rule16, and how many NaN/Inf inputs it met.
struct IndexRun {
  bool inside_first;
  int64_t clamped = 0, bad = 0;
};

// The bin indices of the 16 values v = x[0..16), stored to idx[0..16) and returned, the lanes
// the float32 rule cannot decide recomputed exactly (their NaN/Inf inputs counted in run.bad).
template <class I>
WSC_AVX512 inline __m512i index16(__m512 v, const float* x, const Rule16& c, const BinRule& rule,
                                  I* idx, IndexRun& run) {
  if (__builtin_expect(run.inside_first, 1)) {
    __mmask16 check;
    const __m512i inside = rule16_inside(v, c, &check);
    if (__builtin_expect(check == 0, 1)) {
      Packed<I>::of(inside).store(idx);
      return inside;
    }
    ++run.clamped;
  }
  __mmask16 redo;
  const __m512i b = rule16(v, c, &redo);
  Packed<I>::of(b).store(idx);
  if (redo == 0) return b;
  run.bad += redo_lanes(x, redo, rule, idx);
  return Packed<I>::load(idx).widen();
}

// The last n < 16 elements: indices, and {x, 1} to sub-histogram 0 of their bins in order.
template <int S, class I>
WSC_AVX512 int64_t add_tail(const float* x, int64_t n, const Rule16& c, const BinRule& rule, I* idx,
                            SumCount* hist) {
  const __mmask16 live = __mmask16((1u << n) - 1);
  __mmask16 redo;
  const __m512i b = rule16(_mm512_maskz_loadu_ps(live, x), c, &redo);
  I tail[16];
  Packed<I>::of(b).store(tail);
  const int64_t bad = redo_lanes(x, redo & live, rule, tail);
  for (int64_t u = 0; u < n; ++u) {
    idx[u] = tail[u];
    hist[size_t(tail[u]) * S] += SumCount{double(x[u]), 1.0};
  }
  return bad;
}

// Element u of a group adds {x[u], 1} at byte offset off[u] of hist (its bin's sub-histogram
// u % S), in order of u. The pairs stay in registers, so an element costs one offset load, one
// extract and the histogram's load-add-store.
template <int U>
WSC_AVX512 inline void add1(const __m512d (&pairs)[4], const uint32_t* off, SumCount* hist) {
  SumCount* slot = reinterpret_cast<SumCount*>(reinterpret_cast<char*>(hist) + off[U]);
  *slot += SumCount(_mm512_extractf64x2_pd(pairs[U / 8 * 2 + U % 2], U % 8 / 2));
}

template <int... U>
WSC_AVX512 inline void add16(__m512 v, const uint32_t* off, SumCount* hist,
                             std::integer_sequence<int, U...>) {
  const __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
  const __m512d hi = _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1));
  const __m512d one = _mm512_set1_pd(1.0);
  // pairs[2h + p], 128-bit lane l: {x[8h + 2l + p], 1}
  const __m512d pairs[4] = {_mm512_unpacklo_pd(lo, one), _mm512_unpackhi_pd(lo, one),
                            _mm512_unpacklo_pd(hi, one), _mm512_unpackhi_pd(hi, one)};
  (add1<U>(pairs, off, hist), ...);
}

// Two passes over x[0..m), m <= kBlock: the rule (indices, slot offsets, one-bin groups), then
// the additions, which thus do not wait on the rule of their group (measured: 25% faster than
// one pass when most groups span several bins).
template <int S, class I>
WSC_AVX512 void fused(const float* x, int64_t m, const BinRule& rule, I* idx, SumCount* hist,
                      IndexRun& run) {
  const Rule16 c = Rule16::of(rule);
  constexpr int shift = S == 8 ? 7 : (S == 2 ? 5 : 4);  // log2(S * sizeof(SumCount))
  // Byte offset of lane u's sub-histogram: (u % S) * sizeof(SumCount).
  const __m512i sub_off = _mm512_and_si512(
      _mm512_setr_epi32(0, 16, 32, 48, 64, 80, 96, 112, 0, 16, 32, 48, 64, 80, 96, 112),
      _mm512_set1_epi32(S * 16 - 1));
  alignas(64) uint32_t off[kBlock];
  bool one[kBlock / 16];
  const int64_t full = m / 16 * 16;
  for (int64_t j = 0; j < full; j += 16) {
    prefetch_next_chunk(x + j);
    const __m512i b = index16(_mm512_loadu_ps(x + j), x + j, c, rule, idx + j, run);
    const __m512i first = _mm512_broadcastd_epi32(_mm512_castsi512_si128(b));
    one[j / 16] = _mm512_cmpneq_epi32_mask(b, first) == 0;
    _mm512_store_si512(off + j, _mm512_add_epi32(_mm512_slli_epi32(b, shift), sub_off));
  }
  for (int64_t j = 0; j < full; j += 16) {
    const __m512 v = _mm512_loadu_ps(x + j);
    if (one[j / 16]) {
      hist[size_t(idx[j]) * S + size_t(j / 16 % S)] += SumCount{sum16_avx512(v), 16.0};
    } else {
      add16(v, off + j, hist, std::make_integer_sequence<int, 16>());
    }
  }
  if (full < m) run.bad += add_tail<S>(x + full, m - full, c, rule, idx + full, hist);
}

// The lanes of 16 packed indices equal to a hot bin, its index broadcast by hot_index. Comparing
// the packed 8- or 16-bit indices takes a 128- or 256-bit compare, not a 512-bit one.
WSC_AVX512 inline __mmask16 equal16(Packed<uint8_t> p, __m512i bin) {
  return _mm_cmpeq_epi8_mask(p.v, _mm512_castsi512_si128(bin));
}
WSC_AVX512 inline __mmask16 equal16(Packed<uint16_t> p, __m512i bin) {
  return _mm256_cmpeq_epi16_mask(p.v, _mm512_castsi512_si256(bin));
}
template <class I> WSC_AVX512 inline __m512i hot_index(uint32_t b) {
  return sizeof(I) == 1 ? _mm512_set1_epi8(char(b)) : _mm512_set1_epi16(short(b));
}

// The lanes of 16 packed indices outside the window [first, first + H), first broadcast by
// hot_index: index - first wraps around above H - 1 below the window.
template <int H> WSC_AVX512 inline __mmask16 outside16(Packed<uint8_t> p, __m512i first) {
  return _mm_cmpgt_epu8_mask(_mm_sub_epi8(p.v, _mm512_castsi512_si128(first)), _mm_set1_epi8(H - 1));
}
template <int H> WSC_AVX512 inline __mmask16 outside16(Packed<uint16_t> p, __m512i first) {
  return _mm256_cmpgt_epu16_mask(_mm256_sub_epi16(p.v, _mm512_castsi512_si256(first)),
                                 _mm256_set1_epi16(H - 1));
}

// The hot-bin form of fused for H hot bins, in three passes over the block (measured on the
// AMD EPYC at k = 256: 8% faster than one pass doing all of it, whose rule, compares and adds
// then wait on one another): the rule (indices only); then, from the stored indices, H compares
// and H masked float32 adds a group for the hot elements, each lane's partial added to its
// float64 sum every kHotPartial elements, and the positions of the other (cold) ones, outside
// the window, compressed into a list; then the listed elements' load-add-stores. Counts: a
// popcount per hot bin but the last, whose count is what the others and the cold ones leave
// (on weights, k = 256: four hot bins hold 90% of the elements).
template <int S, int H, class I>
WSC_AVX512 void fused_hot(const float* x, int64_t m, const BinRule& rule, const HotBins& hot,
                          HotSums& sums, I* idx, SumCount* hist, IndexRun& run) {
  const Rule16 c = Rule16::of(rule);
  const int64_t full = m / 16 * 16;
  IndexRun local = run;  // in a register, not reloaded after each index store
  for (int64_t j = 0; j < full; j += 16) {
    prefetch_next_chunk(x + j);
    index16(_mm512_loadu_ps(x + j), x + j, c, rule, idx + j, local);
  }
  run = local;
  __m512i bin[H];
  __m512d acc_lo[H], acc_hi[H];
  int64_t count[H] = {};
  for (int i = 0; i < H; ++i) {
    bin[i] = hot_index<I>(hot.bin[i]);
    acc_lo[i] = _mm512_load_pd(sums.acc[i]);
    acc_hi[i] = _mm512_load_pd(sums.acc[i] + 8);
  }
  const __m512i sixteen = _mm512_set1_epi32(16);
  __m512i position = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  alignas(64) uint32_t cold[kBlock + 16];  // room for the last group's 64-byte store
  int64_t n_cold = 0;
  for (int64_t p = 0; p < full; p += kHotPartial) {
    __m512 partial[H];
    for (int i = 0; i < H; ++i) partial[i] = _mm512_setzero_ps();
    for (int64_t j = p; j < std::min(p + kHotPartial, full); j += 16) {
      const Packed<I> b = Packed<I>::load(idx + j);
      const __m512 v = _mm512_loadu_ps(x + j);
      for (int i = 0; i < H; ++i) {
        const __mmask16 in = equal16(b, bin[i]);
        partial[i] = _mm512_mask_add_ps(partial[i], in, partial[i], v);
        if (i < H - 1) count[i] += __builtin_popcount(_cvtmask16_u32(in));
      }
      const __mmask16 is_cold = outside16<H>(b, bin[0]);
      _mm512_storeu_si512(cold + n_cold, _mm512_maskz_compress_epi32(is_cold, position));
      n_cold += __builtin_popcount(_cvtmask16_u32(is_cold));
      position = _mm512_add_epi32(position, sixteen);
    }
    for (int i = 0; i < H; ++i) {
      acc_lo[i] = _mm512_add_pd(acc_lo[i], _mm512_cvtps_pd(_mm512_castps512_ps256(partial[i])));
      acc_hi[i] = _mm512_add_pd(acc_hi[i], _mm512_cvtps_pd(_mm512_extractf32x8_ps(partial[i], 1)));
    }
  }
  count[H - 1] = full - n_cold;
  for (int i = 0; i < H - 1; ++i) count[H - 1] -= count[i];
  add_listed<S>(x, idx, cold, n_cold, hist);
  if (full < m) run.bad += add_tail<S>(x + full, m - full, c, rule, idx + full, hist);
  for (int i = 0; i < H; ++i) {
    _mm512_store_pd(sums.acc[i], acc_lo[i]);
    _mm512_store_pd(sums.acc[i] + 8, acc_hi[i]);
    sums.count[i] += count[i];
  }
}

// Hot bins come only with k <= kMaxHotK, so with 8 or 2 sub-histograms (binning.cpp).
template <class I>
void with_hot(const float* x, int64_t m, const BinRule& rule, const HotBins& hot, HotSums& sums,
              I* idx, int subs, SumCount* hist, IndexRun& run) {
  check(subs == 8 || subs == 2, "bin_uniform: hot bins need 8 or 2 sub-histograms");
  switch (hot.n * 2 + (subs == 8)) {
    case 2: return fused_hot<2, 1>(x, m, rule, hot, sums, idx, hist, run);
    case 3: return fused_hot<8, 1>(x, m, rule, hot, sums, idx, hist, run);
    case 4: return fused_hot<2, 2>(x, m, rule, hot, sums, idx, hist, run);
    case 5: return fused_hot<8, 2>(x, m, rule, hot, sums, idx, hist, run);
    case 6: return fused_hot<2, 3>(x, m, rule, hot, sums, idx, hist, run);
    case 7: return fused_hot<8, 3>(x, m, rule, hot, sums, idx, hist, run);
    case 8: return fused_hot<2, 4>(x, m, rule, hot, sums, idx, hist, run);
    case 9: return fused_hot<8, 4>(x, m, rule, hot, sums, idx, hist, run);
  }
  throw std::logic_error("bin_uniform: 1 to 4 hot bins expected");
}

template <class I>
int64_t dispatch(const float* x, int64_t m, const BinRule& rule, const HotBins& hot,
                 HotSums& sums, I* idx, int subs, SumCount* hist, RuleChoice& choice) {
  IndexRun run{choice.clamped_chunks == 0};
  if (hot.n > 0) with_hot(x, m, rule, hot, sums, idx, subs, hist, run);
  else if (subs == 8) fused<8>(x, m, rule, idx, hist, run);
  else if (subs == 2) fused<2>(x, m, rule, idx, hist, run);
  else fused<1>(x, m, rule, idx, hist, run);
  if (!run.inside_first) --choice.clamped_chunks;
  else if (run.clamped * 8 > m / 16) choice.clamped_chunks = RuleChoice::kClampedChunks;
  return run.bad;
}

}  // namespace

int64_t bin_fused_avx512(const float* x, int64_t m, const BinRule& rule, const HotBins& hot,
                         HotSums& sums, uint8_t* idx, int subs, SumCount* hist, RuleChoice& choice) {
  return dispatch(x, m, rule, hot, sums, idx, subs, hist, choice);
}
int64_t bin_fused_avx512(const float* x, int64_t m, const BinRule& rule, const HotBins& hot,
                         HotSums& sums, uint16_t* idx, int subs, SumCount* hist, RuleChoice& choice) {
  return dispatch(x, m, rule, hot, sums, idx, subs, hist, choice);
}
#endif

}  // namespace detail
}  // namespace wsc
