// Huffman decoding, table-driven. A table indexed by the next kTableBits bits gives up to four
// (uint8 output) or two (uint16) whole codes that fit in those bits: their symbols, how many,
// and how many bits they take. Codes longer than the table take a slow path on the canonical
// code's per-length limits. One 64-bit refill gives at least 57 bits, enough for 57 /
// kTableBits lookups. Each thread decodes four chunks in lock-step, so four independent
// dependency chains (lookup -> shift -> next lookup) overlap.
//
// Bounds: a refill in the fast loop reads 8 bytes inside its chunk, and the fast loop runs
// only while every lookup's 4-byte store lands inside the chunk's output; everything else
// (long codes, the last symbols of a chunk) reads through load_safe, which reads zeros past
// the chunk's end. Symbol counts bound every loop, so corrupt input ends in an exception.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <string>
#include <vector>

#include "chunks.h"
#include "huffman_code.h"
#include "wsc/half.h"

namespace wsc {
namespace {

constexpr int kTableBits = 11;
constexpr int kPerRefill = 57 / kTableBits;  // table lookups per 64-bit refill

struct Decoder {
  detail::CanonicalCode code;
  int tb = kTableBits;
  // One code per entry: symbol | length << 16. Length 0: the bits start a code longer than
  // tb bits, the shortest of which has length `shortest` (bits 24..31; 0: no code at all).
  std::vector<uint32_t> single;
  // Whole codes within the next tb bits, as many as the 4-byte symbol field holds:
  // bits | count << 8 | symbols << 16 (the first symbol in the lowest byte(s)).
  // bits 0: the first code is longer than tb bits, and the count field holds `shortest`.
  std::vector<uint64_t> multi;
  uint64_t limit[kHuffmanMaxLen + 1] = {};  // codes of length <= L are < limit[L] (32-bit)

