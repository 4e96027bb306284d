// Internal: the uniform-binning rule of wsc/binning.h, vectorisable over a block.
#pragma once
#include <cstdint>

#include "wsc/half.h"

namespace wsc {
namespace detail {

// Block length of the two-step kernels (indices into a small buffer, then use them).
constexpr int64_t kBlock = 1024;

struct BinRule {
  double lo;
  double width;  // 0 when hi == lo: every element falls into bin 0
  double top;    // k - 1

  BinRule(float lo_, float hi_, int64_t k)
      : lo(lo_), width((double(hi_) - double(lo_)) / double(k)), top(double(k - 1)) {}

  // Bin indices of x[0..m) into out; returns how many inputs were NaN or Inf.
  template <class T>
  int64_t apply(const T* x, int64_t m, uint32_t* out) const {
    int64_t bad = 0;
    if (width == 0.0) {
      for (int64_t j = 0; j < m; ++j) {
        float v = Elem<T>::load(x, j);
        bad += !(v - v == 0.0f);
        out[j] = 0;
      }
      return bad;
    }
    for (int64_t j = 0; j < m; ++j) {
      float v = Elem<T>::load(x, j);
      bad += !(v - v == 0.0f);  // false exactly for NaN and +-Inf
      double t = (double(v) - lo) / width;
      // clamp then truncate: equals clamp(floor(t)) because the clamp bounds are integers;
      // NaN fails the first test and lands in bin 0 (it is reported through `bad`)
      t = t >= 0.0 ? t : 0.0;
      t = t > top ? top : t;
      out[j] = uint32_t(int32_t(t));
    }
    return bad;
  }
};

}  // namespace detail
}  // namespace wsc
