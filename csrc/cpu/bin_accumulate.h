// Internal: per-bin (sum, count) accumulation of a block of binned float32 values, the
// second half of bin_uniform.
#pragma once
#include <cstdint>

namespace wsc {
namespace detail {

// (sum, count) of one bin, updated with a single 128-bit add per element. Counts held as
// doubles are exact up to 2^53 elements.
typedef double SumCount __attribute__((vector_size(16)));

// Adds x[0..m) (m <= kBlock) to sub-histogram j % subs of bin bins[j] (subs is 1, 2 or 8;
// the sub-histograms of a bin are adjacent: bin b, sub s is hist[b * subs + s]), except that a
// group of 16 elements all in one bin (most groups when one bin holds most weights) adds their
// pairwise sum once, to sub-histogram (j / 16) % subs; a tail shorter than 16 adds to
// sub-histogram 0. Every SIMD level adds the same values in the same order, so the sums are
// identical bit for bit.
void accumulate(const float* x, const uint32_t* bins, int64_t m, int subs, SumCount* hist);

}  // namespace detail
}  // namespace wsc
