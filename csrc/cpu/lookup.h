// Internal: codebook lookups out[i] = table[idx[i]] with SIMD permutes where the table is
// small (k <= 64 with AVX-512: up to four 16-entry registers; k <= 32 with AVX2: up to four
// 8-entry registers), a scalar loop otherwise (AVX-512 gathers were slower than the scalar
// loop at k = 256). Shared by gather and share.
#pragma once
#include <cstdint>
#include <cstring>
#include <vector>

#include "wsc/simd.h"

namespace wsc {
namespace detail {

// A codebook already converted to its output element type O (4 or 2 bytes: float, F16, BF16).
template <class O>
class Lookup {
  static_assert(sizeof(O) == 4 || sizeof(O) == 2, "4- or 2-byte output elements");

 public:
  Lookup(const O* table, int64_t k) : table_(table), k_(k), level_(simd_level()) {
    if (k > 64) return;
    for (int64_t i = 0; i < k; ++i) {
      uint32_t bits = 0;
      std::memcpy(&bits, table + i, sizeof(O));
      bits_[size_t(i)] = bits;  // a 2-byte value zero-extended: 32-bit permutes serve both
    }
  }

  // out[0..n) = table[idx[0..n)]; every idx must be < k (the caller checked).
  template <class I>
  void operator()(const I* idx, int64_t n, O* out) const {
    int64_t done = 0;
    if constexpr (sizeof(I) != 2) done = simd(idx, n, out);
    const O* table = table_;
    for (int64_t i = done; i < n; ++i) out[i] = table[idx[i]];
  }

 private:
  // Elements [0, returned) written by the SIMD kernel of the current level (0 if none applies).
  int64_t simd(const uint8_t* idx, int64_t n, O* out) const;
  int64_t simd(const uint32_t* idx, int64_t n, O* out) const;

  const O* table_;
  int64_t k_;
  SimdLevel level_;
  alignas(64) uint32_t bits_[64] = {};
};

}  // namespace detail
}  // namespace wsc
