// The rANS model: quantising counts to frequencies with a power-of-two total, choosing the
// precision, checking a table, and the packed form of a table (see wsc/rans.h).
#include <algorithm>
#include <functional>
#include <queue>
#include <string>
#include <utility>
#include <vector>

#include "rans_model.h"

namespace wsc {
namespace {

using u128 = unsigned __int128;

void check_k(int64_t k, const char* who) {
  check(k >= 1 && k <= kMaxBins,
        std::string(who) + ": k must be in [1, 65536], got " + std::to_string(k));
}

void check_scale(int scale_bits, const char* who) {
  check(scale_bits >= kRansMinScale && scale_bits <= kRansMaxScale,
        std::string(who) + ": scale_bits must be in [1, 20], got " + std::to_string(scale_bits));
}

int ceil_log2(uint64_t v) {
  int b = 0;
  while ((uint64_t(1) << b) < v) ++b;
  return b;
}

// log2fx(v) for the v of one call, memoised (v <= limit).
struct Log2Cache {
  std::vector<uint64_t> memo;
  explicit Log2Cache(uint64_t limit) : memo(size_t(limit) + 1, 0) {}
  uint64_t operator()(uint64_t v) {
    if (v >= memo.size()) return detail::rans_log2fx(v);
    uint64_t& m = memo[size_t(v)];
    if (m == 0 && v > 1) m = detail::rans_log2fx(v);
    return m;
  }
};

// Cost change of a frequency step for a symbol of count c, in units of 2^-32 bits:
// c * (log2(hi) - log2(lo)) for hi = lo + 1.
u128 step_cost(int64_t c, uint64_t lo, Log2Cache& lg) {
  return u128(uint64_t(c)) * (lg(lo + 1) - lg(lo));
}

void quantize(const int64_t* counts, int64_t k, int scale_bits, uint32_t* freqs, Log2Cache& lg) {
  const uint64_t M = uint64_t(1) << scale_bits;
  uint64_t n = 0, used = 0;
  for (int64_t s = 0; s < k; ++s) {
    check(counts[s] >= 0, "rans_quantize_freqs: counts must be >= 0, got counts[" +
                              std::to_string(s) + "] = " + std::to_string(counts[s]));
    n += uint64_t(counts[s]);
    used += counts[s] > 0;
  }
  std::vector<int64_t> one;
  if (used == 0) {  // an empty stream: symbol 0 stands in as the only used symbol
    one.assign(size_t(k), 0);
    one[0] = 1;
    counts = one.data();
    n = used = 1;
  }
  check(used <= M, "rans_quantize_freqs: " + std::to_string(used) +
                       " used symbols do not fit scale_bits " + std::to_string(scale_bits) +
                       " (at most " + std::to_string(M) + ")");
  int64_t total = 0;
  for (int64_t s = 0; s < k; ++s) {
    const uint64_t c = uint64_t(counts[s]);
    uint64_t f = 0;
    if (c > 0) f = std::max<uint64_t>(1, uint64_t((u128(2) * c * M + n) / (u128(2) * n)));
    freqs[s] = uint32_t(f);
    total += int64_t(f);
  }
  int64_t d = total - int64_t(M);
  using Item = std::pair<u128, int64_t>;  // (cost, symbol): the smallest first
  std::priority_queue<Item, std::vector<Item>, std::greater<Item>> heap;
  if (d > 0) {  // take d units where a unit costs least
    for (int64_t s = 0; s < k; ++s)
      if (freqs[s] > 1) heap.emplace(step_cost(counts[s], freqs[s] - 1, lg), s);
    for (; d > 0; --d) {
      const int64_t s = heap.top().second;
      heap.pop();
      if (--freqs[s] > 1) heap.emplace(step_cost(counts[s], freqs[s] - 1, lg), s);
    }
  } else if (d < 0) {  // give -d units where a unit gains most: the smallest (max - gain)
    const u128 top = ~u128(0);
    for (int64_t s = 0; s < k; ++s)
      if (counts[s] > 0) heap.emplace(top - step_cost(counts[s], freqs[s], lg), s);
    for (; d < 0; ++d) {
      const int64_t s = heap.top().second;
      heap.pop();
      ++freqs[s];
      heap.emplace(top - step_cost(counts[s], freqs[s], lg), s);
    }
  }
}

// Bits of the gamma code of v >= 1.
inline int64_t gamma_bits(uint64_t v) { return 2 * (63 - __builtin_clzll(v)) + 1; }

// The table as (value, zero run) codes: a non-zero frequency has run 0; a zero frequency
// stands for the run of zeros that starts there (>= 1).
std::vector<std::pair<uint32_t, uint32_t>> table_codes(const uint32_t* freqs, int64_t k) {
  std::vector<std::pair<uint32_t, uint32_t>> codes;
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

// Bits of the packed table with exp-Golomb order r (header included, padding excluded).
int64_t table_bits(const std::vector<std::pair<uint32_t, uint32_t>>& codes, int r) {
  int64_t bits = 9;
  for (const auto& [f, run] : codes)
    bits += gamma_bits((uint64_t(f) >> r) + 1) + r + (run ? gamma_bits(run) : 0);
  return bits;
}

// The exp-Golomb order that packs smallest (the smallest order on ties), and its bit count.
std::pair<int, int64_t> best_order(const uint32_t* freqs, int64_t k, int scale_bits) {
  const auto codes = table_codes(freqs, k);
  std::pair<int, int64_t> best{0, table_bits(codes, 0)};
  for (int r = 1; r <= std::min(15, scale_bits); ++r) {
    const int64_t b = table_bits(codes, r);
    if (b < best.second) best = {r, b};
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
};

}  // namespace

void rans_check_freqs(const uint32_t* freqs, int64_t k, int scale_bits) {
  check_k(k, "rans");
  check_scale(scale_bits, "rans");
  const uint64_t M = uint64_t(1) << scale_bits;
  uint64_t sum = 0;
  for (int64_t s = 0; s < k; ++s) {
    check(freqs[s] <= M, "rans: freqs[" + std::to_string(s) + "] = " + std::to_string(freqs[s]) +
                             " exceeds 2^scale_bits = " + std::to_string(M));
    sum += freqs[s];
  }
  check(sum == M, "rans: the frequencies sum to " + std::to_string(sum) +
                      ", not 2^scale_bits = " + std::to_string(M));
}

void rans_quantize_freqs(const int64_t* counts, int64_t k, int scale_bits, uint32_t* freqs) {
  check_k(k, "rans_quantize_freqs");
  check_scale(scale_bits, "rans_quantize_freqs");
  Log2Cache lg((uint64_t(1) << scale_bits) + 1);
  quantize(counts, k, scale_bits, freqs, lg);
}

int rans_choose_scale(const int64_t* counts, int64_t k) {
  check_k(k, "rans_choose_scale");
  uint64_t used = 0;
  for (int64_t s = 0; s < k; ++s) {
    check(counts[s] >= 0, "rans_choose_scale: counts must be >= 0");
    used += counts[s] > 0;
  }
  const int lo = std::max(kRansMinScale, ceil_log2(std::max<uint64_t>(used, 1)));
  const int hi = kRansMaxScale;
  Log2Cache lg((uint64_t(1) << 16) + 1);
  std::vector<uint32_t> f(static_cast<size_t>(k));
  std::vector<u128> total(size_t(hi) + 1, 0);
  u128 best = ~u128(0), best16 = ~u128(0);
  for (int s = lo; s <= hi; ++s) {
    quantize(counts, k, s, f.data(), lg);
    u128 bits = 0;  // payload and table, in units of 2^-32 bits
    for (int64_t i = 0; i < k; ++i)
      if (counts[i] > 0)
        bits += u128(uint64_t(counts[i])) * ((uint64_t(s) << 32) - lg(f[size_t(i)]));
    const int64_t table = (best_order(f.data(), k, s).second + 7) / 8 * 8;
    bits += u128(uint64_t(table)) << 32;
    total[size_t(s)] = bits;
    best = std::min(best, bits);
    if (s <= 16) best16 = std::min(best16, bits);
  }
  // Above 16 bits only for a gain of more than 0.1% (the slot table grows past L2 there).
  const int limit = lo > 16 || best16 * 1000 > best * 1001 ? hi : 16;
  if (limit == 16) best = best16;
  for (int s = lo; s < limit; ++s)
    if (total[size_t(s)] * 10000 <= best * 10001) return s;
  return limit;
}

int64_t rans_packed_size(const uint32_t* freqs, int64_t k, int scale_bits) {
  rans_check_freqs(freqs, k, scale_bits);
  return (best_order(freqs, k, scale_bits).second + 7) / 8;
}

void rans_pack_freqs(const uint32_t* freqs, int64_t k, int scale_bits, uint8_t* out,
                     int64_t size) {
  rans_check_freqs(freqs, k, scale_bits);
  const auto [r, bits] = best_order(freqs, k, scale_bits);
  check(size == (bits + 7) / 8, "rans_pack_freqs: the packed table takes " +
                                    std::to_string((bits + 7) / 8) + " bytes, not " +
                                    std::to_string(size));
  std::fill(out, out + size, uint8_t(0));
  BitWriter w{out, size};
  w.put(uint64_t(scale_bits), 5);
  w.put(uint64_t(r), 4);
  for (const auto& [f, run] : table_codes(freqs, k)) {
    w.gamma((uint64_t(f) >> r) + 1);
    w.put(f & ((uint64_t(1) << r) - 1), r);
    if (run) w.gamma(run);
  }
}

int rans_unpack_freqs(const uint8_t* data, int64_t size, int64_t k, uint32_t* freqs) {
  check_k(k, "rans_unpack_freqs");
  check(size >= 0, "rans_unpack_freqs: size must be >= 0");
  BitReader rd{data, size};
  const int scale_bits = int(rd.get(5));
  check(scale_bits >= kRansMinScale && scale_bits <= kRansMaxScale,
        "rans_unpack_freqs: scale_bits " + std::to_string(scale_bits) +
            " in the table header is outside [1, 20] (corrupt table)");
  const int r = int(rd.get(4));
  const uint64_t M = uint64_t(1) << scale_bits;
  uint64_t sum = 0;
  for (int64_t s = 0; s < k;) {
    const uint64_t f = ((rd.gamma(24, "frequency") - 1) << r) | rd.get(r);
    check(f <= M, "rans_unpack_freqs: frequency " + std::to_string(f) + " of symbol " +
                      std::to_string(s) + " exceeds 2^scale_bits = " + std::to_string(M));
    if (f != 0) {
      freqs[s++] = uint32_t(f);
      sum += f;
      continue;
    }
    const uint64_t run = rd.gamma(18, "zero-run");
    check(run <= uint64_t(k - s), "rans_unpack_freqs: a run of " + std::to_string(run) +
                                      " zero frequencies at symbol " + std::to_string(s) +
                                      " runs past k = " + std::to_string(k));
    std::fill(freqs + s, freqs + s + int64_t(run), 0u);
    s += int64_t(run);
  }
  check((rd.pos + 7) / 8 == size, "rans_unpack_freqs: " + std::to_string(size - (rd.pos + 7) / 8) +
                                      " byte(s) left after the table (corrupt table)");
  const int pad = int((8 - rd.pos % 8) % 8);
  check(pad == 0 || rd.get(pad) == 0, "rans_unpack_freqs: non-zero padding bits (corrupt table)");
  check(sum == M, "rans_unpack_freqs: the frequencies sum to " + std::to_string(sum) +
                      ", not 2^scale_bits = " + std::to_string(M) + " (corrupt table)");
  return scale_bits;
}

}  // namespace wsc
