// Canonical code construction and the code-length check shared by encoder and decoder.
#include "huffman_code.h"

#include <string>

namespace wsc {

void huffman_check_lengths(const uint8_t* lengths, int64_t k) {
  check(k >= 1 && k <= kMaxBins, "huffman: k must be in [1, 65536], got " + std::to_string(k));
  // Kraft sum in units of 2^-32: exact for lengths <= 32 and k <= 2^16.
  uint64_t kraft = 0;
  int64_t used = 0, last = -1;
  for (int64_t i = 0; i < k; ++i) {
    const int len = lengths[i];
    if (len == 0) continue;
    check(len <= kHuffmanMaxLen, "huffman: code length " + std::to_string(len) + " of symbol " +
                                     std::to_string(i) + " exceeds the maximum of 32");
    kraft += uint64_t(1) << (kHuffmanMaxLen - len);
    ++used;
    last = i;
  }
  if (used == 1) {
    check(lengths[last] == 1, "huffman: a single used symbol must have code length 1, symbol " +
                                  std::to_string(last) + " has " +
                                  std::to_string(int(lengths[last])));
    return;
  }
  check(used == 0 || kraft == (uint64_t(1) << kHuffmanMaxLen),
        std::string("huffman: code lengths are not a complete prefix code (Kraft sum ") +
            (kraft > (uint64_t(1) << kHuffmanMaxLen) ? "> 1" : "< 1") + ")");
}

namespace detail {

CanonicalCode::CanonicalCode(const uint8_t* lengths, int64_t k) {
  huffman_check_lengths(lengths, k);
  codes.assign(size_t(k), 0);
  for (int64_t i = 0; i < k; ++i) {
    if (lengths[i] == 0) continue;
    ++count[lengths[i]];
    ++used;
    if (lengths[i] > max_len) max_len = lengths[i];
  }
  uint64_t code = 0;
  uint32_t at = 0;
  for (int len = 1; len <= kHuffmanMaxLen; ++len) {
    first[len] = code;
    offset[len] = at;
    code = (code + count[len]) << 1;
    at += uint32_t(count[len]);
  }
  sorted.assign(size_t(used), 0);
  uint64_t next[kHuffmanMaxLen + 1];
  for (int len = 1; len <= kHuffmanMaxLen; ++len) next[len] = 0;
  for (int64_t i = 0; i < k; ++i) {
    const int len = lengths[i];
    if (len == 0) continue;
    sorted[offset[len] + next[len]] = uint16_t(i);
    codes[size_t(i)] = uint32_t(first[len] + next[len]);
    ++next[len];
  }
}

}  // namespace detail
}  // namespace wsc
