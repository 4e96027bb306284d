// Internal: the uniform-binning rule of wsc/binning.h, evaluated fast and exactly over a block.
#pragma once
#include <cmath>
#include <cstdint>

#include "wsc/half.h"

namespace wsc {
namespace detail {

// Block length of the two-step kernels (indices into a small buffer, then use them).
constexpr int64_t kBlock = 1024;

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
