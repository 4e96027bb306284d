// Fused share (quantize-dequantize): x -> codebook[bin(x)] in one pass.
#include <algorithm>
#include <vector>

#include "bin_rule.h"
#include "lookup.h"
#include "wsc/gather.h"
#include "wsc/parallel.h"
#include "wsc/range.h"

namespace wsc {
namespace {

template <class T, class O>
int64_t share_typed(const T* x, int64_t n, float lo, float hi, const float* codebook, int64_t k,
                    O* out) {
  const std::vector<O> table = codebook_as<O>(codebook, k);
  const detail::BinRule rule(lo, hi, k);
  const detail::Lookup<O> lookup(table.data(), k, n);
  const int64_t nb = num_blocks(n, 1 << 16);
  std::vector<int64_t> bad(size_t(std::max<int64_t>(nb, 1)), 0);
  parallel_for(nb, [&](int64_t b) {
    int64_t s = n * b / nb, e = n * (b + 1) / nb;
    uint32_t buf[detail::kBlock];
    int64_t nbad = 0;
    for (int64_t p = s; p < e; p += detail::kBlock) {
      int64_t len = std::min(detail::kBlock, e - p);
      nbad += rule.apply(x + p, len, buf);
      lookup(buf, len, out + p);
    }
    lookup.finish();
    bad[size_t(b)] = nbad;
  });
  int64_t total = 0;
  for (int64_t v : bad) total += v;
  return total;
}

template <class T>
int64_t share_out(const T* x, int64_t n, float lo, float hi, const float* codebook, int64_t k,
                  void* out, DType out_dtype) {
  switch (out_dtype) {
    case DType::F32: return share_typed(x, n, lo, hi, codebook, k, static_cast<float*>(out));
    case DType::F16: return share_typed(x, n, lo, hi, codebook, k, static_cast<F16*>(out));
    case DType::BF16: return share_typed(x, n, lo, hi, codebook, k, static_cast<BF16*>(out));
  }
  throw std::invalid_argument("share: unknown output dtype");
}

}  // namespace

void share(const void* x, DType dtype, int64_t n, float lo, float hi, const float* codebook,
           int64_t k, void* out, DType out_dtype) {
  check(k >= kMinBins && k <= kMaxBins, "share: k must be in [2, 65536]");
  check(lo - lo == 0.0f && hi - hi == 0.0f, "share: lo and hi must be finite");
  check(lo <= hi, "share: lo must be <= hi");
  int64_t bad = 0;
  switch (dtype) {
    case DType::F32:
      bad = share_out(static_cast<const float*>(x), n, lo, hi, codebook, k, out, out_dtype);
      break;
    case DType::F16:
      bad = share_out(static_cast<const F16*>(x), n, lo, hi, codebook, k, out, out_dtype);
      break;
    case DType::BF16:
      bad = share_out(static_cast<const BF16*>(x), n, lo, hi, codebook, k, out, out_dtype);
      break;
  }
  if (bad != 0) require_finite(x, dtype, n, "x");
}

}  // namespace wsc
