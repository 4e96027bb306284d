// Internal: the uniform-binning rule of wsc/binning.h, evaluated fast and exactly over a block.
#pragma once
#include <cmath>
#include <cstdint>

#include "wsc/half.h"

namespace wsc {
namespace detail {

// Block length of the two-step kernels (indices into a small buffer, then use them).
constexpr int64_t kBlock = 1024;

// The kernels that work a kBlock chunk in several passes read its values one 4 KiB page at a
// time with other work between, and some CPUs' hardware prefetchers then restart at every
// page (measured on an Intel Xeon at 2.1 GHz: binning from memory 20-25% faster, k = 16 and
// 256, when the first pass prefetches the next chunk; on an AMD EPYC it made no difference).
// Called once per 64-byte line of the current chunk, it prefetches the line kBlock floats on.
inline void prefetch_next_chunk(const float* x) { __builtin_prefetch(x + kBlock); }

struct BinRule {
  double lo;
  double width;  // 0 when hi == lo: every element falls into bin 0
  double inv;    // 1 / width (0 when width == 0)
  double top;    // k - 1

  BinRule(float lo_, float hi_, int64_t k)
      : lo(lo_),
        width((double(hi_) - double(lo_)) / double(k)),
        inv(width == 0.0 ? 0.0 : 1.0 / width),
        top(double(k - 1)) {}

  // Bin indices of x[0..m) (m <= kBlock) into out; returns how many inputs were NaN or Inf.
  template <class T>
  int64_t apply(const T* x, int64_t m, uint32_t* out) const {
    float buf[kBlock];
    for (int64_t j = 0; j < m; ++j) buf[j] = Elem<T>::load(x, j);
    return apply_f32(buf, m, out);
  }
  int64_t apply(const float* x, int64_t m, uint32_t* out) const { return apply_f32(x, m, out); }

  int64_t apply_f32(const float* x, int64_t m, uint32_t* out) const;

  // The rule with its exact division for one value (width != 0; NaN lands in bin 0).
  uint32_t exact(float x) const {
    double t = std::floor((double(x) - lo) / width);
    t = t >= 0.0 ? t : 0.0;
    t = t <= top ? t : top;
    return uint32_t(int32_t(t));
  }
};

}  // namespace detail
}  // namespace wsc
