// The rANS model: quantising counts to frequencies with a power-of-two total, choosing the
// precision and the grid, checking a table (see wsc/rans.h).
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

constexpr uint64_t kLog2eFx = 6196328019;  // log2(e) in 32.32 fixed point

// Grid q: the symbol of largest count (the first) at what the others leave of M; every other
// used symbol, in order, at the level l (of the one below its share c * M / n, at least 1, the
// one above, and the previous used symbol's) of least cost c * log2(1 / f) + lambda * f +
// (bits of the order-0 exp-Golomb code of the step from the previous level), lambda =
// n * log2(e) / M (what a unit of frequency taken from the largest one costs), f = the grid
// value of l, all in 32.32 fixed point (ties: that order). False unless the largest one keeps
// >= 1 and stays the first of largest frequency.
bool quantize_grid(const int64_t* counts, int64_t k, int scale_bits, int q, uint32_t* freqs,
                   Log2Cache& lg) {
  using i128 = __int128;
  const uint64_t M = uint64_t(1) << scale_bits;
  uint64_t n = 0;
  int64_t top = 0;
  for (int64_t s = 0; s < k; ++s) {
    n += uint64_t(counts[s]);
    if (counts[s] > counts[top]) top = s;
  }
  if (n == 0) return false;
  const u128 lambda = u128(n) * kLog2eFx / M;
  uint64_t sum = 0, prev = 0;
  for (int64_t s = 0; s < k; ++s) {
    freqs[s] = 0;
    if (s == top || counts[s] == 0) continue;
    const uint64_t c = uint64_t(counts[s]);
    const uint64_t below = std::max<uint64_t>(1, detail::rans_grid_floor(uint64_t(u128(c) * M / n), q));
    const uint64_t cand[3] = {below, below + 1, prev};
    uint64_t level = 0;
    i128 best = 0;
    for (const uint64_t l : cand) {
      const uint64_t f = detail::rans_grid_value(l, q);
      if (l == 0 || f >= M) continue;
      const uint64_t z = l >= prev ? (l - prev) << 1 : ((prev - l) << 1) - 1;
      const i128 cost = i128(lambda * f) - i128(u128(c) * lg(f)) +
                        (i128(detail::gamma_bits(z + 1)) << 32);
      if (level == 0 || cost < best) {
        level = l;
        best = cost;
      }
    }
    if (level == 0) return false;
    sum += detail::rans_grid_value(level, q);
    if (sum >= M) return false;
    freqs[s] = uint32_t(detail::rans_grid_value(level, q));
    prev = level;
  }
  freqs[top] = uint32_t(M - sum);
  for (int64_t s = 0; s < k; ++s)
    if (s != top && (freqs[s] > freqs[top] || (s < top && freqs[s] == freqs[top]))) return false;
  return true;
}

// The payload of counts coded with freqs, in units of 2^-32 bits.
u128 payload_fx(const int64_t* counts, int64_t k, int scale_bits, const uint32_t* freqs,
                Log2Cache& lg) {
  u128 bits = 0;
  for (int64_t i = 0; i < k; ++i)
    if (counts[i] > 0)
      bits += u128(uint64_t(counts[i])) * ((uint64_t(scale_bits) << 32) - lg(freqs[i]));
  return bits;
}

// A table of `bits` bits as stored (whole bytes), in units of 2^-32 bits.
u128 table_fx(int64_t bits) { return u128(uint64_t((bits + 7) / 8 * 8)) << 32; }

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

bool rans_quantize_grid(const int64_t* counts, int64_t k, int scale_bits, int grid,
                        uint32_t* freqs) {
  check_k(k, "rans_quantize_grid");
  check_scale(scale_bits, "rans_quantize_grid");
  check(grid >= 0 && grid < kRansGrids, "rans_quantize_grid: grid must be in [0, 31], got " +
                                            std::to_string(grid));
  for (int64_t s = 0; s < k; ++s)
    check(counts[s] >= 0, "rans_quantize_grid: counts must be >= 0, got counts[" +
                              std::to_string(s) + "] = " + std::to_string(counts[s]));
  Log2Cache lg((uint64_t(1) << std::min(scale_bits, 16)) + 1);
  return quantize_grid(counts, k, scale_bits, grid, freqs, lg);
}

int rans_choose_scale(const int64_t* counts, int64_t k, int* grid) {
  check_k(k, "rans_choose_scale");
  uint64_t used = 0, n = 0;
  int64_t top = 0;
  for (int64_t s = 0; s < k; ++s) {
    check(counts[s] >= 0, "rans_choose_scale: counts must be >= 0");
    used += counts[s] > 0;
    n += uint64_t(counts[s]);
    if (counts[s] > counts[top]) top = s;
  }
  // Level grids only where one symbol holds at least half: it absorbs the grid's rounding.
  const bool grids = used >= 3 && 2 * uint64_t(counts[top]) >= n;
  const int lo = std::max(kRansMinScale, ceil_log2(std::max<uint64_t>(used, 1)));
  const int hi = kRansMaxScale;
  Log2Cache lg((uint64_t(1) << 16) + 1);
  std::vector<uint32_t> f(static_cast<size_t>(k));
  std::vector<u128> total(size_t(hi) + 1, 0);
  std::vector<int> best_grid(size_t(hi) + 1, -1);
  u128 best = ~u128(0), best16 = ~u128(0);
  for (int s = lo; s <= hi; ++s) {
    quantize(counts, k, s, f.data(), lg);
    total[size_t(s)] = payload_fx(counts, k, s, f.data(), lg) +
                       table_fx(detail::rans_exact_table_bits(f.data(), k, s));
    // Grids whose steps near the rare symbols' counts are about the counts' noise (level l
    // ~ sqrt(c * M / n * 2^(q - 4))): a window of six from q = log2(n) - s + 1.
    const int q0 = grids ? std::clamp(63 - __builtin_clzll(n) - s + 1, 0, kRansGrids - 6) : 0;
    for (int q = q0; grids && q < q0 + 6; ++q) {
      if (!quantize_grid(counts, k, s, q, f.data(), lg)) continue;
      const u128 bits = payload_fx(counts, k, s, f.data(), lg) +
                        table_fx(detail::rans_grid_table_bits(f.data(), k, q));
      if (bits < total[size_t(s)]) {
        total[size_t(s)] = bits;
        best_grid[size_t(s)] = q;
      }
    }
    best = std::min(best, total[size_t(s)]);
    if (s <= 16) best16 = std::min(best16, total[size_t(s)]);
  }
  // Above 16 bits only for a gain of more than 0.1% (the slot table grows past L2 there).
  const int limit = lo > 16 || best16 * 1000 > best * 1001 ? hi : 16;
  if (limit == 16) best = best16;
  int chosen = limit;
  for (int s = lo; s < limit; ++s)
    if (total[size_t(s)] * 10000 <= best * 10001) {
      chosen = s;
      break;
    }
  *grid = best_grid[size_t(chosen)];
  return chosen;
}


}  // namespace wsc
