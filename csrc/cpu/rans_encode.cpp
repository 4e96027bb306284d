// rANS encoding: every chunk encoded backwards into its own slot of the caller's buffer, in
// parallel, then the chunks moved together. Division by a frequency is a multiplication by a
// 64-bit reciprocal (exact for 32-bit states), the renormalisation branch-free.
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "chunks.h"
#include "rans_model.h"

namespace wsc {
namespace {

constexpr int S = kRansStates;
constexpr int64_t kSlack = 4;  // the 4-byte store of the last bytes may reach 3 bytes lower

// Per index value (every value of the index type, so a lookup never goes out of bounds).
// x' = x + bias + q * cmpl with q = (x * rcp) >> 64 equals (x / f) * M + x % f + cum: for
// f >= 2, rcp = ceil(2^64 / f) gives q = x / f exactly for x < 2^32; for f = 1, rcp =
// 2^64 - 1 gives q = x - 1, and bias = cum + M - 1 makes up for it.
struct EncSym {
  uint64_t rcp;
  uint32_t xmax;   // renormalise while x >= xmax = f << (31 - scale_bits)
  uint32_t bias;
  uint32_t cmpl;   // M - f
  uint32_t valid;  // 0 for a value without a frequency (or >= k)
};

template <class I>
std::vector<EncSym> enc_table(const uint32_t* freqs, int64_t k, int scale_bits) {
  const uint32_t M = uint32_t(1) << scale_bits;
  std::vector<EncSym> t(size_t(1) << (8 * sizeof(I)), EncSym{0, 0xffffffffu, 0, 0, 0});
  uint32_t cum = 0;
  for (int64_t s = 0; s < k && s < int64_t(t.size()); ++s) {
    const uint32_t f = freqs[s];
    if (f != 0) {
      EncSym& e = t[size_t(s)];
      e.xmax = f << (31 - scale_bits);
      e.cmpl = M - f;
      e.valid = 1;
      if (f == 1) {
        e.rcp = ~uint64_t(0);
        e.bias = cum + M - 1;
      } else {
        e.rcp = uint64_t(((unsigned __int128)1 << 64) / f) + 1;  // ceil: f is no power of 2 ...
        if ((uint64_t(f) & (f - 1)) == 0) e.rcp -= 1;           // ... or exact
        e.bias = cum;
      }
    }
    cum += f;
  }
  return t;
}

inline void store_le32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); }

// Encodes one symbol into x, writing its renormalisation bytes below p.
inline void put(uint32_t& x, uint8_t*& p, const EncSym& e) {
  // bytes to emit: how many times x must be shifted right by 8 to drop below xmax (<= 3)
  const uint64_t x64 = x, m = e.xmax;
  const unsigned nb = unsigned(x64 >= m) + unsigned(x64 >= m << 8) + unsigned(x64 >= m << 16);
  store_le32(p - 4, uint32_t(x64 << (32 - 8 * nb)));  // x's low nb bytes end at p, little-endian
  p -= nb;
  x = uint32_t(x64 >> (8 * nb));
  const uint32_t q = uint32_t(((unsigned __int128)x * e.rcp) >> 64);
  x = x + e.bias + q * e.cmpl;
}

// Encodes idx[0..m) into the bytes ending at `end` (at least 3 m + 4 S + kSlack of room
// below it); returns the chunk's size. Sets `bad` when a symbol has no frequency.
template <class I>
int64_t encode_chunk(const I* idx, int64_t m, const EncSym* tab, uint8_t* end, uint32_t& bad) {
  uint32_t x[S];
  for (int j = 0; j < S; ++j) x[j] = kRansLow;
  uint8_t* p = end;
  uint32_t valid = 1;
  const int64_t full = m - m % S;
  for (int64_t i = m - 1; i >= full; --i) {
    const EncSym& e = tab[idx[i]];
    valid &= e.valid;
    put(x[i - full], p, e);
  }
  for (int64_t g = full - S; g >= 0; g -= S) {
#pragma GCC unroll 8
    for (int j = S - 1; j >= 0; --j) {
      const EncSym& e = tab[idx[g + j]];
      valid &= e.valid;
      put(x[j], p, e);
    }
  }
  p -= 4 * S;
  for (int j = 0; j < S; ++j) store_le32(p + 4 * j, x[j]);
  bad |= valid ^ 1;
  return end - p;
}

template <class I>
void check_symbols(const I* idx, int64_t s, int64_t e, const uint32_t* freqs, int64_t k) {
  for (int64_t i = s; i < e; ++i) {
    const int64_t v = idx[i];
    if (v < k && freqs[v] != 0) continue;
    throw std::invalid_argument(
        "rans: indices[" + std::to_string(i) + "] = " + std::to_string(v) +
        (v >= k ? " is >= k = " + std::to_string(k)
                : " has frequency 0 (the symbol's count is 0)"));
  }
}

int64_t slot_size(int64_t m) { return 3 * m + 4 * S + kSlack; }

template <class I>
int64_t encode_typed(const I* idx, const detail::Chunks& chunks, const uint32_t* freqs,
                     int64_t k, int scale_bits, int64_t* offsets, uint8_t* out) {
  const std::vector<EncSym> tab = enc_table<I>(freqs, k, scale_bits);
  const int64_t slot = slot_size(chunks.size);
  std::vector<int64_t> sizes(size_t(chunks.count), 0);
  detail::for_chunk_blocks(chunks, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t s = chunks.begin(c), e = chunks.end(c);
      uint32_t bad = 0;
      sizes[size_t(c)] = encode_chunk(idx + s, e - s, tab.data(), out + (c + 1) * slot, bad);
      if (bad) check_symbols(idx, s, e, freqs, k);
    }
  });
  offsets[0] = 0;
  for (int64_t c = 0; c < chunks.count; ++c) {
    offsets[c + 1] = offsets[c] + sizes[size_t(c)];
    std::memmove(out + offsets[c], out + (c + 1) * slot - sizes[size_t(c)], size_t(sizes[size_t(c)]));
  }
  return offsets[chunks.count];
}

}  // namespace

int64_t rans_encode_bound(int64_t n, int64_t chunk_size) {
  const detail::Chunks chunks(n, chunk_size, "rans_encode");
  return chunks.count * slot_size(chunks.size);
}

int64_t rans_encode(const void* idx, IndexType itype, int64_t n, const uint32_t* freqs,
                    int64_t k, int scale_bits, int64_t chunk_size, int64_t* chunk_offsets,
                    uint8_t* out, int64_t capacity) {
  rans_check_freqs(freqs, k, scale_bits);
  const detail::Chunks chunks(n, chunk_size, "rans_encode");
  check(capacity >= rans_encode_bound(n, chunk_size),
        "rans_encode: capacity " + std::to_string(capacity) + " is below rans_encode_bound = " +
            std::to_string(rans_encode_bound(n, chunk_size)));
  if (itype == IndexType::U8)
    return encode_typed(static_cast<const uint8_t*>(idx), chunks, freqs, k, scale_bits,
                        chunk_offsets, out);
  return encode_typed(static_cast<const uint16_t*>(idx), chunks, freqs, k, scale_bits,
                      chunk_offsets, out);
}

}  // namespace wsc
