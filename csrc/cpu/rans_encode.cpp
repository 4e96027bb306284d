// rANS encoding: every chunk encoded backwards into its own slot of the caller's buffer, in
// parallel, then the chunks moved together. Division by a frequency is a multiplication by a
// 32-bit reciprocal (exact for states below 2^31), the renormalisation branch-free, and the
// 1, 2, 4 or 8 states of the main loop live in registers (compiled twice: any x86-64, and BMI2).
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "chunks.h"
#include "rans_model.h"

namespace wsc {
namespace {

constexpr int64_t kSlack = 4;  // the 4-byte store of the last bytes may reach 3 bytes lower

// Per index value (every value of the index type, so a lookup never goes out of bounds).
// x' = x + cum + q * (M - f) with q = (x * rcp) >> shift equals (x / f) * M + x % f + cum:
// rcp = ceil(2^(31 + l) / f) < 2^32 and shift = 31 + l, l = ceil(log2 f), give q = x / f
// exactly for x < 2^31 (Granlund-Montgomery; f = 1 gives rcp = 2^31, q = x). A value without
// a frequency gets rcp = 0 and xmax = 2^32 - 1: it leaves the state alone and emits nothing
// (the chunk is checked before it is encoded). 32 bytes, so an entry is one shift away.
struct alignas(32) EncSym {
  uint64_t xmax;   // renormalise while x >= xmax = f << (31 - scale_bits)
  uint64_t xmax8;  // xmax << 8
  uint32_t rcp;
  uint32_t bias;   // cum
  uint32_t cmpl;   // M - f
  uint32_t shift;
};

template <class I>
std::vector<EncSym> enc_table(const uint32_t* freqs, int64_t k, int scale_bits) {
  const uint32_t M = uint32_t(1) << scale_bits;
  std::vector<EncSym> t(size_t(1) << (8 * sizeof(I)), EncSym{0xffffffffu, ~uint64_t(0), 0, 0, 0, 0});
  uint32_t cum = 0;
  for (int64_t s = 0; s < k && s < int64_t(t.size()); ++s) {
    const uint32_t f = freqs[s];
    if (f != 0) {
      int l = 0;
      while ((uint64_t(1) << l) < f) ++l;
      const uint64_t rcp = ((uint64_t(1) << (31 + l)) + f - 1) / f;
      const uint64_t xmax = uint64_t(f) << (31 - scale_bits);
      t[size_t(s)] = EncSym{xmax, xmax << 8, uint32_t(rcp), cum, M - f, uint32_t(31 + l)};
    }
    cum += f;
  }
  return t;
}

inline void store_le32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); }

// Encodes one symbol into x, writing its renormalisation bytes below p.
inline __attribute__((always_inline)) void put(uint32_t& x, uint8_t*& p, const EncSym& e) {
  // bytes to emit: how many times x must be shifted right by 8 to drop below xmax (<= 3)
  const uint64_t x64 = x;
  const unsigned nb = unsigned(x64 >= e.xmax) + unsigned(x64 >= e.xmax8) + unsigned(x64 >> 8 >= e.xmax8);
  store_le32(p - 4, uint32_t(x64 << (32 - 8 * nb)));  // x's low nb bytes end at p, little-endian
  p -= nb;
  const uint32_t y = uint32_t(x64 >> (8 * nb));
  const uint32_t q = uint32_t((uint64_t(y) * e.rcp) >> e.shift);
  x = y + e.bias + q * e.cmpl;
}

// Encodes the first `groups` * S symbols of idx (in reverse) into the S states, bytes ending
// at p; returns the new p. The states are copied into locals indexed by constants only, so
// they stay in registers.
template <int S, class I>
inline __attribute__((always_inline)) uint8_t* encode_groups_body(const I* idx, int64_t groups,
                                                                  const EncSym* tab,
                                                                  uint32_t* xs, uint8_t* p) {
  uint32_t x[S];
#pragma GCC unroll 8
  for (int j = 0; j < S; ++j) x[j] = xs[j];
  for (int64_t g = groups - 1; g >= 0; --g) {
    const I* in = idx + g * S;
#pragma GCC unroll 8
    for (int j = S - 1; j >= 0; --j) put(x[j], p, tab[in[j]]);
  }
#pragma GCC unroll 8
  for (int j = 0; j < S; ++j) xs[j] = x[j];
  return p;
}

