// Uniform binning with per-bin counts and sums in the same pass.
#include "wsc/binning.h"

#include <algorithm>
#include <vector>

#include "bin_rule.h"
#include "wsc/parallel.h"
#include "wsc/range.h"

namespace wsc {
namespace {

// Blocks are fixed by n alone (never by the thread count), and reduced in order, so the
// float64 sums are the same for any number of threads.
constexpr int64_t kMinBlock = 1 << 18;
constexpr int64_t kMaxBlocks = 64;

// Interleaved sub-histograms break the store-to-load chain when most weights fall into
// one bin (typical of weights: half of them land in the central bins).
constexpr int kSubs = 4;

template <class T, class I>
int64_t bin_block(const T* x, int64_t m, const detail::BinRule& rule, int64_t k, I* idx,
                  int64_t* counts, double* sums, int subs) {
  uint32_t buf[detail::kBlock];
  int64_t bad = 0;
  for (int64_t s = 0; s < m; s += detail::kBlock) {
    int64_t len = std::min(detail::kBlock, m - s);
    bad += rule.apply(x + s, len, buf);
    for (int64_t j = 0; j < len; ++j) idx[s + j] = I(buf[j]);
    if (subs == kSubs) {
      int64_t j = 0;
      for (; j + kSubs <= len; j += kSubs) {
        for (int u = 0; u < kSubs; ++u) {
          uint32_t b = buf[j + u] + uint32_t(u * k);
          counts[b] += 1;
          sums[b] += double(Elem<T>::load(x, s + j + u));
        }
      }
      for (; j < len; ++j) {
        counts[buf[j]] += 1;
        sums[buf[j]] += double(Elem<T>::load(x, s + j));
      }
    } else {
      for (int64_t j = 0; j < len; ++j) {
        counts[buf[j]] += 1;
        sums[buf[j]] += double(Elem<T>::load(x, s + j));
      }
    }
  }
  return bad;
}

// Returns the number of NaN/Inf inputs (the caller raises).
template <class T, class I>
int64_t bin_typed(const T* x, int64_t n, float lo, float hi, int64_t k, I* idx, int64_t* counts,
               double* sums) {
  std::fill(counts, counts + k, int64_t(0));
  std::fill(sums, sums + k, 0.0);
  if (n == 0) return 0;
  const detail::BinRule rule(lo, hi, k);
  const int subs = k <= 4096 ? kSubs : 1;
  const int64_t nb = std::min(kMaxBlocks, (n + kMinBlock - 1) / kMinBlock);
  const size_t stride = size_t(k) * size_t(subs);
  std::vector<int64_t> part_counts(stride * size_t(nb), 0);
  std::vector<double> part_sums(stride * size_t(nb), 0.0);
  std::vector<int64_t> bad(size_t(nb), 0);
  parallel_for(nb, [&](int64_t b) {
    int64_t s = n * b / nb, e = n * (b + 1) / nb;
    bad[size_t(b)] = bin_block(x + s, e - s, rule, k, idx + s, part_counts.data() + stride * b,
                               part_sums.data() + stride * b, subs);
  });
  for (int64_t b = 0; b < nb; ++b) {
    for (int u = 0; u < subs; ++u) {
      const int64_t* pc = part_counts.data() + stride * b + size_t(u) * k;
      const double* ps = part_sums.data() + stride * b + size_t(u) * k;
      for (int64_t i = 0; i < k; ++i) {
        counts[i] += pc[i];
        sums[i] += ps[i];
      }
    }
  }
  int64_t total_bad = 0;
  for (int64_t v : bad) total_bad += v;
  return total_bad;
}

template <class T>
int64_t bin_index_dispatch(const T* x, int64_t n, float lo, float hi, int64_t k, void* idx,
                           IndexType itype, int64_t* counts, double* sums) {
  if (itype == IndexType::U8)
    return bin_typed(x, n, lo, hi, k, static_cast<uint8_t*>(idx), counts, sums);
  return bin_typed(x, n, lo, hi, k, static_cast<uint16_t*>(idx), counts, sums);
}

}  // namespace

void bin_uniform(const void* x, DType dtype, int64_t n, float lo, float hi, int64_t k,
                 void* idx, IndexType itype, int64_t* counts, double* sums) {
  check(k >= kMinBins && k <= kMaxBins, "bin_uniform: k must be in [2, 65536]");
  check(itype == IndexType::U16 || k <= 256, "bin_uniform: uint8 indices need k <= 256");
  check(lo - lo == 0.0f && hi - hi == 0.0f, "bin_uniform: lo and hi must be finite");
  check(lo <= hi, "bin_uniform: lo must be <= hi");
  int64_t bad = 0;
  switch (dtype) {
    case DType::F32:
      bad = bin_index_dispatch(static_cast<const float*>(x), n, lo, hi, k, idx, itype, counts, sums);
      break;
    case DType::F16:
      bad = bin_index_dispatch(static_cast<const F16*>(x), n, lo, hi, k, idx, itype, counts, sums);
      break;
    case DType::BF16:
      bad = bin_index_dispatch(static_cast<const BF16*>(x), n, lo, hi, k, idx, itype, counts, sums);
      break;
  }
  if (bad != 0) require_finite(x, dtype, n, "x");
}

}  // namespace wsc
