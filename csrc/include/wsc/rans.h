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
// on its own with S interleaved states (S = 1, 2, 4 or 8, the same for every chunk of a stream:
// eight for speed, fewer where the S flushed states would weigh on a short or low-entropy
// payload): symbol i of the chunk (counted from the chunk's start) belongs to state i mod S.
// A chunk's bytes are the decoder's initial states (S little-endian uint32, state 0 first),
// then the renormalisation bytes in the order the decoder reads them. The encoder starts
// every state at L, so a decoder that has read all symbols must find every state back at L
// and every byte of the chunk used.
// Chunks are independent: one thread per group of chunks here, one GPU thread per chunk later.
//
// Frequency table as stored (rans_pack_freqs), encoding 2 (.wsc version 3): a bit string,
// most significant bit first: 5 bits scale_bits, 1 bit mode, then
// - mode 0 (exact): 4 bits r, then per symbol in order the exp-Golomb code of order r of f[s]
//   (gamma code of (f >> r) + 1, then the r low bits of f); after a zero, the gamma code of
//   the length of the run of zero frequencies that starts there (>= 1, including that one),
//   and the next code is the symbol after the run;
// - mode 1 (levels): 5 bits grid q, 4 bits r, then per symbol in order the exp-Golomb code of
//   order r of the zigzagged step (0, -1, 1, -2, ... as 0, 1, 2, 3, ...) from the level of
//   the previous used symbol (0 before the first) to the symbol's level (0 to 2^scale_bits; 0
//   = unused, followed by a zero run as in mode 0; the previous level stays). Level l stands
//   for the frequency l + l^2 / 2^(q - 4) (l^2 shifted right by q - 4, or left by 4 - q),
//   except for the first symbol of the largest level, whose frequency is 2^scale_bits minus
//   the others' (>= 1). Coarse grids describe the rare symbols beside a dominant one in a few
//   bits each, at a small cost in payload.
// Zero padding to a whole byte. Encoding 1 (.wsc version 2) is mode 0 without the mode bit.
#pragma once
#include <cstdint>

#include "wsc/common.h"

