// Range kernel: min and max of a floating array in one pass.
#pragma once
#include <cstdint>

#include "wsc/common.h"

namespace wsc {

struct Range {
  float lo;
  float hi;
};

// Min and max of x[0..n). Throws std::invalid_argument if n == 0 or if any element is
// NaN or +-Inf (the message gives how many and the index of the first one).
Range range(const void* x, DType dtype, int64_t n);

// Number of NaN/Inf elements in x and the index of the first one (-1 if none).
struct NonFinite {
  int64_t count;
  int64_t first;
};
NonFinite count_nonfinite(const void* x, DType dtype, int64_t n);

// Throws std::invalid_argument naming `what` if x holds any NaN or Inf.
void require_finite(const void* x, DType dtype, int64_t n, const char* what);

}  // namespace wsc
