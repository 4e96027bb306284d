// Uniform binning: k equal-width bins over [lo, hi].
//
// Rule (evaluated in IEEE double precision, correctly rounded, no FMA contraction):
//   width = (double(hi) - double(lo)) / k
//   index = clamp(floor((double(x) - double(lo)) / width), 0, k - 1)
// with index = 0 for every x when width == 0 (hi == lo). Every step is a single
// correctly rounded IEEE operation on exactly representable inputs, so numpy's
// float64 arithmetic (wsc.reference.bin_uniform) gives the same index bit for bit.
#pragma once
#include <cstdint>

#include "wsc/common.h"

namespace wsc {

// Writes idx[0..n) (uint8 if itype == U8, uint16 otherwise) and accumulates per-bin
// counts[0..k) and sums[0..k) (both overwritten). Requires 2 <= k <= 65536, k <= 256
// for U8, lo <= hi, finite lo/hi; throws std::invalid_argument on NaN/Inf in x.
// Results are identical for any thread count (fixed block partition, ordered reduction).
// Sums are float64; on CPUs with AVX-512 and for k <= 4096 the few bins that hold most
// elements add them first in float32 partials of at most 16 values, so a bin's sum errs by
// at most 16 * 2^-24 (plus float64 rounding) times the sum of its elements' magnitudes
// (csrc/cpu/bin_accumulate.h); elsewhere every addition is in float64.
void bin_uniform(const void* x, DType dtype, int64_t n, float lo, float hi, int64_t k,
                 void* idx, IndexType itype, int64_t* counts, double* sums);

}  // namespace wsc