namespace wsc {

constexpr int kRansMinScale = 1;
constexpr int kRansMaxScale = 20;
constexpr int kRansStates = 8;  // the most states per chunk (1, 2, 4 or 8)
constexpr int kRansGrids = 32;  // level grids q of the packed table
constexpr uint32_t kRansLow = uint32_t(1) << 23;

// Frequencies for counts[0..k) summing to 2^scale_bits, written to freqs[0..k): 0 exactly
// for count 0, >= 1 for every used symbol, and the total cost sum(counts * log2(M / f)) made
// small: the rounded proportional share max(1, round(c * M / n)), then the excess or deficit
// removed one unit at a time where it costs least (ties: the smallest symbol), exactly as
// wsc.reference.rans_quantize_freqs. With no count > 0, symbol 0 counts as used once.
// Requires 1 <= k <= 65536, counts >= 0 and at most 2^scale_bits used symbols.
void rans_quantize_freqs(const int64_t* counts, int64_t k, int scale_bits, uint32_t* freqs);

// Frequencies on level grid q (see the packed table) for counts[0..k): the symbol of largest
// count (the first) at what the others leave of M; every other used symbol, in order, at the
// level of least cost c * log2(M / f) + lambda * f + the bits of the order-0 exp-Golomb code
// of the step from the previous used symbol's level (lambda = n * log2(e) / M: what a unit
// taken from the largest frequency costs; all in 32.32 fixed point), among the level below its
// share c * M / n (at least 1), the one above, and the previous level (ties: that order), as
// wsc.reference.rans_quantize_grid. Returns false (freqs unspecified) unless the largest one
// keeps >= 1 and stays the largest, first among equals, so that the table packs in mode 1.
bool rans_quantize_grid(const int64_t* counts, int64_t k, int scale_bits, int grid,
                        uint32_t* freqs);

// The model for counts[0..k): scale bits (returned) and grid (-1: rans_quantize_freqs, else
// rans_quantize_grid on that grid). Per precision s the cheaper of the exact model (its table
// in mode 0) and, where one symbol holds at least half of the counts and 3 or more are used,
// the six grids from q0 = clamp(floor(log2(n)) - s + 1, 0, 26) (the grids whose steps near
// the rare symbols are about their counts' noise; table in mode 1 on that grid), by coded
// size = quantised payload plus table in whole bytes, in 32.32 fixed-point bits (ties: exact,
// then the smallest grid); then the smallest precision in [max(1, ceil(log2(used))), cap]
// within 0.01% of the best of that range; cap is 16, or 20 when some precision above 16 bits
// codes more than 0.1% smaller than the best up to 16 (or when more than 2^16 are used).
int rans_choose_scale(const int64_t* counts, int64_t k, int* grid);

// Throws std::invalid_argument unless scale_bits is in [1, 20] and freqs[0..k) sum to
// 2^scale_bits.
void rans_check_freqs(const uint32_t* freqs, int64_t k, int scale_bits);

// Size in bytes of the packed frequency table (checks the table first): the smallest of mode
// 0 with r in [0, min(15, scale_bits)] and mode 1 on every grid that holds the table, r in
// [0, 15] (ties: mode 0, the smallest grid, the smallest r).
int64_t rans_packed_size(const uint32_t* freqs, int64_t k, int scale_bits);
// Packs the table into out[0..size) (size from rans_packed_size; throws if it differs).
void rans_pack_freqs(const uint32_t* freqs, int64_t k, int scale_bits, uint8_t* out,
                     int64_t size);
// Unpacks a table of k symbols in encoding 1 or 2 from data[0..size) into freqs[0..k);
// returns scale_bits. Throws on any inconsistency: bad header, codes running past the data or
// past k symbols, a frequency or level above 2^scale_bits, a negative level, no used symbol,
// levels that leave the implicit symbol nothing, a sum other than 2^scale_bits, non-zero
// padding, bytes left.
int rans_unpack_freqs(const uint8_t* data, int64_t size, int64_t k, int encoding,
                      uint32_t* freqs);

// Throws std::invalid_argument unless states is 1, 2, 4 or 8.
void rans_check_states(int states);

// Capacity that rans_encode needs for n symbols in chunks of chunk_size (any state count).
int64_t rans_encode_bound(int64_t n, int64_t chunk_size);

// Encodes n indices with `states` states per chunk; fills chunk_offsets[0..n_chunks] (n_chunks
// = ceil(n / chunk_size)) and writes the payload to out[0..size), returning size. out must hold rans_encode_bound(n,
// chunk_size) bytes (they serve as scratch); nothing is written beyond that capacity. Throws
// if an index is >= k or has frequency 0.
int64_t rans_encode(const void* idx, IndexType itype, int64_t n, const uint32_t* freqs,
                    int64_t k, int scale_bits, int states, int64_t chunk_size,
                    int64_t* chunk_offsets, uint8_t* out, int64_t capacity);

// Decodes n symbols coded with `states` states per chunk into idx (uint8 if itype == U8, which
// needs k <= 256; uint16 otherwise). Throws std::invalid_argument on any inconsistency: a bad
// frequency table or state count, n_chunks != ceil(n / chunk_size), offsets that do not start
// at 0, decrease or do not end at size, a chunk shorter than its states, an initial state
// outside [L, 256 L), a chunk whose symbols need more bytes than it has or leave bytes unused,
// a final state other than L. Never reads outside data[0..size).
void rans_decode(const uint8_t* data, int64_t size, const int64_t* chunk_offsets,
                 int64_t n_chunks, const uint32_t* freqs, int64_t k, int scale_bits, int states,
                 int64_t n, int64_t chunk_size, void* idx, IndexType itype);

// Decodes like rans_decode and writes codebook[symbol] (codebook of m float32 values,
// converted to out_dtype) straight into out[0..n): no index array is ever materialised.
// Throws on the same inconsistencies as rans_decode, and (before decoding) if a symbol >= m
// has a frequency, since it could be decoded.
void rans_decode_gather(const uint8_t* data, int64_t size, const int64_t* chunk_offsets,
                        int64_t n_chunks, const uint32_t* freqs, int64_t k, int scale_bits,
                        int states, int64_t n, int64_t chunk_size, const float* codebook,
                        int64_t m, void* out, DType out_dtype);

}  // namespace wsc
