// rANS decoding, table-driven: the slot x mod M gives the symbol (a uint8/uint16 table of M
// entries), the symbol its (frequency, cumulative frequency) pair. A chunk's states (1, 2, 4
// or 8, a template parameter) are decoded round-robin, so as many independent dependency
// chains overlap; each chunk is decoded by one thread, groups of chunks run in parallel.
//
// Bounds: the renormalisation reads 1 to 3 bytes with one 4-byte load; the fast loop runs only
// while a whole round of symbols (one per state) cannot read past the chunk's end; the last
// symbols go through a loop that checks every byte. Initial states must lie in [L, 256 L):
// from there every state stays in that range whatever the bytes, so every step is well
// defined and the symbol counts bound every loop.
#include <algorithm>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "chunks.h"
#include "rans_model.h"
#include "wsc/half.h"

namespace wsc {
namespace {

constexpr int kCoarseBits = 12;        // coarse table: 4096 buckets of the slots
constexpr uint64_t kField = (uint64_t(1) << 21) - 1;  // coarse entry: f | cum << 21 | sym << 42

// The model of a checked frequency table: symbol of every slot, (freq, cum) of every symbol.
// Above 2^12 slots the slot table outgrows the L1 cache; when the slots that share a bucket
// with another symbol hold under 2% of the probability (a few frequent symbols, many rare
// ones: the skewed streams that need the precision), a coarse table of 4096 buckets answers
// almost every lookup, and only a mixed bucket consults the slot table. Otherwise, up to
// 2^16 slots, a packed entry per slot gives the state update in one lookup.
template <class Sym>
struct Model {
  int scale;
  uint32_t mask;
  std::vector<Sym> slot_sym;
  std::vector<uint64_t> fc;     // freq | cum << 32
  std::vector<uint64_t> coarse;  // f | cum << 21 | symbol << 42 of a bucket's one symbol, or 0
                                 // (f = 0) for a bucket shared by several; empty: not used
  int coarse_shift = 0;
  // Without the coarse table, up to 2^16 slots: freq | (slot - cum) << 16 of every slot, so
  // the state update needs one lookup (the symbol's, beside it, is off the critical path).
  std::vector<uint32_t> slot_fb;

  Model(const uint32_t* freqs, int64_t k, int scale_bits)
      : scale(scale_bits), mask((uint32_t(1) << scale_bits) - 1) {
    rans_check_freqs(freqs, k, scale_bits);
    slot_sym.resize(size_t(1) << scale_bits);
    fc.resize(size_t(k));
    uint32_t cum = 0;
    for (int64_t s = 0; s < k; ++s) {
      std::fill(slot_sym.begin() + cum, slot_sym.begin() + cum + freqs[s], Sym(s));
      fc[size_t(s)] = uint64_t(freqs[s]) | uint64_t(cum) << 32;
      cum += freqs[s];
    }
    if (scale_bits > kCoarseBits) {
      coarse_shift = scale_bits - kCoarseBits;
      const size_t per = size_t(1) << coarse_shift;
      coarse.resize(size_t(1) << kCoarseBits);
      size_t mixed = 0;
      for (size_t b = 0; b < coarse.size(); ++b) {
        const Sym first = slot_sym[b * per], last = slot_sym[(b + 1) * per - 1];
        coarse[b] = first != last ? 0 : ((fc[first] & kField) | (fc[first] >> 32) << 21 |
                                         uint64_t(first) << 42);
        mixed += first == last ? 0 : per;
      }
      if (mixed * 50 > slot_sym.size()) coarse.clear();
    }
    if (!coarse.empty() || scale_bits > 16 || freqs_max(freqs, k) > 0xffff) return;
    slot_fb.resize(slot_sym.size());
    for (size_t r = 0; r < slot_fb.size(); ++r) {
      const uint64_t e = fc[slot_sym[r]];
      slot_fb[r] = uint32_t(e) | (uint32_t(r) - uint32_t(e >> 32)) << 16;
    }
  }

