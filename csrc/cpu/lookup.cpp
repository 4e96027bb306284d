// SIMD kernels of detail::Lookup. Each register lookup permutes 32-bit entries (a 2-byte
// codebook zero-extended), then stores 32-bit lanes or narrows them to 16 bits, so the bits
// written are exactly the table's: the scalar loop gives the same output. Streamed stores
// (4-byte outputs, destination 64-byte aligned by the caller) are fenced by Lookup::finish.
#include "lookup.h"

#include "simd_arch.h"
#include "wsc/half.h"

namespace wsc {
namespace detail {
namespace {

#if WSC_X86_SIMD

// ---- AVX-512: 16 lanes, T tables of 16 entries (k <= 16 T).
WSC_AVX512 inline __m512i load16(const uint8_t* p) {
  return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
WSC_AVX512 inline __m512i load16(const uint32_t* p) { return _mm512_loadu_si512(p); }

template <int T, int Bytes, bool Stream, class I>
WSC_AVX512 int64_t lookup_avx512(const I* idx, int64_t n, const uint32_t* bits, void* out) {
  static_assert(!Stream || Bytes == 4, "streamed stores write 4-byte outputs");
  const __m512i t0 = _mm512_loadu_si512(bits), t1 = _mm512_loadu_si512(bits + 16);
  const __m512i t2 = _mm512_loadu_si512(bits + 32), t3 = _mm512_loadu_si512(bits + 48);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512i v = load16(idx + i);
    __m512i r;
    if constexpr (T == 1) {
      r = _mm512_permutexvar_epi32(v, t0);
    } else if constexpr (T == 2) {
      r = _mm512_permutex2var_epi32(t0, v, t1);
    } else {
      const __mmask16 high = _mm512_test_epi32_mask(v, _mm512_set1_epi32(32));
      r = _mm512_mask_blend_epi32(high, _mm512_permutex2var_epi32(t0, v, t1),
                                  _mm512_permutex2var_epi32(t2, v, t3));
    }
    if constexpr (Stream)
      _mm512_stream_si512(reinterpret_cast<__m512i*>(static_cast<uint32_t*>(out) + i), r);
    else if constexpr (Bytes == 4)
      _mm512_storeu_si512(static_cast<uint32_t*>(out) + i, r);
    else
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(static_cast<uint16_t*>(out) + i),
                          _mm512_cvtepi32_epi16(r));
  }
  return i;
}

// ---- AVX2: 8 lanes, T tables of 8 entries (k <= 8 T).
WSC_AVX2 inline __m256i load8(const uint8_t* p) {
  return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}
WSC_AVX2 inline __m256i load8(const uint32_t* p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}
// Lanes of b where bit `bit` of v is set, of a elsewhere.
template <int Bit>
WSC_AVX2 inline __m256i select_bit(__m256i v, __m256i a, __m256i b) {
  const __m256 sign = _mm256_castsi256_ps(_mm256_slli_epi32(v, 31 - Bit));
  return _mm256_castps_si256(
      _mm256_blendv_ps(_mm256_castsi256_ps(a), _mm256_castsi256_ps(b), sign));
}

template <int T, int Bytes, bool Stream, class I>
WSC_AVX2 int64_t lookup_avx2(const I* idx, int64_t n, const uint32_t* bits, void* out) {
  static_assert(!Stream || Bytes == 4, "streamed stores write 4-byte outputs");
  const __m256i* t = reinterpret_cast<const __m256i*>(bits);
  const __m256i t0 = _mm256_loadu_si256(t), t1 = _mm256_loadu_si256(t + 1);
  const __m256i t2 = _mm256_loadu_si256(t + 2), t3 = _mm256_loadu_si256(t + 3);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256i v = load8(idx + i);
    __m256i r = _mm256_permutevar8x32_epi32(t0, v);
    if constexpr (T >= 2)
      r = select_bit<3>(v, r, _mm256_permutevar8x32_epi32(t1, v));
    if constexpr (T == 4) {
      const __m256i r2 = select_bit<3>(v, _mm256_permutevar8x32_epi32(t2, v),
                                       _mm256_permutevar8x32_epi32(t3, v));
      r = select_bit<4>(v, r, r2);
    }
    if constexpr (Stream)
      _mm256_stream_si256(reinterpret_cast<__m256i*>(static_cast<uint32_t*>(out) + i), r);
    else if constexpr (Bytes == 4)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(static_cast<uint32_t*>(out) + i), r);
    else
      _mm_storeu_si128(reinterpret_cast<__m128i*>(static_cast<uint16_t*>(out) + i),
                       _mm_packus_epi32(_mm256_castsi256_si128(r),
                                        _mm256_extracti128_si256(r, 1)));
  }
  return i;
}

template <int Bytes, bool Stream, class I>
int64_t lookup_level(SimdLevel level, const I* idx, int64_t n, int64_t k, const uint32_t* bits,
                     void* out) {
  if (level == SimdLevel::Avx512) {
    if (k <= 16) return lookup_avx512<1, Bytes, Stream>(idx, n, bits, out);
    if (k <= 32) return lookup_avx512<2, Bytes, Stream>(idx, n, bits, out);
    if (k <= 64) return lookup_avx512<4, Bytes, Stream>(idx, n, bits, out);
  } else if (level == SimdLevel::Avx2) {
    if (k <= 8) return lookup_avx2<1, Bytes, Stream>(idx, n, bits, out);
    if (k <= 16) return lookup_avx2<2, Bytes, Stream>(idx, n, bits, out);
    if (k <= 32) return lookup_avx2<4, Bytes, Stream>(idx, n, bits, out);
  }
  return 0;
}

template <int Bytes, class I>
int64_t lookup_simd(SimdLevel level, bool stream, const I* idx, int64_t n, int64_t k,
                    const uint32_t* bits, void* out) {
  if constexpr (Bytes == 4)
    if (stream) return lookup_level<4, true>(level, idx, n, k, bits, out);
  return lookup_level<Bytes, false>(level, idx, n, k, bits, out);
}

#else

template <int Bytes, class I>
int64_t lookup_simd(SimdLevel, bool, const I*, int64_t, int64_t, const uint32_t*, void*) {
  return 0;
}

#endif

}  // namespace

template <class O>
int64_t Lookup<O>::simd(const uint8_t* idx, int64_t n, O* out, bool stream) const {
  return lookup_simd<sizeof(O)>(level_, stream, idx, n, k_, bits_, out);
}

template <class O>
int64_t Lookup<O>::simd(const uint32_t* idx, int64_t n, O* out, bool stream) const {
  return lookup_simd<sizeof(O)>(level_, stream, idx, n, k_, bits_, out);
}

template <class O>
void Lookup<O>::finish() const {
#if WSC_X86_SIMD
  if (stream_) _mm_sfence();
#endif
}

template class Lookup<float>;
template class Lookup<F16>;
template class Lookup<BF16>;

}  // namespace detail
}  // namespace wsc
