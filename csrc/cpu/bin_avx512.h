// Internal: the fused AVX-512 uniform-binning kernel (float32 index rule, index store and
// per-bin sums and counts in one pass over 16 elements at a time).
#pragma once
#include <cstdint>

#include "bin_accumulate.h"
#include "bin_rule.h"

namespace wsc {
namespace detail {

// Whether the fused kernel applies: the CPU and build run AVX-512, k <= 4096 (the float32
// rule's ambiguity band stays narrow) and the rule's scale is a normal float32.
bool fused_avx512_applies(const BinRule& rule, int64_t k);

// Which float32 rule the kernel tries first on a chunk, carried from chunk to chunk of a block:
// the rule without clamps (faster while the values lie in [lo, hi]), unless more than one
// group in 8 of the last chunk tried needed the clamped rule (a range that clips many values);
// then the clamped rule alone for the next kClampedChunks chunks. The indices are the same
// either way, so this never changes a result.
struct RuleChoice {
  static constexpr int kClampedChunks = 16;
  int clamped_chunks = 0;
};

// bin_uniform on x[0..m) (m <= kBlock): writes idx[0..m) and adds to hist (and sums) exactly as
// BinRule::apply followed by accumulate with the same hot bins would (same values, same order,
// same sub-histograms); returns the number of NaN/Inf inputs.
int64_t bin_fused_avx512(const float* x, int64_t m, const BinRule& rule, const HotBins& hot,
                         HotSums& sums, uint8_t* idx, int subs, SumCount* hist, RuleChoice& choice);
int64_t bin_fused_avx512(const float* x, int64_t m, const BinRule& rule, const HotBins& hot,
                         HotSums& sums, uint16_t* idx, int subs, SumCount* hist, RuleChoice& choice);

}  // namespace detail
}  // namespace wsc
