// Internal: pieces of the rANS model shared by the frequency code, the encoder and the decoder.
#pragma once
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "wsc/rans.h"

namespace wsc {
namespace detail {

constexpr int kGridShift0 = 4;

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

// Level grid q (0 <= q < kRansGrids): the frequency of level l is l + l^2 / 2^(q - 4) (the
// square shifted right, or left for q < 4); level 0 is an unused symbol.
inline uint64_t rans_grid_value(uint64_t level, int q) {
  const uint64_t sq = level * level;
  return level + (q >= kGridShift0 ? sq >> (q - kGridShift0) : sq << (kGridShift0 - q));
}
// The largest level whose grid value is at most v (v < 2^40).
uint64_t rans_grid_floor(uint64_t v, int q);

// f(std::integral_constant<int, S>{}) for the state count S = states, one of 1, 2, 4 and 8
// (checked by rans_check_states), so encoder and decoder instantiate the same four.
template <class F>
decltype(auto) with_states(int states, F&& f) {
  switch (states) {
    case 1: return f(std::integral_constant<int, 1>{});
    case 2: return f(std::integral_constant<int, 2>{});
    case 4: return f(std::integral_constant<int, 4>{});
    default: return f(std::integral_constant<int, 8>{});
  }
}

// Bits of the gamma code of v >= 1.
inline int64_t gamma_bits(uint64_t v) { return 2 * (63 - __builtin_clzll(v)) + 1; }

// Bits of the packed table (header included, padding excluded) of a checked table.
int64_t rans_table_bits(const uint32_t* freqs, int64_t k, int scale_bits);
// Bits of the packed table in exact mode.
int64_t rans_exact_table_bits(const uint32_t* freqs, int64_t k, int scale_bits);
// Bits of the packed table in level mode on grid q, or -1 when it is not on that grid.
int64_t rans_grid_table_bits(const uint32_t* freqs, int64_t k, int q);

}  // namespace detail
}  // namespace wsc
