// Histogram of an index stream (the counts a Huffman or rANS code is built from).
#include "wsc/histogram.h"

#include <algorithm>
#include <string>
#include <vector>

#include "wsc/parallel.h"

namespace wsc {
namespace {

// Interleaved sub-histograms break the store-to-load chain when one symbol dominates
// (uint8 only: for uint16 the tables would no longer fit in cache).
template <class I>
constexpr int kSubs = sizeof(I) == 1 ? 4 : 1;

// Counts into sub[0..kSubs * range) where range covers every value of I; values >= k are
// counted too (the caller checks the tail of the table).
template <class I>
void count_block(const I* idx, int64_t m, uint32_t range, int64_t* sub) {
  constexpr int subs = kSubs<I>;
  int64_t j = 0;
  for (; j + subs <= m; j += subs)
    for (int u = 0; u < subs; ++u) ++sub[size_t(u) * range + idx[j + u]];
  for (; j < m; ++j) ++sub[idx[j]];
}

template <class I>
void histogram_typed(const I* idx, int64_t n, int64_t k, int64_t* counts) {
  constexpr int subs = kSubs<I>;
  const uint32_t range = uint32_t(1) << (8 * sizeof(I));
  const int64_t nb = num_blocks(n, 1 << 16);
  const size_t stride = size_t(subs) * range;
  std::vector<int64_t> part(stride * size_t(std::max<int64_t>(nb, 1)), 0);
  parallel_for(nb, [&](int64_t b) {
    int64_t s = n * b / nb, e = n * (b + 1) / nb;
    count_block(idx + s, e - s, range, part.data() + stride * size_t(b));
  });
  std::fill(counts, counts + k, int64_t(0));
  int64_t out_of_range = 0;
  for (int64_t b = 0; b < nb; ++b)
    for (int u = 0; u < subs; ++u) {
      const int64_t* p = part.data() + stride * size_t(b) + size_t(u) * range;
      for (int64_t v = 0; v < k && v < int64_t(range); ++v) counts[v] += p[v];
      for (int64_t v = k; v < int64_t(range); ++v) out_of_range += p[v];
    }
  if (out_of_range == 0) return;
  int64_t first = 0;
  while (int64_t(idx[first]) < k) ++first;
  throw std::invalid_argument("histogram: indices hold " + std::to_string(out_of_range) +
                              " value(s) >= k = " + std::to_string(k) +
                              "; the first is indices[" + std::to_string(first) +
                              "] = " + std::to_string(int64_t(idx[first])));
}

}  // namespace

void histogram(const void* idx, IndexType itype, int64_t n, int64_t k, int64_t* counts) {
  check(k >= 1 && k <= kMaxBins, "histogram: k must be in [1, 65536], got " + std::to_string(k));
  check(n >= 0, "histogram: n must be >= 0");
  if (itype == IndexType::U8)
    histogram_typed(static_cast<const uint8_t*>(idx), n, k, counts);
  else
    histogram_typed(static_cast<const uint16_t*>(idx), n, k, counts);
}

}  // namespace wsc