  static uint32_t freqs_max(const uint32_t* freqs, int64_t k) {
    uint32_t m = 0;
    for (int64_t s = 0; s < k; ++s) m = std::max(m, freqs[s]);
    return m;
  }
};

inline uint32_t load_le32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

[[noreturn]] __attribute__((noinline)) void fail(int64_t chunk, const std::string& what) {
  throw std::invalid_argument("rans_decode: chunk " + std::to_string(chunk) + ": " + what);
}

// Decodes the m symbols of one chunk (bytes p[0..size)) into out[0..m): the symbols
// themselves, or values[symbol] when O is not the symbol type.
enum class Lookup { kSlot, kPacked, kCoarse };

template <Lookup kLookup, int S, class Sym, class O>
inline __attribute__((always_inline)) void decode_chunk_body(const Model<Sym>& md,
                                                             const uint8_t* p, int64_t size,
                                                             int64_t m, O* out, const O* values,
                                                             int64_t chunk) {
  if (size < 4 * S)
    fail(chunk, std::to_string(size) + " bytes cannot hold its " + std::to_string(S) +
                    " initial states (corrupt or truncated data)");
  uint32_t x[S];
  for (int j = 0; j < S; ++j) {
    x[j] = load_le32(p + 4 * j);
    if (x[j] < kRansLow || x[j] >= kRansLow << 8)
      fail(chunk, "initial state " + std::to_string(j) + " = " + std::to_string(x[j]) +
                      " is outside [2^23, 2^31) (corrupt data)");
  }
  const uint8_t* in = p + 4 * S;
  const uint8_t* const end = p + size;
  const Sym* const sym = md.slot_sym.data();
  const uint64_t* const fc = md.fc.data();
  const uint64_t* const coarse = md.coarse.data();
  const uint32_t* const packed = md.slot_fb.data();
  const unsigned sc = unsigned(md.scale), csh = unsigned(md.coarse_shift);
  const uint32_t mask = md.mask;
  auto emit = [&](int64_t i, Sym s) {
    if constexpr (std::is_same_v<O, Sym>) out[i] = s;
    else out[i] = values[s];
  };
  int64_t i = 0;
  // Fast rounds: S symbols read at most 3 S bytes, the last 4-byte load ends 4 bytes further.
  if (m >= S && size >= 4 * S + 3 * S + 4) {
    const uint8_t* const in_last = end - (3 * S + 4);
    O* o = out;
    O* const o_last = out + (m - S);
    while (o <= o_last && in <= in_last) {
#pragma GCC unroll 8
      for (int j = 0; j < S; ++j) {
        const uint32_t xj = x[j];
        const uint32_t slot = xj & mask;
        Sym s;
        uint32_t x1;
        if constexpr (kLookup == Lookup::kPacked) {
          const uint32_t e = packed[slot];
          s = sym[slot];
          x1 = (e & 0xffff) * (xj >> sc) + (e >> 16);
        } else if constexpr (kLookup == Lookup::kCoarse) {
          uint64_t c = coarse[slot >> csh];
          if (__builtin_expect((c & kField) == 0, 0)) {  // a mixed bucket: the slot table
            const uint64_t e = fc[sym[slot]];
            c = (e & kField) | (e >> 32) << 21 | uint64_t(sym[slot]) << 42;
          }
          s = Sym(c >> 42);
          x1 = uint32_t(c & kField) * (xj >> sc) + slot - uint32_t((c >> 21) & kField);
        } else {
          s = sym[slot];
          const uint64_t e = fc[s];
          x1 = uint32_t(e) * (xj >> sc) + slot - uint32_t(e >> 32);
        }
        const unsigned bits = (unsigned(__builtin_clz(x1) - 1) >> 3) * 8;  // x1 >= 1
        x[j] = (x1 << bits) | (load_le32(in) & ~(~uint32_t(0) << bits));
        in += bits >> 3;
        if constexpr (std::is_same_v<O, Sym>) o[j] = s;
        else o[j] = values[s];
      }
      o += S;
    }
    i = o - out;
  }
  for (; i < m; ++i) {  // the rest, every byte checked
    const int j = int(i % S);
    const uint32_t slot = x[j] & mask;
    const Sym s = sym[slot];
    const uint64_t e = fc[s];
    const uint32_t x1 = uint32_t(e) * (x[j] >> sc) + slot - uint32_t(e >> 32);
    const unsigned nb = unsigned(__builtin_clz(x1) - 1) >> 3;
    if (end - in < int64_t(nb))
      fail(chunk, "its symbols need more bytes than it has (corrupt or truncated data)");
    uint32_t low = 0;
    for (unsigned b = 0; b < nb; ++b) low |= uint32_t(in[b]) << (8 * b);
    in += nb;
    x[j] = (x1 << (8 * nb)) | low;
    emit(i, s);
  }
  if (in != end)
    fail(chunk, std::to_string(end - in) + " byte(s) left after its symbols (corrupt data or "
                                           "offsets)");
  for (int j = 0; j < S; ++j)
    if (x[j] != kRansLow)
      fail(chunk, "final state " + std::to_string(j) + " = " + std::to_string(x[j]) +
                      " is not 2^23 (corrupt data)");
}

// The body compiled twice: for any x86-64, and with BMI2 + LZCNT (shifts without the CL
// register, a one-cycle leading-zero count), picked at run time.
template <int S, class Sym, class O>
void decode_chunk_generic(const Model<Sym>& md, const uint8_t* p, int64_t size, int64_t m,
                          O* out, const O* values, int64_t chunk) {
  if (!md.coarse.empty())
    return decode_chunk_body<Lookup::kCoarse, S>(md, p, size, m, out, values, chunk);
  if (!md.slot_fb.empty())
    return decode_chunk_body<Lookup::kPacked, S>(md, p, size, m, out, values, chunk);
  decode_chunk_body<Lookup::kSlot, S>(md, p, size, m, out, values, chunk);
}

#if defined(__x86_64__) && defined(__GNUC__)
template <int S, class Sym, class O>
__attribute__((target("bmi2,lzcnt"))) void decode_chunk_bmi2(const Model<Sym>& md,
                                                             const uint8_t* p, int64_t size,
                                                             int64_t m, O* out, const O* values,
                                                             int64_t chunk) {
  if (!md.coarse.empty())
    return decode_chunk_body<Lookup::kCoarse, S>(md, p, size, m, out, values, chunk);
  if (!md.slot_fb.empty())
    return decode_chunk_body<Lookup::kPacked, S>(md, p, size, m, out, values, chunk);
  decode_chunk_body<Lookup::kSlot, S>(md, p, size, m, out, values, chunk);
}

bool has_bmi2() {
  static const bool yes = __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("abm");
  return yes;
}
#endif

template <int S, class Sym, class O>
void decode_chunk(const Model<Sym>& md, const uint8_t* p, int64_t size, int64_t m, O* out,
                  const O* values, int64_t chunk) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (has_bmi2()) return decode_chunk_bmi2<S>(md, p, size, m, out, values, chunk);
#endif
  decode_chunk_generic<S>(md, p, size, m, out, values, chunk);
}

template <int S, class Sym, class O>
void decode_chunks(const Model<Sym>& md, const uint8_t* data, const int64_t* offsets,
                   const detail::Chunks& chunks, O* out, const O* values) {
  detail::for_chunk_blocks(chunks, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c)
      decode_chunk<S>(md, data + offsets[c], offsets[c + 1] - offsets[c],
                      chunks.end(c) - chunks.begin(c), out + chunks.begin(c), values, c);
  });
}

