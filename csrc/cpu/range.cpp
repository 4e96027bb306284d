// Range kernel: min/max in one pass, with NaN/Inf detection.
#include "wsc/range.h"

#include <algorithm>
#include <climits>
#include <cstring>
#include <string>
#include <vector>

#include "simd_arch.h"
#include "wsc/half.h"
#include "wsc/parallel.h"
#include "wsc/simd.h"

namespace wsc {
namespace {

// Floats compared as integers: key() is monotone in the float value (-0.0 sorts just below
// +0.0), so the min/max reductions vectorise without any floating-point semantics in the way.
inline int32_t key(uint32_t u) { return int32_t(u ^ (uint32_t(int32_t(u) >> 31) & 0x7fffffffu)); }
inline float unkey(int32_t k) {
  uint32_t u = uint32_t(k);
  return bits_to_float(u ^ (uint32_t(int32_t(u) >> 31) & 0x7fffffffu));
}

struct Partial {
  int32_t lo = INT32_MAX;
  int32_t hi = INT32_MIN;
  int64_t bad = 0;
};

// One pass: min and max keys and the NaN/Inf count. Integer operations only, so the copies
// compiled for AVX2 and AVX-512 below (the same loop, vectorised wider than the baseline's
// SSE2, which has no 32-bit min/max) give the same results.
__attribute__((always_inline)) inline void scan_loop(const float* x, int64_t m, Partial& p) {
  int32_t lo = p.lo, hi = p.hi;
  int32_t bad = 0;
  for (int64_t j = 0; j < m; ++j) {
    uint32_t u;
    std::memcpy(&u, x + j, 4);
    int32_t k = key(u);
    lo = k < lo ? k : lo;
    hi = k > hi ? k : hi;
    bad += (u & 0x7f800000u) == 0x7f800000u;  // exponent all ones: NaN or +-Inf
  }
  p.lo = lo;
  p.hi = hi;
  p.bad += bad;
}

#if WSC_X86_SIMD
WSC_AVX512 void scan_avx512(const float* x, int64_t m, Partial& p) { scan_loop(x, m, p); }
WSC_AVX2 void scan_avx2(const float* x, int64_t m, Partial& p) { scan_loop(x, m, p); }
#endif

void scan_f32(const float* x, int64_t m, Partial& p) {
#if WSC_X86_SIMD
  switch (simd_level()) {
    case SimdLevel::Avx512: return scan_avx512(x, m, p);
    case SimdLevel::Avx2: return scan_avx2(x, m, p);
    case SimdLevel::Scalar: break;
  }
#endif
  scan_loop(x, m, p);
}

template <class T>
void scan_block(const T* x, int64_t m, Partial& p) {
  float buf[1024];
  for (int64_t s = 0; s < m; s += 1024) {
    int64_t len = std::min<int64_t>(1024, m - s);
    for (int64_t j = 0; j < len; ++j) buf[j] = Elem<T>::load(x, s + j);
    scan_f32(buf, len, p);
  }
}
void scan_block(const float* x, int64_t m, Partial& p) {
  for (int64_t s = 0; s < m; s += 1 << 20) scan_f32(x + s, std::min<int64_t>(1 << 20, m - s), p);
}

template <class T>
Partial range_typed(const T* x, int64_t n) {
  int64_t nb = num_blocks(n, 1 << 16);
  std::vector<Partial> parts(size_t(std::max<int64_t>(nb, 1)));
  parallel_for(nb, [&](int64_t b) {
    int64_t s = n * b / nb, e = n * (b + 1) / nb;
    scan_block(x + s, e - s, parts[size_t(b)]);
  });
  Partial r;
  for (const auto& p : parts) {
    r.lo = std::min(r.lo, p.lo);
    r.hi = std::max(r.hi, p.hi);
    r.bad += p.bad;
  }
  return r;
}

template <class T>
int64_t first_nonfinite(const T* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    float v = Elem<T>::load(x, i);
    if (!(v - v == 0.0f)) return i;
  }
  return -1;
}

Partial range_dispatch(const void* x, DType dtype, int64_t n) {
  switch (dtype) {
    case DType::F32: return range_typed(static_cast<const float*>(x), n);
    case DType::F16: return range_typed(static_cast<const F16*>(x), n);
    case DType::BF16: return range_typed(static_cast<const BF16*>(x), n);
  }
  throw std::invalid_argument("range: unknown dtype");
}

}  // namespace

NonFinite count_nonfinite(const void* x, DType dtype, int64_t n) {
  int64_t count = range_dispatch(x, dtype, n).bad;
  if (count == 0) return {0, -1};
  int64_t first = -1;
  switch (dtype) {
    case DType::F32: first = first_nonfinite(static_cast<const float*>(x), n); break;
    case DType::F16: first = first_nonfinite(static_cast<const F16*>(x), n); break;
    case DType::BF16: first = first_nonfinite(static_cast<const BF16*>(x), n); break;
  }
  return {count, first};
}

void require_finite(const void* x, DType dtype, int64_t n, const char* what) {
  NonFinite nf = count_nonfinite(x, dtype, n);
  check(nf.count == 0, std::string(what) + " contains " + std::to_string(nf.count) +
                           " NaN/Inf value(s); the first is at flat index " +
                           std::to_string(nf.first));
}

Range range(const void* x, DType dtype, int64_t n) {
  check(n > 0, "range: x is empty; the range of no values is undefined");
  Partial p = range_dispatch(x, dtype, n);
  if (p.bad != 0) require_finite(x, dtype, n, "x");
  return {unkey(p.lo), unkey(p.hi)};
}

}  // namespace wsc
