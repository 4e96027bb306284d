// Length-limited optimal code lengths by package-merge (Larmore & Hirschberg, 1990).
//
// Coin-collector view: each used symbol owns one coin of each denomination 2^-1 .. 2^-max_len,
// worth its count. From the smallest denomination up, adjacent coins are paired into
// packages and merged with the next denomination's coins; the cheapest 2n - 2 items of
// denomination 2^-1 form the optimal solution, and a symbol's code length is the number of
// its coins chosen. Only which items are leaves needs to be kept per level: the chosen
// items of a level are a prefix, whose leaves are the cheapest symbols, and whose packages
// are the first pairs of the level below. O(n * max_len) time and bytes.
#include <algorithm>
#include <string>
#include <vector>

#include "wsc/huffman.h"

namespace wsc {

void huffman_code_lengths(const int64_t* counts, int64_t k, int max_len, uint8_t* lengths) {
  check(k >= 1 && k <= kMaxBins, "huffman_code_lengths: k must be in [1, 65536], got " +
                                     std::to_string(k));
  check(max_len >= 1 && max_len <= kHuffmanMaxLen,
        "huffman_code_lengths: max_len must be in [1, 32], got " + std::to_string(max_len));
  std::vector<int32_t> syms;
  int64_t total = 0;
  for (int64_t i = 0; i < k; ++i) {
    check(counts[i] >= 0, "huffman_code_lengths: counts[" + std::to_string(i) +
                              "] is negative (" + std::to_string(counts[i]) + ")");
    // A package of level d weighs at most (max_len - d) * total: keep every sum in int64.
    check(counts[i] <= (int64_t(1) << 56) - total,
          "huffman_code_lengths: the counts sum to more than 2^56");
    total += counts[i];
    if (counts[i] > 0) syms.push_back(int32_t(i));
    lengths[i] = 0;
  }
  const int64_t n = int64_t(syms.size());
  if (n == 0) return;
  if (n == 1) {
    lengths[syms[0]] = 1;
    return;
  }
  check(max_len >= 31 || n <= (int64_t(1) << max_len),
        "huffman_code_lengths: max_len " + std::to_string(max_len) + " allows at most " +
            std::to_string(int64_t(1) << max_len) + " used symbols, got " + std::to_string(n));
  std::stable_sort(syms.begin(), syms.end(),
                   [&](int32_t a, int32_t b) { return counts[a] < counts[b]; });
  std::vector<int64_t> leaf(static_cast<size_t>(n));
  for (int64_t t = 0; t < n; ++t) leaf[size_t(t)] = counts[syms[size_t(t)]];

  // is_leaf[d]: the merged list of denomination 2^-d, leaf (1) or package (0) per item.
  std::vector<std::vector<uint8_t>> is_leaf(size_t(max_len) + 1);
  std::vector<int64_t> items(leaf), merged;
  is_leaf[size_t(max_len)].assign(size_t(n), 1);
  for (int d = max_len - 1; d >= 1; --d) {
    const size_t n_pack = items.size() / 2;
    merged.clear();
    std::vector<uint8_t>& flags = is_leaf[size_t(d)];
    size_t a = 0, b = 0;
    while (a < leaf.size() || b < n_pack) {
      const int64_t pw = b < n_pack ? items[2 * b] + items[2 * b + 1] : 0;
      if (b == n_pack || (a < leaf.size() && leaf[a] <= pw)) {  // a leaf wins ties
        merged.push_back(leaf[a++]);
        flags.push_back(1);
      } else {
        merged.push_back(pw);
        ++b;
        flags.push_back(0);
      }
    }
    items.swap(merged);
  }

  // Trace the choice down: the cheapest 2n - 2 items of denomination 1/2.
  std::vector<int64_t> depth(static_cast<size_t>(n), 0);
  int64_t take = 2 * n - 2;
  for (int d = 1; d <= max_len && take > 0; ++d) {
    const std::vector<uint8_t>& flags = is_leaf[size_t(d)];
    int64_t leaves = 0;
    for (int64_t j = 0; j < take; ++j) leaves += flags[size_t(j)];
    for (int64_t t = 0; t < leaves; ++t) ++depth[size_t(t)];
    take = 2 * (take - leaves);
  }
  for (int64_t t = 0; t < n; ++t) lengths[syms[size_t(t)]] = uint8_t(depth[size_t(t)]);
}

}  // namespace wsc