template <class Sym, class O>
void decode_all(const Model<Sym>& md, int states, const uint8_t* data, const int64_t* offsets,
                const detail::Chunks& chunks, O* out, const O* values) {
  detail::with_states(states, [&](auto st) {
    decode_chunks<decltype(st)::value>(md, data, offsets, chunks, out, values);
  });
}

detail::Chunks checked_chunks(int64_t size, const int64_t* chunk_offsets, int64_t n_chunks,
                              int64_t n, int64_t chunk_size, const char* who) {
  check(size >= 0, std::string(who) + ": size must be >= 0");
  const detail::Chunks chunks(n, chunk_size, who);
  check(n_chunks == chunks.count,
        std::string(who) + ": " + std::to_string(n) + " symbols in chunks of " +
            std::to_string(chunk_size) + " make " + std::to_string(chunks.count) +
            " chunks, but n_chunks is " + std::to_string(n_chunks));
  detail::check_offsets(chunk_offsets, n_chunks, size, who);
  return chunks;
}

template <class Sym, class F>
void decode_gather_typed(const uint8_t* data, const int64_t* offsets, const detail::Chunks& chunks,
                         const uint32_t* freqs, int64_t k, int scale_bits, int states,
                         const float* codebook, int64_t m, F* out) {
  const Model<Sym> md(freqs, k, scale_bits);
  // Symbols that can be decoded are those with a frequency; any of them >= m is an error,
  // decided before decoding. Others get a value too, so every lookup is in bounds.
  for (int64_t s = m; s < k; ++s)
    check(freqs[s] == 0, "rans_decode_gather: symbol " + std::to_string(s) +
                             " has a frequency but the codebook holds only " +
                             std::to_string(m) + " values");
  std::vector<F> values = codebook_as<F>(codebook, std::min(m, k));
  values.resize(size_t(k), values.back());
  decode_all(md, states, data, offsets, chunks, out, static_cast<const F*>(values.data()));
}

