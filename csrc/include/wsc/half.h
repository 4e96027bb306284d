// float16 / bfloat16 <-> float32 conversions on raw uint16 bits (round to nearest even),
// so the kernels need no compiler half type. The same functions serve the CPU and the CUDA
// kernels (WSC_HD marks them host-and-device under nvcc), so both convert identically.
#pragma once
#include <cstdint>
#include <cstring>
#include <vector>

#if defined(__CUDACC__)
#define WSC_HD __host__ __device__
#else
#define WSC_HD
#endif

namespace wsc {

WSC_HD inline float bits_to_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, 4);
  return f;
#endif
}
WSC_HD inline uint32_t float_to_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
#endif
}

WSC_HD inline float bf16_to_float(uint16_t h) { return bits_to_float(uint32_t(h) << 16); }

WSC_HD inline uint16_t float_to_bf16(float f) {
  uint32_t u = float_to_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

WSC_HD inline float f16_to_float(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t man = h & 0x3ffu;
  if (exp == 0x1f) return bits_to_float(sign | 0x7f800000u | (man << 13));
  if (exp == 0) {
    // zero or subnormal: man * 2^-24, exact in float32
    float v = float(man) * 5.9604644775390625e-08f;
    return sign ? -v : v;
  }
  return bits_to_float(sign | ((exp + 112u) << 23) | (man << 13));
}

WSC_HD inline uint16_t float_to_f16(float f) {
  uint32_t u = float_to_bits(f);
  uint16_t sign = uint16_t((u >> 16) & 0x8000u);
  uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return uint16_t(sign | 0x7e00u);  // NaN
  if (a >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // overflow (after rounding) -> inf
  if (a < 0x38800000u) {
    // subnormal or zero in half: round a * 2^24 to nearest even integer
    float v = bits_to_float(a) * 16777216.0f;  // exact scaling
    float r = v + 12582912.0f - 12582912.0f;   // round-half-even to integer (|v| < 2^10)
    return uint16_t(sign | uint16_t(r));
  }
  uint32_t m = a + 0xfffu + ((a >> 13) & 1u) - (112u << 23);
  return uint16_t(sign | uint16_t(m >> 13));
}

// Load element i of a float32/float16/bfloat16 array as float.
template <class T> struct Elem;
template <> struct Elem<float> {
  WSC_HD static float load(const float* p, int64_t i) { return p[i]; }
  WSC_HD static void store(float* p, int64_t i, float v) { p[i] = v; }
};
struct F16 { uint16_t bits; };
struct BF16 { uint16_t bits; };
template <> struct Elem<F16> {
  WSC_HD static float load(const F16* p, int64_t i) { return f16_to_float(p[i].bits); }
  WSC_HD static void store(F16* p, int64_t i, float v) { p[i].bits = float_to_f16(v); }
};
template <> struct Elem<BF16> {
  WSC_HD static float load(const BF16* p, int64_t i) { return bf16_to_float(p[i].bits); }
  WSC_HD static void store(BF16* p, int64_t i, float v) { p[i].bits = float_to_bf16(v); }
};

// A float32 codebook converted once to element type O, so a gather is a pure lookup.
template <class O>
std::vector<O> codebook_as(const float* codebook, int64_t k) {
  std::vector<O> table(static_cast<size_t>(k));
  for (int64_t i = 0; i < k; ++i) Elem<O>::store(table.data(), i, codebook[i]);
  return table;
}

}  // namespace wsc
