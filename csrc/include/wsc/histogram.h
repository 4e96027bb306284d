// Histogram of an index stream: how often each of k symbols occurs.
#pragma once
#include <cstdint>

#include "wsc/common.h"

namespace wsc {

// counts[0..k) (overwritten) = number of occurrences of each value in idx[0..n) (uint8 if
// itype == U8, uint16 otherwise). Requires 1 <= k <= 65536; throws std::invalid_argument if
// any index is >= k (the message gives the first offending flat index and its value).
// Results are identical for any thread count (integer sums).
void histogram(const void* idx, IndexType itype, int64_t n, int64_t k, int64_t* counts);

}  // namespace wsc
