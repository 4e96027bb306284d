// Huffman encoding: per-chunk sizes first (so every chunk's byte offset is known), then every
// chunk written independently, in parallel, with a 64-bit bit accumulator.
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "huffman_code.h"
#include "huffman_chunks.h"
#include "wsc/parallel.h"

namespace wsc {
namespace {

// Per index value (every value of the index type, so a lookup never goes out of bounds):
// code << 8 | length, or 0 for a value without a code (count 0, or >= k).
template <class I>
std::vector<uint64_t> encode_table(const uint8_t* lengths, int64_t k) {
  const detail::CanonicalCode code(lengths, k);
  std::vector<uint64_t> table(size_t(1) << (8 * sizeof(I)), 0);
  for (int64_t i = 0; i < k && i < int64_t(table.size()); ++i)
    if (lengths[i] != 0) table[size_t(i)] = (uint64_t(code.codes[size_t(i)]) << 8) | lengths[i];
  return table;
}

// Throws for the first index in [s, e) without a code, if any.
template <class I>
void check_symbols(const I* idx, int64_t s, int64_t e, const uint64_t* table, int64_t k) {
  for (int64_t i = s; i < e; ++i) {
    if (table[idx[i]] != 0) continue;
    const int64_t v = idx[i];
    throw std::invalid_argument(
        "huffman: indices[" + std::to_string(i) + "] = " + std::to_string(v) +
        (v >= k ? " is >= k = " + std::to_string(k)
                : " has no code (code length 0: the symbol's count is 0)"));
  }
}

inline void store_be64(uint8_t* p, uint64_t v) {
  v = __builtin_bswap64(v);
  std::memcpy(p, &v, 8);
}

// Writes idx[0..m) into out[0..cap); returns false when the bits do not fill exactly cap
// bytes (never writes past cap) or a symbol has no code. P symbols (an even number, P times
// the longest code <= 56 bits) go into the accumulator, two codes joined first to halve the
// dependency chain, then the whole bytes leave in one 8-byte store, as long as that store
// stays inside the chunk; the rest (everything when P == 0) byte by byte. A table entry is 0
// exactly for a symbol without a code, so the top bit of (entry - 1) flags one.
template <int P, class I>
bool encode_chunk(const I* idx, int64_t m, const uint64_t* table, uint8_t* out, int64_t cap) {
  uint64_t acc = 0;      // pending bits, the newest in the low end
  unsigned pending = 0;  // < 8 between flushes
  int64_t pos = 0, j = 0;
  uint64_t empty = 0;
  if (P > 0) {
    for (; j + P <= m && pos + 8 <= cap; j += P) {
#pragma GCC unroll 8
      for (int u = 0; u < P; u += 2) {
        const uint64_t e0 = table[idx[j + u]], e1 = table[idx[j + u + 1]];
        const unsigned l0 = unsigned(e0 & 0xff), l1 = unsigned(e1 & 0xff);
        empty |= (e0 - 1) | (e1 - 1);
        acc = (acc << (l0 + l1)) | ((e0 >> 8) << l1) | (e1 >> 8);
        pending += l0 + l1;
      }
      if (pending == 0) break;  // only symbols without a code: reported below
      store_be64(out + pos, acc << (64 - pending));
      pos += pending >> 3;
      pending &= 7;
    }
  }
  for (; j < m; ++j) {
    const uint64_t e = table[idx[j]];
    empty |= e - 1;
    acc = (acc << (e & 0xff)) | (e >> 8);
    pending += unsigned(e & 0xff);
    for (; pending >= 8; pending -= 8) {
      if (pos >= cap) return false;
      out[pos++] = uint8_t(acc >> (pending - 8));
    }
  }
  if (pending > 0) {  // the last byte is padded with zero bits
    if (pos >= cap) return false;
    out[pos++] = uint8_t(acc << (8 - pending));
  }
  return pos == cap && (empty >> 63) == 0;
}

// encode_chunk with the largest P in {0, 2, 4, 6, 8} the longest code allows.
template <class I>
bool encode_chunk_for(int longest, const I* idx, int64_t m, const uint64_t* table, uint8_t* out,
                      int64_t cap) {
  switch (std::min(8, 56 / longest / 2 * 2)) {
    case 8: return encode_chunk<8>(idx, m, table, out, cap);
    case 6: return encode_chunk<6>(idx, m, table, out, cap);
    case 4: return encode_chunk<4>(idx, m, table, out, cap);
    case 2: return encode_chunk<2>(idx, m, table, out, cap);
    default: return encode_chunk<0>(idx, m, table, out, cap);
  }
}

// Bits of idx[0..m): the sum of their code lengths; sets `empty` when a symbol has none.
// `len` holds length | (length == 0) << 16 per value. The indices are read a 64-bit word at a
// time into two sums; a block of 1024 symbols sums to < 2^16 bits, so its high half counts
// the symbols without a code.
template <class I>
uint64_t chunk_bits(const I* idx, int64_t m, const uint32_t* len, bool& empty) {
  constexpr int kPerWord = 8 / sizeof(I);
  constexpr int kBitsPer = 8 * sizeof(I);
  constexpr uint64_t kMask = (uint64_t(1) << kBitsPer) - 1;
  uint64_t bits = 0, none = 0;
  for (int64_t s = 0; s < m; s += 1024) {
    const int64_t e = std::min<int64_t>(m, s + 1024);
    uint64_t a = 0, b = 0;
    int64_t j = s;
    for (; j + kPerWord <= e; j += kPerWord) {
      uint64_t w;
      std::memcpy(&w, idx + j, 8);
      for (int u = 0; u < kPerWord; u += 2) {
        a += len[(w >> (u * kBitsPer)) & kMask];
        b += len[(w >> ((u + 1) * kBitsPer)) & kMask];
      }
    }
    for (; j < e; ++j) a += len[idx[j]];
    bits += (a + b) & 0xffff;
    none |= (a + b) >> 16;
  }
  empty = none != 0;
  return bits;
}

template <class I>
int64_t plan_typed(const I* idx, int64_t n, const uint8_t* lengths, int64_t k,
                   int64_t chunk_size, int64_t* chunk_offsets) {
  const std::vector<uint64_t> table = encode_table<I>(lengths, k);
  std::vector<uint32_t> len(table.size());
  for (size_t i = 0; i < table.size(); ++i)
    len[i] = uint32_t(table[i] & 0xff) | uint32_t(table[i] == 0) << 16;
  const detail::Chunks chunks(n, chunk_size);
  chunk_offsets[0] = 0;
  detail::for_chunk_blocks(chunks, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t s = chunks.begin(c), e = chunks.end(c);
      bool empty = false;
      const uint64_t bits = chunk_bits(idx + s, e - s, len.data(), empty);
      if (empty) check_symbols(idx, s, e, table.data(), k);
      chunk_offsets[c + 1] = int64_t((bits + 7) / 8);
    }
  });
  for (int64_t c = 0; c < chunks.count; ++c) chunk_offsets[c + 1] += chunk_offsets[c];
  return chunk_offsets[chunks.count];
}

