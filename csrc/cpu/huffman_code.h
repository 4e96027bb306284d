// Internal: the canonical code of a set of code lengths (see wsc/huffman.h), shared by the
// encoder and the decoder.
#pragma once
#include <cstdint>
#include <vector>

#include "wsc/huffman.h"

namespace wsc {
namespace detail {

struct CanonicalCode {
  int max_len = 0;     // longest code; 0 when no symbol is used
  int64_t used = 0;    // number of symbols with a code
  // Per code length L in [1, max_len]: how many symbols have it, the first (smallest) code
  // of that length, and where its symbols start in `sorted`.
  uint64_t count[kHuffmanMaxLen + 1] = {};
  uint64_t first[kHuffmanMaxLen + 1] = {};
  uint32_t offset[kHuffmanMaxLen + 1] = {};
  std::vector<uint16_t> sorted;  // used symbols by (length, value)
  std::vector<uint32_t> codes;   // code of each symbol, right-aligned (0 when unused)

  // Validates lengths[0..k) with huffman_check_lengths, then builds the code.
  CanonicalCode(const uint8_t* lengths, int64_t k);
};

}  // namespace detail
}  // namespace wsc