  Decoder(const uint8_t* lengths, int64_t k, int symbol_bytes) : code(lengths, k) {
    if (code.max_len == 0) return;
    const uint32_t size = uint32_t(1) << tb;
    single.assign(size, 0);
    for (int64_t i = 0; i < k; ++i) {
      const int len = lengths[i];
      if (len == 0) continue;
      if (len > tb) {  // keep the shortest length under each tb-bit prefix
        uint32_t& e = single[code.codes[size_t(i)] >> (len - tb)];
        if (e == 0 || uint32_t(len) < e >> 24) e = uint32_t(len) << 24;
        continue;
      }
      const uint32_t start = code.codes[size_t(i)] << (tb - len);
      for (uint32_t j = 0; j < uint32_t(1) << (tb - len); ++j)
        single[start + j] = uint32_t(i) | uint32_t(len) << 16;
    }
    const int max_syms = 4 / symbol_bytes;
    multi.assign(size, 0);
    for (uint32_t v = 0; v < size; ++v) {
      uint64_t bits = 0, syms = 0;
      int count = 0;
      while (count < max_syms) {
        const uint32_t e = single[(v << bits) & (size - 1)];
        const uint32_t len = (e >> 16) & 0xff;
        if (len == 0 || bits + len > uint64_t(tb)) break;
        syms |= uint64_t(e & 0xffff) << (8 * symbol_bytes * count);
        bits += len;
        ++count;
      }
      multi[v] = bits | uint64_t(count > 0 ? count : single[v] >> 24) << 8 | syms << 16;
    }
    for (int len = 1; len <= kHuffmanMaxLen; ++len)
      limit[len] = (code.first[len] + code.count[len]) << (kHuffmanMaxLen - len);
  }
};

// One chunk being decoded.
struct Stream {
  const uint8_t* p;  // the chunk's bytes
  int64_t size;      // how many
  int64_t chunk;     // its number, for messages
  uint64_t pos;      // bits consumed
};

inline uint64_t load_be64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return __builtin_bswap64(v);
}

// The 64 bits at byte `at` of the chunk, most significant first; zeros past its end.
inline uint64_t load_safe(const Stream& s, uint64_t at) {
  if (at + 8 <= uint64_t(s.size)) return load_be64(s.p + at);
  uint64_t v = 0;
  for (uint64_t i = 0; i < 8; ++i) v = v << 8 | (at + i < uint64_t(s.size) ? s.p[at + i] : 0);
  return v;
}

// The bits from bit s.pos on, left-aligned: at least 57 of them are the stream's.
inline uint64_t peek_safe(const Stream& s) { return load_safe(s, s.pos >> 3) << (s.pos & 7); }

[[noreturn]] void throw_no_code(const Stream& s) {
  throw std::invalid_argument("huffman_decode: chunk " + std::to_string(s.chunk) +
                              ": the bits at offset " + std::to_string(s.pos) +
                              " are not a code (corrupt data or wrong code lengths)");
}

// Decodes the symbol at s.pos whose table entry is empty: a code longer than tb bits, the
// shortest with these first tb bits having length `shortest` (0: none). Canonical codes of
// length <= L fill [0, limit[L]) left-aligned, so the code's length is the first L with
// bits < limit[L]; no shorter length can match.
__attribute__((noinline)) uint32_t decode_long(const Decoder& d, Stream& s, unsigned shortest) {
  const uint64_t bits = peek_safe(s) >> 32;
  for (int len = int(shortest); shortest != 0 && len <= d.code.max_len; ++len) {
    if (bits >= d.limit[len]) continue;
    const uint64_t rank = (bits >> (kHuffmanMaxLen - len)) - d.code.first[len];
    s.pos += uint64_t(len);
    return d.code.sorted[d.code.offset[len] + rank];
  }
  throw_no_code(s);
}

// Decodes the S streams into out[s] in lock-step, advancing out[s], as long as every refill
// stays inside its chunk and every store inside out[s]..end[s]. The per-stream state lives in
// local arrays over fully unrolled loops, so it stays in registers.
template <int S, class O>
void decode_lockstep(const Decoder& d, Stream* st, O** out_io, O* const* end) {
  constexpr int64_t kStore = 4 / sizeof(O);  // symbols one lookup stores
  const int shift = 64 - d.tb;
  const uint64_t* table = d.multi.data();
  uint64_t pos[S], last_refill[S];
  O* out[S];
  const uint8_t* p[S];
  bool ok = true;
#pragma GCC unroll 4
  for (int s = 0; s < S; ++s) {
    pos[s] = st[s].pos;
    out[s] = out_io[s];
    p[s] = st[s].p;
    last_refill[s] = st[s].size >= 8 ? uint64_t(st[s].size - 8) * 8 : 0;
    ok &= st[s].size >= 8 && pos[s] <= last_refill[s] && end[s] - out[s] >= kPerRefill * kStore;
  }
  while (ok) {
    uint64_t buf[S];
#pragma GCC unroll 4
    for (int s = 0; s < S; ++s) buf[s] = load_be64(p[s] + (pos[s] >> 3)) << (pos[s] & 7);
#pragma GCC unroll 8
    for (int j = 0; j < kPerRefill; ++j) {
#pragma GCC unroll 4
      for (int s = 0; s < S; ++s) {
        const uint64_t e = table[buf[s] >> shift];
        const unsigned bits = unsigned(e & 0xff);
        if (__builtin_expect(bits == 0, 0)) {
          st[s].pos = pos[s];
          *out[s]++ = O(decode_long(d, st[s], unsigned(e >> 8) & 0xff));
          pos[s] = st[s].pos;
          buf[s] = peek_safe(st[s]);
          continue;
        }
        const uint32_t syms = uint32_t(e >> 16);
        std::memcpy(out[s], &syms, 4);
        out[s] += (e >> 8) & 0xff;
        buf[s] <<= bits;
        pos[s] += bits;
      }
    }
#pragma GCC unroll 4
    for (int s = 0; s < S; ++s)
      ok &= pos[s] <= last_refill[s] && end[s] - out[s] >= kPerRefill * kStore;
  }
#pragma GCC unroll 4
  for (int s = 0; s < S; ++s) {
    st[s].pos = pos[s];
    out_io[s] = out[s];
  }
}

// Decodes out[from..count) one symbol at a time near the chunk's end, then checks that the
// chunk's bytes were used exactly and its padding bits are zero.
template <class O>
void decode_tail(const Decoder& d, Stream& s, O* out, int64_t from, int64_t count) {
  const uint64_t end = uint64_t(s.size) * 8;
  for (int64_t i = from; i < count; ++i) {
    if (s.pos > end) break;
    const uint64_t bits = peek_safe(s);
    const uint32_t e = d.single[bits >> (64 - d.tb)];
    const uint32_t len = (e >> 16) & 0xff;
    if (len == 0) {
      out[i] = O(decode_long(d, s, e >> 24));
    } else {
      out[i] = O(e);
      s.pos += len;
    }
  }
  const std::string where = "huffman_decode: chunk " + std::to_string(s.chunk) + ": ";
  check(s.pos <= end, where + "its symbols run past its " + std::to_string(s.size) +
                          " bytes (corrupt or truncated data)");
  check((s.pos + 7) / 8 == uint64_t(s.size),
        where + "its symbols end in byte " + std::to_string((s.pos + 7) / 8) + " of " +
            std::to_string(s.size) + " (corrupt data or offsets)");
  const unsigned pad = unsigned(end - s.pos);
  check(pad == 0 || (s.p[s.size - 1] & ((1u << pad) - 1)) == 0,
        where + "non-zero padding bits (corrupt data)");
}

// Decodes S chunks starting at chunk c0 into dst (where chunk c0's first symbol goes; the
// others follow contiguously): lock-step as far as all of them allow, then each one alone.
// Returns the payload bits the S chunks hold (their codes, without padding).
template <int S, class O>
int64_t decode_group(const Decoder& d, const uint8_t* data, const int64_t* offsets,
                  const detail::Chunks& chunks, int64_t c0, O* dst) {
  Stream st[S];
  O* out[S];
  O* end[S];
  for (int s = 0; s < S; ++s) {
    const int64_t c = c0 + s;
    st[s] = Stream{data + offsets[c], offsets[c + 1] - offsets[c], c, 0};
    out[s] = dst + (chunks.begin(c) - chunks.begin(c0));
    end[s] = dst + (chunks.end(c) - chunks.begin(c0));
  }
  decode_lockstep<S>(d, st, out, end);
  int64_t bits = 0;
  for (int s = 0; s < S; ++s) {
    decode_lockstep<1>(d, &st[s], &out[s], &end[s]);
    decode_tail(d, st[s], out[s], 0, end[s] - out[s]);
    bits += int64_t(st[s].pos);
  }
  return bits;
}

constexpr int64_t kGroup = 4;

template <class O>
void decode_typed(const Decoder& d, const uint8_t* data, const int64_t* offsets,
                  const detail::Chunks& chunks, O* idx) {
  detail::for_chunk_blocks(
      chunks,
      [&](int64_t c0, int64_t c1) {
        int64_t c = c0;
        for (; c + kGroup <= c1; c += kGroup)
          decode_group<kGroup>(d, data, offsets, chunks, c, idx + chunks.begin(c));
        for (; c < c1; ++c) decode_group<1>(d, data, offsets, chunks, c, idx + chunks.begin(c));
      },
      kGroup);
}

// Decodes each group of chunks into a per-thread buffer of at most kGroup chunks and gathers
// it straight into out: no index array larger than that buffer ever exists. Adds the number
// of symbols >= m (their reads are clamped; the caller raises) and the payload bits.
template <class O, class F>
void decode_gather_typed(const Decoder& d, const uint8_t* data, const int64_t* offsets,
                         const detail::Chunks& chunks, const F* table, int64_t m, F* out,
                         std::atomic<int64_t>& bad, std::atomic<int64_t>& bits) {
  const uint32_t top = uint32_t(m - 1);
  detail::for_chunk_blocks(
      chunks,
      [&](int64_t c0, int64_t c1) {
        std::vector<O> buf(size_t(std::min<int64_t>(kGroup * chunks.size, chunks.n)));
        int64_t nbad = 0, nbits = 0;
        for (int64_t c = c0; c < c1; c += kGroup) {
          const int64_t g = std::min(kGroup, c1 - c);
          if (g == kGroup) nbits += decode_group<kGroup>(d, data, offsets, chunks, c, buf.data());
          else
            for (int64_t j = 0; j < g; ++j)
              nbits += decode_group<1>(d, data, offsets, chunks, c + j,
                                       buf.data() + (chunks.begin(c + j) - chunks.begin(c)));
          const int64_t s = chunks.begin(c), len = chunks.end(c + g - 1) - s;
          for (int64_t i = 0; i < len; ++i) {
            const uint32_t v = buf[size_t(i)];
            nbad += v > top;
            out[s + i] = table[v > top ? top : v];
          }
        }
        bad += nbad;
        bits += nbits;
      },
      kGroup);
}

template <class F>
void decode_gather_out(const Decoder& d, const uint8_t* data, const int64_t* offsets,
                       const detail::Chunks& chunks, int64_t k, const float* codebook, int64_t m,
                       void* out, std::atomic<int64_t>& bad, std::atomic<int64_t>& bits) {
  const std::vector<F> table = codebook_as<F>(codebook, m);
  if (k <= 256)
    decode_gather_typed<uint8_t>(d, data, offsets, chunks, table.data(), m, static_cast<F*>(out),
                                 bad, bits);
  else
    decode_gather_typed<uint16_t>(d, data, offsets, chunks, table.data(), m, static_cast<F*>(out),
                                  bad, bits);
}

// The checks shared by both entry points; returns the chunk layout.
detail::Chunks checked_chunks(int64_t size, const int64_t* chunk_offsets, int64_t n_chunks,
                              int64_t n, int64_t chunk_size, const char* who) {
  check(size >= 0, std::string(who) + ": size must be >= 0");
  const detail::Chunks chunks(n, chunk_size);
  check(n_chunks == chunks.count,
        std::string(who) + ": " + std::to_string(n) + " symbols in chunks of " +
            std::to_string(chunk_size) + " make " + std::to_string(chunks.count) +
            " chunks, but n_chunks is " + std::to_string(n_chunks));
  detail::check_offsets(chunk_offsets, n_chunks, size, who);
  return chunks;
}

}  // namespace

