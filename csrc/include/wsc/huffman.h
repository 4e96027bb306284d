// Chunked canonical Huffman coding of index streams.
//
// Code: canonical. Symbols are ordered by (code length, symbol value); codes are assigned
// in increasing order starting from 0, as in DEFLATE. A symbol of length 0 is unused and has
// no code. With two or more used symbols the code must be complete (Kraft sum exactly 1);
// a single used symbol gets length 1 (code "0"), so every symbol costs at least one bit and
// the bitstream is well defined. Lengths are at most kHuffmanMaxLen.
//
// Stream: the n symbols are cut into chunks of chunk_size symbols (the last one shorter);
// chunk c occupies bytes [chunk_offsets[c], chunk_offsets[c + 1]) of the payload. Within a
// chunk, codes are written most significant bit first, byte after byte, and the last byte is
// padded with zero bits. Chunks start byte-aligned, so they encode and decode independently
// (one thread per group of chunks here, one GPU thread per chunk later).
#pragma once
#include <cstdint>

#include "wsc/common.h"

namespace wsc {

constexpr int kHuffmanMaxLen = 32;

// Optimal code lengths under a length limit (package-merge), written to lengths[0..k):
// 0 for symbols with count 0, 1 for a single used symbol. Ties are broken
// deterministically (symbols by (count, value); a leaf before a package of equal weight),
// exactly as wsc.reference.huffman_code_lengths. Requires 1 <= k <= 65536, counts >= 0,
// 1 <= max_len <= 32 and at most 2^max_len used symbols.
void huffman_code_lengths(const int64_t* counts, int64_t k, int max_len, uint8_t* lengths);

// Throws std::invalid_argument unless lengths[0..k) describe a code this module writes and
// reads: every length <= 32, and either a complete code (Kraft sum 1, two or more used
// symbols), a single used symbol of length 1, or no used symbol at all.
void huffman_check_lengths(const uint8_t* lengths, int64_t k);

// Byte offsets of the chunks: chunk_offsets[0..n_chunks] with n_chunks =
// ceil(n / chunk_size). Returns the payload size (chunk_offsets[n_chunks]). Throws if an
// index is >= k or has length 0 (an unused symbol).
int64_t huffman_plan(const void* idx, IndexType itype, int64_t n, const uint8_t* lengths,
                     int64_t k, int64_t chunk_size, int64_t* chunk_offsets);

// Writes the payload planned by huffman_plan into out[0..out_size). Throws if an index is
// invalid or the offsets do not match the indices; never writes outside out.
void huffman_encode(const void* idx, IndexType itype, int64_t n, const uint8_t* lengths,
                    int64_t k, int64_t chunk_size, const int64_t* chunk_offsets, uint8_t* out,
                    int64_t out_size);

// Decodes n symbols into idx (uint8 if itype == U8, which needs k <= 256; uint16 otherwise).
// Throws std::invalid_argument on any inconsistency: bad lengths, n_chunks !=
// ceil(n / chunk_size), offsets that do not start at 0, decrease or do not end at size, a
// bit pattern that is no code, a chunk whose symbols run past its bytes or leave bytes
// unused, non-zero padding. Never reads outside data[0..size).
void huffman_decode(const uint8_t* data, int64_t size, const int64_t* chunk_offsets,
                    int64_t n_chunks, const uint8_t* lengths, int64_t k, int64_t n,
                    int64_t chunk_size, void* idx, IndexType itype);

// Decodes like huffman_decode and writes codebook[symbol] (codebook of m float32 values,
// converted to out_dtype) straight into out[0..n): each thread decodes a few chunks at a
// time into a small buffer, so no full index array is ever materialised. Throws on the same
// inconsistencies as huffman_decode, and if a decoded symbol is >= m. Returns the payload
// bits the stream's codes take (sum over symbols of their code length, padding excluded).
int64_t huffman_decode_gather(const uint8_t* data, int64_t size, const int64_t* chunk_offsets,
                              int64_t n_chunks, const uint8_t* lengths, int64_t k, int64_t n,
                              int64_t chunk_size, const float* codebook, int64_t m, void* out,
                              DType out_dtype);

}  // namespace wsc