template <class I>
void encode_typed(const I* idx, int64_t n, const uint8_t* lengths, int64_t k, int64_t chunk_size,
                  const int64_t* chunk_offsets, uint8_t* out, int64_t out_size) {
  const std::vector<uint64_t> table = encode_table<I>(lengths, k);
  const detail::Chunks chunks(n, chunk_size);
  detail::check_offsets(chunk_offsets, chunks.count, out_size, "huffman_encode");
  int longest = 1;
  for (int64_t i = 0; i < k; ++i) longest = lengths[i] > longest ? lengths[i] : longest;
  detail::for_chunk_blocks(chunks, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t s = chunks.begin(c), e = chunks.end(c);
      if (encode_chunk_for(longest, idx + s, e - s, table.data(), out + chunk_offsets[c],
                           chunk_offsets[c + 1] - chunk_offsets[c]))
        continue;
      check_symbols(idx, s, e, table.data(), k);
      check(false, "huffman_encode: chunk_offsets do not match the indices (chunk " +
                      std::to_string(c) + " does not fill its bytes exactly)");
    }
  });
}

}  // namespace

int64_t huffman_plan(const void* idx, IndexType itype, int64_t n, const uint8_t* lengths,
                     int64_t k, int64_t chunk_size, int64_t* chunk_offsets) {
  if (itype == IndexType::U8)
    return plan_typed(static_cast<const uint8_t*>(idx), n, lengths, k, chunk_size, chunk_offsets);
  return plan_typed(static_cast<const uint16_t*>(idx), n, lengths, k, chunk_size, chunk_offsets);
}

void huffman_encode(const void* idx, IndexType itype, int64_t n, const uint8_t* lengths,
                    int64_t k, int64_t chunk_size, const int64_t* chunk_offsets, uint8_t* out,
                    int64_t out_size) {
  if (itype == IndexType::U8)
    encode_typed(static_cast<const uint8_t*>(idx), n, lengths, k, chunk_size, chunk_offsets, out,
                 out_size);
  else
    encode_typed(static_cast<const uint16_t*>(idx), n, lengths, k, chunk_size, chunk_offsets,
                 out, out_size);
}

}  // namespace wsc
