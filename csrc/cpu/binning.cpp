// Uniform binning with per-bin counts and sums in the same pass.
#include "wsc/binning.h"

#include <algorithm>
#include <type_traits>
#include <vector>

#include "bin_accumulate.h"
#include "bin_avx512.h"
#include "bin_rule.h"
#include "simd_arch.h"
#include "wsc/parallel.h"
#include "wsc/range.h"
#include "wsc/simd.h"

namespace wsc {
namespace {

using detail::SumCount;

// Blocks depend on n and k alone (never on the thread count) and are reduced in order, so
// the float64 sums are identical for any number of threads.
int64_t block_count(int64_t n, int64_t k) {
  const int64_t min_block = std::max<int64_t>(int64_t(1) << 18, 16 * k);
  return std::max<int64_t>(1, std::min<int64_t>(64, n / min_block));
}

// Interleaved sub-histograms break the load-add-store chain when most weights fall into one
// bin (typical of weights); only worth their memory for small k.
int sub_histograms(int64_t k) { return k <= 512 ? 8 : (k <= 4096 ? 2 : 1); }

// Hot bins (detail::HotBins: the few bins that hold most weights, summed in lane accumulators
// rather than through the histogram) are chosen after a block's first kBlock elements and
// again every this many kBlock steps, from its counts so far; only for k <= kMaxHotK (beyond,
// reading the counts would cost more than the hot bins save) and on CPUs with AVX-512, where
// masked adds make them pay (with AVX2 they cost more than the additions they save). The
// choice depends on the data, the block and the CPU, never on the thread count or the SIMD
// level a test forces, so every level adds the same values in the same order.
static_assert(detail::kMaxHotK <= 4096, "hot bins need 8 or 2 sub-histograms (sub_histograms)");
int64_t hot_refresh(int64_t k) {
  const bool pays = simd_supported() == SimdLevel::Avx512 && k <= detail::kMaxHotK;
  return pays ? 256 * std::max<int64_t>(1, k / 256) : 0;
}

template <class T, class I>
int64_t bin_block(const T* x, int64_t m, const detail::BinRule& rule, bool fused, I* idx,
                  SumCount* hist, int64_t k, int subs) {
  uint32_t bins[detail::kBlock];
  float values[detail::kBlock];
  int64_t bad = 0;
  const int64_t refresh = hot_refresh(k);
  detail::HotBins hot;
  detail::HotSums sums;
  detail::RuleChoice choice;
  for (int64_t s = 0, step = 0; s < m; s += detail::kBlock, ++step) {
    const int64_t len = std::min(detail::kBlock, m - s);
    if (refresh > 0 && step % refresh == 1) {
      detail::add_hot(hot, sums, subs, hist);
      detail::choose_hot(hist, k, subs, hot);
    }
    const float* xf;
    if constexpr (std::is_same_v<T, float>) {
      xf = x + s;
    } else {
      for (int64_t j = 0; j < len; ++j) values[j] = Elem<T>::load(x, s + j);
      xf = values;
    }
#if WSC_X86_SIMD
    if (fused) {
      bad += detail::bin_fused_avx512(xf, len, rule, hot, sums, idx + s, subs, hist, choice);
      continue;
    }
#endif
    bad += rule.apply_f32(xf, len, bins);
    for (int64_t j = 0; j < len; ++j) idx[s + j] = I(bins[j]);
    detail::accumulate(xf, bins, len, subs, hot, sums, hist);
  }
  detail::add_hot(hot, sums, subs, hist);
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
  const int subs = sub_histograms(k);
  const bool fused = detail::fused_avx512_applies(rule, k);
  const int64_t nb = block_count(n, k);
  // Each block fills its own sub-histograms (allocated by the worker: no page faults on a
  // shared buffer, no serial clearing) and folds them, in order, into its row of hist.
  std::vector<SumCount> hist(size_t(k) * size_t(nb));
  std::vector<int64_t> bad(size_t(nb), 0);
  parallel_for(nb, [&](int64_t b) {
    int64_t s = n * b / nb, e = n * (b + 1) / nb;
    std::vector<SumCount> subs_hist(size_t(k) * size_t(subs), SumCount{0.0, 0.0});
    bad[size_t(b)] = bin_block(x + s, e - s, rule, fused, idx + s, subs_hist.data(), k, subs);
    SumCount* row = hist.data() + size_t(k) * size_t(b);
    for (int64_t i = 0; i < k; ++i) {
      SumCount t = subs_hist[size_t(i * subs)];
      for (int sub = 1; sub < subs; ++sub) t += subs_hist[size_t(i * subs + sub)];
      row[i] = t;
    }
  });
  // Blocks in order.
  for (size_t h = 0; h < hist.size(); h += size_t(k))
    for (int64_t i = 0; i < k; ++i) {
      sums[i] += hist[h + size_t(i)][0];
      counts[i] += int64_t(hist[h + size_t(i)][1]);
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
