// Internal: codebook lookups out[i] = table[idx[i]] with SIMD permutes where the table is
// small (k <= 64 with AVX-512: up to four 16-entry registers; k <= 32 with AVX2: up to four
// 8-entry registers), a scalar loop otherwise (AVX-512 gathers were slower than the scalar
// loop at k = 256). Shared by gather and share. With `stream`, 4-byte outputs are written by
// non-temporal stores (whole 64-byte lines, without first reading the destination into cache)
// when the whole call writes kStreamBytes or more; each worker then calls finish() after its
// last lookup, so its stores are ordered before the worker reports done.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "wsc/simd.h"

namespace wsc {
namespace detail {

// Outputs at least this large are written with streamed stores: they cannot stay in this size
// of last-level cache anyway, and a store that first reads its line moves the output twice
// (measured, 25M float32 outputs at k = 16: gather 5.6-8.0 ms -> 4.0-5.5 ms).
constexpr int64_t kStreamBytes = int64_t(32) << 20;

// A codebook already converted to its output element type O (4 or 2 bytes: float, F16, BF16),
// for a call that writes `outputs` elements in all (which decides whether stores stream).
template <class O>
class Lookup {
  static_assert(sizeof(O) == 4 || sizeof(O) == 2, "4- or 2-byte output elements");

 public:
  Lookup(const O* table, int64_t k, int64_t outputs)
      : table_(table),
        k_(k),
        level_(simd_level()),
        stream_(sizeof(O) == 4 && outputs * int64_t(sizeof(O)) >= kStreamBytes) {
    if (k > 64) return;
    for (int64_t i = 0; i < k; ++i) {
      uint32_t bits = 0;
      std::memcpy(&bits, table + i, sizeof(O));
      bits_[size_t(i)] = bits;  // a 2-byte value zero-extended: 32-bit permutes serve both
    }
  }

  // out[0..n) = table[idx[0..n)]; every idx must be < k (the caller checked). When streaming,
  // the elements before out's first 64-byte boundary are looked up one by one (an output not
  // aligned to its element size is not streamed).
  template <class I>
  void operator()(const I* idx, int64_t n, O* out) const {
    const O* table = table_;
    const uintptr_t at = reinterpret_cast<uintptr_t>(out);
    const bool stream = stream_ && at % sizeof(O) == 0;
    const int64_t head = stream ? std::min<int64_t>(n, int64_t((64 - at % 64) % 64 / sizeof(O))) : 0;
    for (int64_t i = 0; i < head; ++i) out[i] = table[idx[i]];
    int64_t done = head;
    if constexpr (sizeof(I) != 2) done += simd(idx + head, n - head, out + head, stream);
    for (int64_t i = done; i < n; ++i) out[i] = table[idx[i]];
  }

  // The store fence that orders this worker's streamed stores (none without streaming): call it
  // once, after the worker's last lookup, not per lookup (a fence waits for the stores to drain).
  void finish() const;

 private:
  // Elements [0, returned) written by the SIMD kernel of the current level (0 if none applies),
  // by streamed stores if stream (out then 64-byte aligned).
  int64_t simd(const uint8_t* idx, int64_t n, O* out, bool stream) const;
  int64_t simd(const uint32_t* idx, int64_t n, O* out, bool stream) const;

  const O* table_;
  int64_t k_;
  SimdLevel level_;
  bool stream_;
  alignas(64) uint32_t bits_[64] = {};
};

}  // namespace detail
}  // namespace wsc
