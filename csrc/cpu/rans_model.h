// Internal: pieces of the rANS model shared by the frequency code, the encoder and the decoder.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "wsc/rans.h"

namespace wsc {
namespace detail {

// log2(v) in 32.32 fixed point for 1 <= v < 2^62, by repeated squaring on integers only (so
// every machine, and wsc.reference.rans_log2fx, gets the same bits).
inline uint64_t rans_log2fx(uint64_t v) {
  int e = 63 - __builtin_clzll(v);
  uint64_t y = v << (62 - e);  // y / 2^62 in [1, 2)
  uint64_t r = uint64_t(e);
  for (int i = 0; i < 32; ++i) {
    y = uint64_t((unsigned __int128)y * y >> 62);
    r <<= 1;
    if (y >= uint64_t(1) << 63) {
      y >>= 1;
      r |= 1;
    }
  }
  return r;
}

// The cumulative frequencies cum[0..k] of a table that passed rans_check_freqs.
inline std::vector<uint32_t> rans_cumulative(const uint32_t* freqs, int64_t k) {
  std::vector<uint32_t> cum(size_t(k) + 1, 0);
  for (int64_t s = 0; s < k; ++s) cum[size_t(s) + 1] = cum[size_t(s)] + freqs[s];
  return cum;
}

}  // namespace detail
}  // namespace wsc
