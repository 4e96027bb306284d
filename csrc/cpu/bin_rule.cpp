// The binning rule over a block of float32 values.
//
// Fast path: t = (x - lo) * (1/width) in double. It differs from the rule's
// t = (x - lo) / width by at most a few ulps (relative error <= 3 * 2^-53, i.e. < 3e-11 for
// t <= 65538), so floor(t) can only disagree when t lies within kAmbiguous of an integer.
// Any block holding such an element (or a NaN/Inf) is recomputed with the rule's exact
// division, so the result is always the rule's, bit for bit.
#include <cmath>

#include "bin_rule.h"

namespace wsc {
namespace detail {
namespace {

constexpr double kAmbiguous = 1e-9;

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#define WSC_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define WSC_CLONES
#endif

// Returns how many elements need the exact rule: t near an integer, or x NaN/Inf (then
// frac is NaN and fails both tests).
WSC_CLONES int32_t fast_block(const float* x, int64_t m, double lo, double inv, double top,
                              uint32_t* out) {
  int32_t amb = 0;
  for (int64_t j = 0; j < m; ++j) {
    double t = (double(x[j]) - lo) * inv;
    double f = std::floor(t);
    double frac = t - f;
    amb += !((frac >= kAmbiguous) & (frac <= 1.0 - kAmbiguous));
    f = f >= 0.0 ? f : 0.0;  // NaN lands in bin 0 (reported by exact_block)
    f = f <= top ? f : top;
    out[j] = uint32_t(int32_t(f));
  }
  return amb;
}

// The rule with its exact division; returns the number of NaN/Inf inputs.
int64_t exact_block(const float* x, int64_t m, double lo, double width, double top,
                    uint32_t* out) {
  int64_t bad = 0;
  for (int64_t j = 0; j < m; ++j) {
    bad += !(x[j] - x[j] == 0.0f);  // false exactly for NaN and +-Inf
    double t = std::floor((double(x[j]) - lo) / width);
    t = t >= 0.0 ? t : 0.0;
    t = t <= top ? t : top;
    out[j] = uint32_t(int32_t(t));
  }
  return bad;
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
  return exact_block(x, m, lo, width, top, out);
}

}  // namespace detail
}  // namespace wsc