int64_t huffman_decode_gather(const uint8_t* data, int64_t size, const int64_t* chunk_offsets,
                              int64_t n_chunks, const uint8_t* lengths, int64_t k, int64_t n,
                              int64_t chunk_size, const float* codebook, int64_t m, void* out,
                              DType out_dtype) {
  check(m >= 1 && m <= kMaxBins, "huffman_decode_gather: codebook size must be in [1, 65536]");
  const detail::Chunks chunks =
      checked_chunks(size, chunk_offsets, n_chunks, n, chunk_size, "huffman_decode_gather");
  const Decoder d(lengths, k, k <= 256 ? 1 : 2);
  check(n == 0 || d.code.used > 0, "huffman_decode_gather: no symbol has a code, but n > 0");
  std::atomic<int64_t> bad{0}, bits{0};
  switch (out_dtype) {
    case DType::F32:
      decode_gather_out<float>(d, data, chunk_offsets, chunks, k, codebook, m, out, bad, bits);
      break;
    case DType::F16:
      decode_gather_out<F16>(d, data, chunk_offsets, chunks, k, codebook, m, out, bad, bits);
      break;
    case DType::BF16:
      decode_gather_out<BF16>(d, data, chunk_offsets, chunks, k, codebook, m, out, bad, bits);
      break;
  }
  check(bad == 0, "huffman_decode_gather: " + std::to_string(bad.load()) +
                      " decoded index value(s) >= codebook size " + std::to_string(m));
  return bits.load();
}

void huffman_decode(const uint8_t* data, int64_t size, const int64_t* chunk_offsets,
                    int64_t n_chunks, const uint8_t* lengths, int64_t k, int64_t n,
                    int64_t chunk_size, void* idx, IndexType itype) {
  check(itype == IndexType::U16 || k <= 256, "huffman_decode: uint8 output needs k <= 256");
  const detail::Chunks chunks =
      checked_chunks(size, chunk_offsets, n_chunks, n, chunk_size, "huffman_decode");
  const Decoder d(lengths, k, int(index_size(itype)));
  check(n == 0 || d.code.used > 0, "huffman_decode: no symbol has a code, but n > 0");
  if (itype == IndexType::U8)
    decode_typed(d, data, chunk_offsets, chunks, static_cast<uint8_t*>(idx));
  else
    decode_typed(d, data, chunk_offsets, chunks, static_cast<uint16_t*>(idx));
}

}  // namespace wsc
