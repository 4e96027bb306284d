// Chunked static-model rANS coding of index streams.
//
// Model: frequencies f[0..k) with sum exactly M = 2^scale_bits (1 <= scale_bits <= 20); a
// symbol with f = 0 cannot be coded. cum[s] = f[0] + ... + f[s-1]; slot r in [0, M) belongs
// to the symbol s with cum[s] <= r < cum[s] + f[s].
//
// Coder: 32-bit states x in [L, 256 L) with L = 2^23, byte-wise renormalisation. Decoding a
// symbol: r = x mod M, s = symbol of slot r, x = f[s] * (x >> scale_bits) + r - cum[s]; then
// the fewest bytes b (0 to 3) with x * 256^b >= L are read, and x = x * 256^b + (those b
// bytes as a little-endian number). Encoding is the exact inverse, run backwards.
//
// Stream: the n symbols are cut into chunks of chunk_size symbols (the last one shorter);
// chunk c occupies bytes [chunk_offsets[c], chunk_offsets[c + 1]) of the payload and is coded
// on its own with kRansStates interleaved states: symbol i of the chunk (counted from the
// chunk's start) belongs to state i mod kRansStates. A chunk's bytes are the decoder's initial
// states (kRansStates little-endian uint32, state 0 first), then the renormalisation bytes in
// the order the decoder reads them. The encoder starts every state at L, so a decoder that
// has read all symbols must find every state back at L and every byte of the chunk used.
// Chunks are independent: one thread per group of chunks here, one GPU thread per chunk later.
//
// Frequency table as stored (rans_pack_freqs): a bit string, most significant bit first: 5
// bits scale_bits, 4 bits r, then per symbol in order the exp-Golomb code of order r of f[s]
// (gamma code of (f >> r) + 1, then the r low bits of f); after a zero, the gamma code of the
// length of the run of zero frequencies that starts there (>= 1, including that one), and
// the next code is the symbol after the run. Zero padding to a whole byte.
#pragma once
#include <cstdint>

#include "wsc/common.h"

namespace wsc {

constexpr int kRansMinScale = 1;
constexpr int kRansMaxScale = 20;
constexpr int kRansStates = 8;
constexpr uint32_t kRansLow = uint32_t(1) << 23;

// Frequencies for counts[0..k) summing to 2^scale_bits, written to freqs[0..k): 0 exactly
// for count 0, >= 1 for every used symbol, and the total cost sum(counts * log2(M / f)) made
// small: the rounded proportional share max(1, round(c * M / n)), then the excess or deficit
// removed one unit at a time where it costs least (ties: the smallest symbol), exactly as
// wsc.reference.rans_quantize_freqs. With no count > 0, symbol 0 counts as used once.
// Requires 1 <= k <= 65536, counts >= 0 and at most 2^scale_bits used symbols.
void rans_quantize_freqs(const int64_t* counts, int64_t k, int scale_bits, uint32_t* freqs);

// Scale bits for counts[0..k): the smallest in [max(1, ceil(log2(used))), cap] whose coded
// size (quantised payload plus packed table, in 32.32 fixed-point bits) is within 0.01% of
// the best of that range; cap is 16, or 20 when some precision above 16 bits codes more than
// 0.1% smaller than the best up to 16 (or when more than 2^16 symbols are used).
int rans_choose_scale(const int64_t* counts, int64_t k);

// Throws std::invalid_argument unless scale_bits is in [1, 20] and freqs[0..k) sum to
// 2^scale_bits.
void rans_check_freqs(const uint32_t* freqs, int64_t k, int scale_bits);

// Size in bytes of the packed frequency table (checks the table first).
int64_t rans_packed_size(const uint32_t* freqs, int64_t k, int scale_bits);
// Packs the table into out[0..size) (size from rans_packed_size; throws if it differs).
void rans_pack_freqs(const uint32_t* freqs, int64_t k, int scale_bits, uint8_t* out,
                     int64_t size);
// Unpacks a table of k symbols from data[0..size) into freqs[0..k); returns scale_bits. Throws
// on any inconsistency: bad header, codes running past the data or past k symbols, a
// frequency above 2^scale_bits, a sum other than 2^scale_bits, non-zero padding, bytes left.
int rans_unpack_freqs(const uint8_t* data, int64_t size, int64_t k, uint32_t* freqs);

// Capacity that rans_encode needs for n symbols in chunks of chunk_size.
int64_t rans_encode_bound(int64_t n, int64_t chunk_size);

// Encodes n indices; fills chunk_offsets[0..n_chunks] (n_chunks = ceil(n / chunk_size)) and
// writes the payload to out[0..size), returning size. out must hold rans_encode_bound(n,
// chunk_size) bytes (they serve as scratch); nothing is written beyond that capacity. Throws
// if an index is >= k or has frequency 0.
int64_t rans_encode(const void* idx, IndexType itype, int64_t n, const uint32_t* freqs,
                    int64_t k, int scale_bits, int64_t chunk_size, int64_t* chunk_offsets,
                    uint8_t* out, int64_t capacity);

// Decodes n symbols into idx (uint8 if itype == U8, which needs k <= 256; uint16 otherwise).
// Throws std::invalid_argument on any inconsistency: a bad frequency table, n_chunks !=
// ceil(n / chunk_size), offsets that do not start at 0, decrease or do not end at size, a
// chunk shorter than its states, an initial state outside [L, 256 L), a chunk whose symbols
// need more bytes than it has or leave bytes unused, a final state other than L. Never reads
// outside data[0..size).
void rans_decode(const uint8_t* data, int64_t size, const int64_t* chunk_offsets,
                 int64_t n_chunks, const uint32_t* freqs, int64_t k, int scale_bits, int64_t n,
                 int64_t chunk_size, void* idx, IndexType itype);

// Decodes like rans_decode and writes codebook[symbol] (codebook of m float32 values,
// converted to out_dtype) straight into out[0..n): no index array is ever materialised.
// Throws on the same inconsistencies as rans_decode, and (before decoding) if a symbol >= m
// has a frequency, since it could be decoded.
void rans_decode_gather(const uint8_t* data, int64_t size, const int64_t* chunk_offsets,
                        int64_t n_chunks, const uint32_t* freqs, int64_t k, int scale_bits,
                        int64_t n, int64_t chunk_size, const float* codebook, int64_t m,
                        void* out, DType out_dtype);

}  // namespace wsc