template <int S, class I>
uint8_t* encode_groups_generic(const I* idx, int64_t groups, const EncSym* tab, uint32_t* xs,
                               uint8_t* p) {
  return encode_groups_body<S>(idx, groups, tab, xs, p);
}

#if defined(__x86_64__) && defined(__GNUC__)
template <int S, class I>
__attribute__((target("bmi2"))) uint8_t* encode_groups_bmi2(const I* idx, int64_t groups,
                                                            const EncSym* tab, uint32_t* xs,
                                                            uint8_t* p) {
  return encode_groups_body<S>(idx, groups, tab, xs, p);
}

bool has_bmi2() {
  static const bool yes = __builtin_cpu_supports("bmi2");
  return yes;
}
#endif

template <int S, class I>
uint8_t* encode_groups(const I* idx, int64_t groups, const EncSym* tab, uint32_t* xs, uint8_t* p) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (has_bmi2()) return encode_groups_bmi2<S>(idx, groups, tab, xs, p);
#endif
  return encode_groups_generic<S>(idx, groups, tab, xs, p);
}

// Encodes idx[0..m) with S states into the bytes ending at `end` (at least 3 m + 4 S + kSlack
// of room below it); returns the chunk's size.
template <int S, class I>
int64_t encode_chunk(const I* idx, int64_t m, const EncSym* tab, uint8_t* end) {
  uint32_t x[S];
  for (int j = 0; j < S; ++j) x[j] = kRansLow;
  uint8_t* p = end;
  const int64_t full = m - m % S;
  for (int64_t i = m - 1; i >= full; --i) put(x[i - full], p, tab[idx[i]]);
  p = encode_groups<S>(idx, full / S, tab, x, p);
  p -= 4 * S;
  for (int j = 0; j < S; ++j) store_le32(p + 4 * j, x[j]);
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

int64_t slot_size(int64_t m) { return 3 * m + 4 * kRansStates + kSlack; }

template <class I>
int64_t encode_typed(const I* idx, const detail::Chunks& chunks, const uint32_t* freqs,
                     int64_t k, int scale_bits, int states, int64_t* offsets, uint8_t* out) {
  const std::vector<EncSym> tab = enc_table<I>(freqs, k, scale_bits);
  const int64_t slot = slot_size(chunks.size);
  std::vector<int64_t> sizes(size_t(chunks.count), 0);
  std::vector<uint8_t> valid(tab.size(), 0);
  for (int64_t v = 0; v < k && v < int64_t(valid.size()); ++v) valid[size_t(v)] = freqs[v] != 0;
  detail::for_chunk_blocks(chunks, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t s = chunks.begin(c), e = chunks.end(c);
      unsigned ok = 1;
      for (int64_t i = s; i < e; ++i) ok &= valid[idx[i]];
      if (!ok) check_symbols(idx, s, e, freqs, k);
      sizes[size_t(c)] = detail::with_states(states, [&](auto st) {
        return encode_chunk<decltype(st)::value>(idx + s, e - s, tab.data(), out + (c + 1) * slot);
      });
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

void rans_check_states(int states) {
  check(states == 1 || states == 2 || states == 4 || states == 8,
        "rans: states must be 1, 2, 4 or 8, got " + std::to_string(states));
}

int64_t rans_encode(const void* idx, IndexType itype, int64_t n, const uint32_t* freqs,
                    int64_t k, int scale_bits, int states, int64_t chunk_size,
                    int64_t* chunk_offsets, uint8_t* out, int64_t capacity) {
  rans_check_freqs(freqs, k, scale_bits);
  rans_check_states(states);
  const detail::Chunks chunks(n, chunk_size, "rans_encode");
  check(capacity >= rans_encode_bound(n, chunk_size),
        "rans_encode: capacity " + std::to_string(capacity) + " is below rans_encode_bound = " +
            std::to_string(rans_encode_bound(n, chunk_size)));
  if (itype == IndexType::U8)
    return encode_typed(static_cast<const uint8_t*>(idx), chunks, freqs, k, scale_bits, states,
                        chunk_offsets, out);
  return encode_typed(static_cast<const uint16_t*>(idx), chunks, freqs, k, scale_bits, states,
                      chunk_offsets, out);
}

}  // namespace wsc
