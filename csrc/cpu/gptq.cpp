// GPTQ block solver: a line at a time, column by column, with plain scalar float64 arithmetic
// in the order of its numpy twin wsc.reference.gptq_block (no contraction: see
// CMakeLists.txt), so indices and errors are bit-identical to it.
#include "wsc/gptq.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "wsc/common.h"
#include "wsc/parallel.h"

namespace wsc {
namespace {

// Index i in [1, k-1] of the sorted values such that values[i-1] and values[i] are the two
// around x (torch.searchsorted's left insertion point, clamped; NaN sorts last).
inline int64_t above(double x, const double* values, int64_t k) {
  const int64_t i = std::isnan(x) ? k : std::lower_bound(values, values + k, x) - values;
  return std::min<int64_t>(std::max<int64_t>(i, 1), k - 1);
}

struct Chooser {
  const double* values;
  int64_t k;
  const double* bits;
  double rate, spacing;

  int64_t operator()(double x) const {
    if (k == 1) return 0;
    const int64_t i = above(x, values, k);
    if (rate == 0) return std::fabs(x - values[i - 1]) <= std::fabs(values[i] - x) ? i - 1 : i;
    const double a = (x - values[i - 1]) / spacing, b = (x - values[i]) / spacing;
    const double lower = a * a + rate * bits[i - 1], upper = b * b + rate * bits[i];
    return upper < lower ? i : i - 1;  // ties: the lower
  }
};

void solve_line(double* x, int64_t width, const double* u, const double* pivots,
                const Chooser& choose, int64_t* q, double* err) {
  for (int64_t i = 0; i < width; ++i) {
    const int64_t idx = choose(x[i]);
    const double e = (x[i] - choose.values[idx]) / pivots[i];
    q[i] = idx;
    err[i] = e;
    const double* ui = u + i * width;
    for (int64_t c = i + 1; c < width; ++c) x[c] -= e * ui[c];
  }
}

}  // namespace

void gptq_block(double* block, int64_t groups, int64_t rows, int64_t width, const double* u,
                const double* pivots, const double* values, int64_t k, const double* bits,
                double rate, int64_t* q, double* err) {
  check(groups >= 0 && rows >= 0 && width >= 0, "gptq_block: negative size");
  check(k >= 1, "gptq_block: k must be >= 1, got " + std::to_string(k));
  check(rate == 0 || k == 1 || bits != nullptr, "gptq_block: a rate needs bits");
  for (int64_t v = 1; v < k; ++v)
    check(values[v - 1] <= values[v], "gptq_block: values must be sorted ascending");
  const Chooser choose{values, k, bits, rate, k > 1 ? (values[k - 1] - values[0]) / double(k - 1) : 0.0};
  const int64_t lines = groups * rows;
  if (lines == 0 || width == 0) return;
  const int64_t nb = num_blocks(lines, std::max<int64_t>(1, 4096 / width));
  parallel_for(nb, [&](int64_t b) {
    for (int64_t line = lines * b / nb; line < lines * (b + 1) / nb; ++line) {
      const int64_t g = line / rows, off = line * width;
      solve_line(block + off, width, u + g * width * width, pivots + g * width, choose, q + off,
                 err + off);
    }
  });
}

}  // namespace wsc
