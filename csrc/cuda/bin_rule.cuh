// The uniform-binning rule of wsc/binning.h on the device, bit for bit as csrc/cpu/bin_rule.cpp.
//
// Fast path t = (x - lo) * (1/width) in double; where t lies within kAmbiguous of an integer
// (or x is NaN/Inf) the element is recomputed with the rule's exact division
// floor((x - lo) / width). The multiply differs from the division by at most 3 ulps
// (< 3e-11 for t <= 65538), so floor() can only disagree inside that band. The fallback is
// per element (rare, so the warp divergence costs nothing). CUDA's double subtraction,
// multiplication and division are IEEE round-to-nearest and the library is built with
// --fmad=false, so the exact path is the numpy reference's arithmetic.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>

#include "wsc/common.h"

namespace wsc {
namespace cuda {
namespace detail {

struct BinParams {
  double lo;
  double width;  // 0 when hi == lo: every element falls into bin 0
  double inv;    // 1 / width (0 when width == 0)
  double top;    // k - 1
};

// Computed on the host exactly as detail::BinRule on the CPU.
inline BinParams make_bin_params(float lo, float hi, int64_t k) {
  BinParams p;
  p.lo = double(lo);
  p.width = (double(hi) - double(lo)) / double(k);
  p.inv = p.width == 0.0 ? 0.0 : 1.0 / p.width;
  p.top = double(k - 1);
  return p;
}

// Same argument checks (and messages) as the CPU kernels.
inline void check_bin_args(const char* op, float lo, float hi, int64_t k) {
  check(k >= kMinBins && k <= kMaxBins, std::string(op) + ": k must be in [2, 65536]");
  check(lo - lo == 0.0f && hi - hi == 0.0f, std::string(op) + ": lo and hi must be finite");
  check(lo <= hi, std::string(op) + ": lo must be <= hi");
}

constexpr double kAmbiguous = 1e-9;

// Bin index of x (0 for NaN; the caller reports NaN/Inf separately). Also compiled for the
// host, where a test hook (cuda_bin_rule_on_host) checks the rule against the reference.
__host__ __device__ __forceinline__ uint32_t bin_of(float x, const BinParams& p) {
  if (p.width == 0.0) return 0u;
  const double d = double(x) - p.lo;
  const double t = d * p.inv;
  double f = floor(t);
  const double frac = t - f;
  if (!(frac >= kAmbiguous && frac <= 1.0 - kAmbiguous)) f = floor(d / p.width);
  f = f >= 0.0 ? f : 0.0;  // also maps NaN to 0
  f = f <= p.top ? f : p.top;
  return uint32_t(f);
}

}  // namespace detail
}  // namespace cuda
}  // namespace wsc
