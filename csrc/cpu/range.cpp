// Range kernel: min/max in one pass, with NaN/Inf detection.
#include "wsc/range.h"

#include <algorithm>
#include <limits>
#include <string>
#include <vector>

#include "wsc/half.h"
#include "wsc/parallel.h"

namespace wsc {
namespace {

struct Partial {
  float lo = std::numeric_limits<float>::infinity();
  float hi = -std::numeric_limits<float>::infinity();
  int64_t bad = 0;
};

template <class T>
Partial range_block(const T* x, int64_t m) {
  // Several accumulators so the compiler can vectorise the reduction.
  constexpr int L = 8;
  float lo[L], hi[L];
  int64_t bad[L] = {};
  for (int l = 0; l < L; ++l) {
    lo[l] = std::numeric_limits<float>::infinity();
    hi[l] = -std::numeric_limits<float>::infinity();
  }
  int64_t j = 0;
  for (; j + L <= m; j += L) {
    for (int l = 0; l < L; ++l) {
      float v = Elem<T>::load(x, j + l);
      bad[l] += !(v - v == 0.0f);
      lo[l] = v < lo[l] ? v : lo[l];
      hi[l] = v > hi[l] ? v : hi[l];
    }
  }
  Partial p;
  for (; j < m; ++j) {
    float v = Elem<T>::load(x, j);
    p.bad += !(v - v == 0.0f);
    p.lo = std::min(p.lo, v);
    p.hi = std::max(p.hi, v);
  }
  for (int l = 0; l < L; ++l) {
    p.lo = std::min(p.lo, lo[l]);
    p.hi = std::max(p.hi, hi[l]);
    p.bad += bad[l];
  }
  return p;
}

template <class T>
Partial range_typed(const T* x, int64_t n) {
  int64_t nb = num_blocks(n, 1 << 16);
  std::vector<Partial> parts(size_t(std::max<int64_t>(nb, 1)));
  parallel_for(nb, [&](int64_t b) {
    int64_t s = n * b / nb, e = n * (b + 1) / nb;
    parts[size_t(b)] = range_block(x + s, e - s);
  });
  Partial r;
  for (const auto& p : parts) {
    r.lo = std::min(r.lo, p.lo);
    r.hi = std::max(r.hi, p.hi);
    r.bad += p.bad;
  }
  return r;
}

template <class T>
int64_t first_nonfinite(const T* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    float v = Elem<T>::load(x, i);
    if (!(v - v == 0.0f)) return i;
  }
  return -1;
}

Partial range_dispatch(const void* x, DType dtype, int64_t n) {
  switch (dtype) {
    case DType::F32: return range_typed(static_cast<const float*>(x), n);
    case DType::F16: return range_typed(static_cast<const F16*>(x), n);
    case DType::BF16: return range_typed(static_cast<const BF16*>(x), n);
  }
  throw std::invalid_argument("range: unknown dtype");
}

}  // namespace

NonFinite count_nonfinite(const void* x, DType dtype, int64_t n) {
  int64_t count = range_dispatch(x, dtype, n).bad;
  if (count == 0) return {0, -1};
  int64_t first = -1;
  switch (dtype) {
    case DType::F32: first = first_nonfinite(static_cast<const float*>(x), n); break;
    case DType::F16: first = first_nonfinite(static_cast<const F16*>(x), n); break;
    case DType::BF16: first = first_nonfinite(static_cast<const BF16*>(x), n); break;
  }
  return {count, first};
}

void require_finite(const void* x, DType dtype, int64_t n, const char* what) {
  NonFinite nf = count_nonfinite(x, dtype, n);
  check(nf.count == 0, std::string(what) + " contains " + std::to_string(nf.count) +
                           " NaN/Inf value(s); the first is at flat index " +
                           std::to_string(nf.first));
}

Range range(const void* x, DType dtype, int64_t n) {
  check(n > 0, "range: x is empty; the range of no values is undefined");
  Partial p = range_dispatch(x, dtype, n);
  if (p.bad != 0) require_finite(x, dtype, n, "x");
  return {p.lo, p.hi};
}

}  // namespace wsc