template <class F>
void decode_gather_out(const uint8_t* data, const int64_t* offsets, const detail::Chunks& chunks,
                       const uint32_t* freqs, int64_t k, int scale_bits, int states,
                       const float* codebook, int64_t m, void* out) {
  if (k <= 256)
    decode_gather_typed<uint8_t>(data, offsets, chunks, freqs, k, scale_bits, states, codebook,
                                 m, static_cast<F*>(out));
  else
    decode_gather_typed<uint16_t>(data, offsets, chunks, freqs, k, scale_bits, states, codebook,
                                  m, static_cast<F*>(out));
}

}  // namespace

void rans_decode(const uint8_t* data, int64_t size, const int64_t* chunk_offsets,
                 int64_t n_chunks, const uint32_t* freqs, int64_t k, int scale_bits, int states,
                 int64_t n, int64_t chunk_size, void* idx, IndexType itype) {
  check(itype == IndexType::U16 || k <= 256, "rans_decode: uint8 output needs k <= 256");
  rans_check_states(states);
  const detail::Chunks chunks =
      checked_chunks(size, chunk_offsets, n_chunks, n, chunk_size, "rans_decode");
  if (itype == IndexType::U8) {
    const Model<uint8_t> md(freqs, k, scale_bits);
    decode_all(md, states, data, chunk_offsets, chunks, static_cast<uint8_t*>(idx),
               static_cast<const uint8_t*>(nullptr));
  } else {
    const Model<uint16_t> md(freqs, k, scale_bits);
    decode_all(md, states, data, chunk_offsets, chunks, static_cast<uint16_t*>(idx),
               static_cast<const uint16_t*>(nullptr));
  }
}

void rans_decode_gather(const uint8_t* data, int64_t size, const int64_t* chunk_offsets,
                        int64_t n_chunks, const uint32_t* freqs, int64_t k, int scale_bits,
                        int states, int64_t n, int64_t chunk_size, const float* codebook,
                        int64_t m, void* out, DType out_dtype) {
  check(m >= 1 && m <= kMaxBins, "rans_decode_gather: codebook size must be in [1, 65536]");
  rans_check_states(states);
  const detail::Chunks chunks =
      checked_chunks(size, chunk_offsets, n_chunks, n, chunk_size, "rans_decode_gather");
  switch (out_dtype) {
    case DType::F32:
      return decode_gather_out<float>(data, chunk_offsets, chunks, freqs, k, scale_bits,
                                      states, codebook, m, out);
    case DType::F16:
      return decode_gather_out<F16>(data, chunk_offsets, chunks, freqs, k, scale_bits,
                                    states, codebook, m, out);
    case DType::BF16:
      return decode_gather_out<BF16>(data, chunk_offsets, chunks, freqs, k, scale_bits,
                                     states, codebook, m, out);
  }
}

}  // namespace wsc
