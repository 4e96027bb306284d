// Huffman encoding: per-chunk sizes first (so every chunk's byte offset is known), then every
// chunk written independently, in parallel, with a 64-bit bit accumulator.
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "huffman_code.h"
#include "chunks.h"
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

// Codes of two symbols at once for small alphabets (k <= 2^kPairBits): the entry of
// (a << sh) | b is (code_a << len_b | code_b) << 8 | (len_a + len_b), or 0 when a or b has no
// code. One lookup and one shift per pair instead of two and three.
constexpr unsigned kPairBits = 6;

struct Pairs {
  unsigned sh = 0;             // bits per symbol in the pair index; 0: no pair table
  std::vector<uint64_t> table;

  Pairs(const std::vector<uint64_t>& single, int64_t k, int longest) {
    while ((int64_t(1) << sh) < k) ++sh;
    if (sh > kPairBits || longest > 28) {
      sh = 0;
      return;
    }
    table.assign(size_t(1) << (2 * sh), 0);
    for (uint64_t x = 0; x < (uint64_t(1) << sh); ++x)
      for (uint64_t y = 0; y < (uint64_t(1) << sh); ++y) {
        const uint64_t ex = single[x], ey = single[y];
        if (ex == 0 || ey == 0) continue;
        const uint64_t ly = ey & 0xff;
        table[(x << sh) | y] = ((ex >> 8) << ly | (ey >> 8)) << 8 | ((ex & 0xff) + ly);
      }
  }
};

// Writes idx[0..m) into out[0..cap); returns false when the bits do not fill exactly cap
// bytes (never writes past cap) or a symbol has no code. Symbols go in groups of P: the
// codes of each pair are joined (through the pair table when kPaired), the pairs collected in
// a group word with one shift each, and when the group fits the accumulator it enters with
// one more shift and the whole bytes leave in one 8-byte store (while that store stays
// inside the chunk); a group that does not fit, and the last symbols, leave byte by byte.
// P == 0 (codes longer than 28 bits): everything byte by byte. A table entry is 0 exactly
// when a symbol has no code, so the top bit of (entry - 1) flags one.
template <int P, bool kPaired, class I>
bool encode_chunk(const I* idx, int64_t m, const uint64_t* table, const Pairs& pairs,
                  uint8_t* out, int64_t cap) {
  uint64_t acc = 0;      // pending bits, the newest in the low end
  unsigned pending = 0;  // < 8 between groups
  int64_t pos = 0, j = 0;
  uint64_t empty = 0, seen = 0;
  const unsigned sh = pairs.sh;
  const uint64_t* pair = pairs.table.data();
  auto put_bytes = [&](uint64_t e) {  // append one entry, then its whole bytes one by one
    acc = (acc << (e & 0xff)) | (e >> 8);
    pending += unsigned(e & 0xff);
    for (; pending >= 8; pending -= 8) {
      if (pos >= cap) return false;
      out[pos++] = uint8_t(acc >> (pending - 8));
    }
    return true;
  };
  if (P > 0) {
    for (; j + P <= m && pos + 8 <= cap; j += P) {
      uint64_t group = 0;  // the group's codes; all of them while bits <= 64
      unsigned bits = 0;
#pragma GCC unroll 8
      for (int u = 0; u < P; u += 2) {
        uint64_t e;
        if (kPaired) {
          const uint64_t a = idx[j + u], b = idx[j + u + 1];
          seen |= a | b;  // a value >= 2^sh would alias another pair: flagged below
          e = pair[((a << sh) | b) & ((uint64_t(1) << (2 * sh)) - 1)];
        } else {
          const uint64_t e0 = table[idx[j + u]], e1 = table[idx[j + u + 1]];
          const uint64_t l1 = e1 & 0xff;
          e = (e0 == 0 || e1 == 0) ? 0 : ((e0 >> 8) << l1 | (e1 >> 8)) << 8 | ((e0 & 0xff) + l1);
        }
        empty |= e - 1;
        group = (group << (e & 0xff)) | (e >> 8);
        bits += unsigned(e & 0xff);
      }
      if (__builtin_expect(pending + bits <= 63 && bits > 0, 1)) {
        acc = (acc << bits) | group;
        pending += bits;
        store_be64(out + pos, acc << (64 - pending));
        pos += pending >> 3;
        pending &= 7;
      } else {  // too many bits for the accumulator (rare): again, one symbol at a time
        for (int u = 0; u < P; ++u)
          if (!put_bytes(table[idx[j + u]])) return false;
      }
    }
  }
  for (; j < m; ++j) {
    const uint64_t e = table[idx[j]];
    empty |= e - 1;
    if (!put_bytes(e)) return false;
  }
  if (pending > 0) {  // the last byte is padded with zero bits
    if (pos >= cap) return false;
    out[pos++] = uint8_t(acc << (8 - pending));
  }
  return pos == cap && (empty >> 63) == 0 && (seen >> sh) == 0;
}

// encode_chunk with a group size P for the chunk's mean code length (cap * 8 / m bits), so
// that a group fits the accumulator most of the time: P * mean <= 48.
template <class I>
bool encode_chunk_for(int longest, const I* idx, int64_t m, const uint64_t* table,
                      const Pairs& pairs, uint8_t* out, int64_t cap) {
  const int64_t mean = m > 0 ? (cap * 8 + m - 1) / m : 1;
  const int p =
      longest > 28 ? 0 : int(std::max<int64_t>(2, std::min<int64_t>(16, 48 / mean / 2 * 2)));
  if (pairs.sh != 0) {
    switch (p) {
      case 16: case 14: return encode_chunk<14, true>(idx, m, table, pairs, out, cap);
      case 12: case 10: return encode_chunk<10, true>(idx, m, table, pairs, out, cap);
      case 8: return encode_chunk<8, true>(idx, m, table, pairs, out, cap);
      case 6: return encode_chunk<6, true>(idx, m, table, pairs, out, cap);
      case 4: return encode_chunk<4, true>(idx, m, table, pairs, out, cap);
      default: return encode_chunk<2, true>(idx, m, table, pairs, out, cap);
    }
  }
  switch (p) {
    case 16: case 14: return encode_chunk<14, false>(idx, m, table, pairs, out, cap);
    case 12: case 10: return encode_chunk<10, false>(idx, m, table, pairs, out, cap);
    case 8: return encode_chunk<8, false>(idx, m, table, pairs, out, cap);
    case 6: return encode_chunk<6, false>(idx, m, table, pairs, out, cap);
    case 4: return encode_chunk<4, false>(idx, m, table, pairs, out, cap);
    case 2: return encode_chunk<2, false>(idx, m, table, pairs, out, cap);
    default: return encode_chunk<0, false>(idx, m, table, pairs, out, cap);
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
  const Pairs pairs(table, k, longest);
  detail::for_chunk_blocks(chunks, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t s = chunks.begin(c), e = chunks.end(c);
      if (encode_chunk_for(longest, idx + s, e - s, table.data(), pairs, out + chunk_offsets[c],
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
