// The packed frequency table (see wsc/rans.h): its bit count, packing and strict parsing.
#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "rans_model.h"

namespace wsc {
namespace detail {
namespace {

constexpr int kTableHeaderBits = 6;  // 5 bits scale_bits, 1 bit mode

inline uint64_t zigzag(int64_t d) { return d >= 0 ? uint64_t(d) << 1 : (uint64_t(-d) << 1) - 1; }

// A table as codes: (value, zero run) pairs. The value is what the exp-Golomb code carries (a
// frequency, or a zigzagged level step); a zero run (>= 1, including that symbol) follows the
// code of an unused symbol.
using Codes = std::vector<std::pair<uint64_t, uint32_t>>;

// Exact mode: the frequencies themselves.
Codes exact_codes(const uint32_t* freqs, int64_t k) {
  Codes codes;
  for (int64_t s = 0; s < k;) {
    if (freqs[s] != 0) {
      codes.emplace_back(freqs[s++], 0);
      continue;
    }
    int64_t run = 1;
    while (s + run < k && freqs[s + run] == 0) ++run;
    codes.emplace_back(0, uint32_t(run));
    s += run;
  }
  return codes;
}

// Level mode on grid q: the steps between the levels of consecutive used symbols (the
// implicit symbol, the first of largest frequency, at the smallest level that makes it the
// first of largest level); false when a frequency is not on the grid.
bool level_codes(const uint32_t* freqs, int64_t k, int q, Codes& codes) {
  const int64_t top = std::max_element(freqs, freqs + k) - freqs;
  std::vector<uint64_t> level(size_t(k), 0);
  uint64_t before = 0, after = 0;  // the largest other level before / after the implicit symbol
  uint64_t last_f = 0, last_l = 0;  // tables repeat values: the last one's level
  for (int64_t s = 0; s < k; ++s) {
    if (s == top || freqs[s] == 0) continue;
    if (freqs[s] != last_f) {
      last_f = freqs[s];
      last_l = rans_grid_floor(last_f, q);
      if (rans_grid_value(last_l, q) != last_f) return false;
    }
    const uint64_t l = last_l;
    level[size_t(s)] = l;
    (s < top ? before : after) = std::max(s < top ? before : after, l);
  }
  level[size_t(top)] = std::max<uint64_t>({1, after, before + 1});
  codes.clear();
  uint64_t prev = 0;
  for (int64_t s = 0; s < k;) {
    const uint64_t l = level[size_t(s)];
    codes.emplace_back(zigzag(int64_t(l) - int64_t(prev)), 0);
    if (l != 0) {
      prev = l;
      ++s;
      continue;
    }
    int64_t run = 1;
    while (s + run < k && level[size_t(s + run)] == 0) ++run;
    codes.back().second = uint32_t(run);
    s += run;
  }
  return true;
}

// The exp-Golomb order in [0, max_r] that codes `codes` in the fewest bits (the smallest on
// ties), and those bits (runs included, header excluded).
std::pair<int, int64_t> best_order(const Codes& codes, int max_r) {
  constexpr uint64_t kSmall = 4096;
  std::vector<int64_t> hist(kSmall, 0);
  std::vector<uint64_t> large;
  int64_t runs = 0;
  uint64_t top = 0;  // the largest small value
  for (const auto& [v, run] : codes) {
    if (v < kSmall) {
      ++hist[size_t(v)];
      top = std::max(top, v);
    } else {
      large.push_back(v);
    }
    if (run) runs += gamma_bits(run);
  }
  std::vector<std::pair<uint64_t, int64_t>> small;  // (value, how many)
  for (uint64_t v = 0; v <= top; ++v)
    if (hist[size_t(v)]) small.emplace_back(v, hist[size_t(v)]);
  std::pair<int, int64_t> best{0, -1};
  for (int r = 0; r <= max_r; ++r) {
    int64_t bits = runs;
    for (const auto& [v, count] : small) bits += count * (gamma_bits((v >> r) + 1) + r);
    for (const uint64_t v : large) bits += gamma_bits((v >> r) + 1) + r;
    if (best.second < 0 || bits < best.second) best = {r, bits};
  }
  return best;
}

struct BitWriter {
  uint8_t* out;
  int64_t size, pos = 0;  // pos in bits
  void put(uint64_t v, int bits) {
    for (int i = bits - 1; i >= 0; --i, ++pos) {
      check(pos < size * 8, "rans_pack_freqs: the table does not fit its size");
      if ((v >> i) & 1) out[pos >> 3] |= uint8_t(0x80 >> (pos & 7));
    }
  }
  void gamma(uint64_t v) {
    const int len = 64 - __builtin_clzll(v);
    put(0, len - 1);
    put(v, len);
  }
  void codes(const Codes& codes, int r) {
    for (const auto& [v, run] : codes) {
      gamma((v >> r) + 1);
      put(v & ((uint64_t(1) << r) - 1), r);
      if (run) gamma(run);
    }
  }
};

struct BitReader {
  const uint8_t* data;
  int64_t size, pos = 0;
  uint64_t get(int bits) {
    uint64_t v = 0;
    for (int i = 0; i < bits; ++i, ++pos) {
      check(pos < size * 8, "rans_unpack_freqs: the table runs past its " +
                                std::to_string(size) + " bytes (truncated or corrupt)");
      v = v << 1 | ((data[pos >> 3] >> (7 - (pos & 7))) & 1);
    }
    return v;
  }
  // A gamma code of at most max_len significant bits.
  uint64_t gamma(int max_len, const char* what) {
    int zeros = 0;
    while (get(1) == 0) {
      check(++zeros < max_len, std::string("rans_unpack_freqs: ") + what +
                                   " code too long (corrupt table)");
    }
    return (uint64_t(1) << zeros) | get(zeros);
  }
  uint64_t exp_golomb(int r, const char* what) { return ((gamma(24, what) - 1) << r) | get(r); }
  // The zero run after an unused symbol s: at most k - s symbols.
  int64_t run(int64_t s, int64_t k) {
    const uint64_t run = gamma(18, "zero-run");
    check(run <= uint64_t(k - s), "rans_unpack_freqs: a run of " + std::to_string(run) +
                                      " zero frequencies at symbol " + std::to_string(s) +
                                      " runs past k = " + std::to_string(k));
    return int64_t(run);
  }
};

// Exact body: exp-Golomb(r) frequencies with zero runs.
void read_exact(BitReader& rd, int64_t k, uint64_t M, int r, uint32_t* freqs) {
  for (int64_t s = 0; s < k;) {
    const uint64_t f = rd.exp_golomb(r, "frequency");
    check(f <= M, "rans_unpack_freqs: frequency " + std::to_string(f) + " of symbol " +
                      std::to_string(s) + " exceeds 2^scale_bits = " + std::to_string(M));
    if (f != 0) {
      freqs[s++] = uint32_t(f);
      continue;
    }
    const int64_t run = rd.run(s, k);
    std::fill(freqs + s, freqs + s + run, 0u);
    s += run;
  }
}

// Level body: exp-Golomb(r) zigzagged level steps with zero runs, then the grid values; the
// first symbol of the largest level takes what the others leave of M.
void read_levels(BitReader& rd, int64_t k, uint64_t M, int q, int r, uint32_t* freqs) {
  int64_t prev = 0, top = -1;
  for (int64_t s = 0; s < k;) {
    const uint64_t z = rd.exp_golomb(r, "level");
    const int64_t l = prev + ((z & 1) ? -int64_t((z + 1) >> 1) : int64_t(z >> 1));
    check(l >= 0 && uint64_t(l) <= M, "rans_unpack_freqs: level " + std::to_string(l) +
                                          " of symbol " + std::to_string(s) +
                                          " is outside [0, 2^scale_bits] (corrupt table)");
    if (l != 0) {
      if (top < 0 || l > int64_t(freqs[top])) top = s;
      freqs[s++] = uint32_t(l);
      prev = l;
      continue;
    }
    const int64_t run = rd.run(s, k);
    std::fill(freqs + s, freqs + s + run, 0u);
    s += run;
  }
  check(top >= 0, "rans_unpack_freqs: no symbol has a frequency (corrupt table)");
  uint64_t sum = 0;
  for (int64_t s = 0; s < k; ++s) {
    if (s == top || freqs[s] == 0) continue;
    sum += rans_grid_value(freqs[s], q);
    check(sum < M, "rans_unpack_freqs: the frequencies leave nothing of 2^scale_bits = " +
                       std::to_string(M) + " to symbol " + std::to_string(top) +
                       " (corrupt table)");
    freqs[s] = uint32_t(rans_grid_value(freqs[s], q));
  }
  freqs[top] = uint32_t(M - sum);
}

// The encoding of a table that packs smallest: mode -1 (exact) or a grid, order r, bits.
struct Best {
  int grid, r;
  int64_t bits;
  Codes codes;
};

Best best_encoding(const uint32_t* freqs, int64_t k, int scale_bits) {
  Best best{-1, 0, 0, exact_codes(freqs, k)};
  const auto [r0, b0] = best_order(best.codes, std::min(15, scale_bits));
  best.r = r0;
  best.bits = kTableHeaderBits + 4 + b0;
  // Every code takes at least one bit: no grid packs below that bound.
  int64_t floor = kTableHeaderBits + 9;
  for (const auto& [v, run] : best.codes) floor += 1 + (run ? gamma_bits(run) : 0);
  Codes codes;
  for (int q = 0; q < kRansGrids && floor < best.bits; ++q) {
    if (!level_codes(freqs, k, q, codes)) continue;
    const auto [r, b] = best_order(codes, 15);
    if (kTableHeaderBits + 9 + b < best.bits) best = {q, r, kTableHeaderBits + 9 + b, codes};
  }
  return best;
}

}  // namespace

uint64_t rans_grid_floor(uint64_t v, int q) {
  const double a = std::ldexp(1.0, q - kGridShift0);
  uint64_t l = uint64_t(2.0 * double(v) / (1.0 + std::sqrt(1.0 + 4.0 * double(v) / a)));
  while (l > 0 && rans_grid_value(l, q) > v) --l;
  while (rans_grid_value(l + 1, q) <= v) ++l;
  return l;
}

int64_t rans_table_bits(const uint32_t* freqs, int64_t k, int scale_bits) {
  return best_encoding(freqs, k, scale_bits).bits;
}

int64_t rans_exact_table_bits(const uint32_t* freqs, int64_t k, int scale_bits) {
  return kTableHeaderBits + 4 + best_order(exact_codes(freqs, k), std::min(15, scale_bits)).second;
}

int64_t rans_grid_table_bits(const uint32_t* freqs, int64_t k, int q) {
  Codes codes;
  if (!level_codes(freqs, k, q, codes)) return -1;
  return kTableHeaderBits + 9 + best_order(codes, 15).second;
}

}  // namespace detail

int64_t rans_packed_size(const uint32_t* freqs, int64_t k, int scale_bits) {
  rans_check_freqs(freqs, k, scale_bits);
  return (detail::rans_table_bits(freqs, k, scale_bits) + 7) / 8;
}

void rans_pack_freqs(const uint32_t* freqs, int64_t k, int scale_bits, uint8_t* out,
                     int64_t size) {
  rans_check_freqs(freqs, k, scale_bits);
  const auto best = detail::best_encoding(freqs, k, scale_bits);
  check(size == (best.bits + 7) / 8, "rans_pack_freqs: the packed table takes " +
                                         std::to_string((best.bits + 7) / 8) + " bytes, not " +
                                         std::to_string(size));
  std::fill(out, out + size, uint8_t(0));
  detail::BitWriter w{out, size};
  w.put(uint64_t(scale_bits), 5);
  w.put(best.grid >= 0, 1);
  if (best.grid >= 0) w.put(uint64_t(best.grid), 5);
  w.put(uint64_t(best.r), 4);
  w.codes(best.codes, best.r);
}

int rans_unpack_freqs(const uint8_t* data, int64_t size, int64_t k, int encoding,
                      uint32_t* freqs) {
  check(k >= 1 && k <= kMaxBins, "rans_unpack_freqs: k must be in [1, 65536], got " +
                                     std::to_string(k));
  check(size >= 0, "rans_unpack_freqs: size must be >= 0");
  check(encoding == 1 || encoding == 2, "rans_unpack_freqs: encoding must be 1 or 2, got " +
                                            std::to_string(encoding));
  detail::BitReader rd{data, size};
  const int scale_bits = int(rd.get(5));
  check(scale_bits >= kRansMinScale && scale_bits <= kRansMaxScale,
        "rans_unpack_freqs: scale_bits " + std::to_string(scale_bits) +
            " in the table header is outside [1, 20] (corrupt table)");
  const uint64_t M = uint64_t(1) << scale_bits;
  const bool levels = encoding == 2 && rd.get(1) == 1;
  const int q = levels ? int(rd.get(5)) : -1;
  const int r = int(rd.get(4));
  if (levels)
    detail::read_levels(rd, k, M, q, r, freqs);
  else
    detail::read_exact(rd, k, M, r, freqs);
  check((rd.pos + 7) / 8 == size, "rans_unpack_freqs: " + std::to_string(size - (rd.pos + 7) / 8) +
                                      " byte(s) left after the table (corrupt table)");
  const int pad = int((8 - rd.pos % 8) % 8);
  check(pad == 0 || rd.get(pad) == 0, "rans_unpack_freqs: non-zero padding bits (corrupt table)");
  uint64_t sum = 0;
  for (int64_t s = 0; s < k; ++s) sum += freqs[s];
  check(sum == M, "rans_unpack_freqs: the frequencies sum to " + std::to_string(sum) +
                      ", not 2^scale_bits = " + std::to_string(M) + " (corrupt table)");
  return scale_bits;
}

}  // namespace wsc
