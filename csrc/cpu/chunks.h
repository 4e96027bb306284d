// Internal: how a chunked stream (Huffman or rANS) is cut into chunks, and the checks of its
// byte offsets.
#pragma once
#include <algorithm>
#include <cstdint>
#include <string>

#include "wsc/common.h"
#include "wsc/parallel.h"

namespace wsc {
namespace detail {

// n symbols in chunks of `size` (the last one shorter): chunk c holds [begin(c), end(c)).
struct Chunks {
  int64_t n, size, count;
  Chunks(int64_t n_, int64_t size_, const char* who = "huffman") : n(n_), size(size_), count(0) {
    check(n >= 0, std::string(who) + ": the number of symbols must be >= 0, got " +
                      std::to_string(n));
    check(size >= 1, std::string(who) + ": chunk_size must be >= 1, got " + std::to_string(size));
    count = n / size + (n % size != 0);
  }
  int64_t begin(int64_t c) const { return c * size; }
  int64_t end(int64_t c) const { return std::min(n, (c + 1) * size); }
};

// Throws unless offsets[0..count] start at 0, never decrease and end at total.
inline void check_offsets(const int64_t* offsets, int64_t count, int64_t total,
                          const char* who) {
  check(offsets[0] == 0, std::string(who) + ": chunk_offsets[0] must be 0, got " +
                             std::to_string(offsets[0]));
  for (int64_t c = 0; c < count; ++c)
    check(offsets[c + 1] >= offsets[c],
          std::string(who) + ": chunk_offsets must not decrease, but chunk_offsets[" +
              std::to_string(c + 1) + "] = " + std::to_string(offsets[c + 1]) +
              " < chunk_offsets[" + std::to_string(c) + "] = " + std::to_string(offsets[c]));
  check(offsets[count] == total, std::string(who) + ": chunk_offsets[-1] = " +
                                     std::to_string(offsets[count]) +
                                     " must equal the payload size " + std::to_string(total));
}

// Calls fn(c0, c1) on ranges of whole chunks, in parallel; each range holds a multiple of
// `group` chunks (but the last) and roughly 64K symbols or more.
template <class Fn>
void for_chunk_blocks(const Chunks& chunks, Fn&& fn, int64_t group = 1) {
  int64_t per = std::max<int64_t>(1, (int64_t(1) << 16) / chunks.size);
  per = (per + group - 1) / group * group;
  const int64_t blocks = chunks.count / per + (chunks.count % per != 0);
  parallel_for(blocks, [&](int64_t b) { fn(b * per, std::min(chunks.count, (b + 1) * per)); });
}

}  // namespace detail
}  // namespace wsc
