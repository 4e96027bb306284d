// CUDA versions of the kernels in range.h, binning.h and gather.h (built when WSC_WITH_CUDA).
//
// Torch-free and free of CUDA headers: arrays are raw device pointers, the stream is a
// cudaStream_t passed as an integer address (0 = the legacy default stream), `device` is the
// CUDA device index the pointers live on (made current for the call, restored afterwards).
// Work is queued on the given stream. A function synchronises that stream (never the device)
// only where a result must come back to the host: range's min/max, and the NaN/Inf or bad
// index count every kernel reports so that bad input raises as on the CPU. Every CUDA call
// and launch is checked: CUDA errors throw std::runtime_error with the CUDA error string,
// bad arguments std::invalid_argument with the same messages as the CPU kernels.
//
// `status` is a device scratch buffer of kStatusBytes (16-byte aligned) owned by the caller
// (the Python layer allocates it through PyTorch's caching allocator).
#pragma once
#include <cstdint>
#include <string>

#include "wsc/common.h"
#include "wsc/range.h"

namespace wsc {
namespace cuda {

using Stream = std::uintptr_t;

constexpr int64_t kStatusBytes = 48;

// Number of CUDA devices; 0 (never an exception) when there is no driver, no device, or the
// driver is too old for the CUDA runtime wsc was built with.
int device_count() noexcept;

// One line for diagnostics: runtime and driver versions, device count or the CUDA error
// that prevented counting.
std::string runtime_info() noexcept;

// Min and max of x[0..n). Throws on n == 0 or NaN/Inf (count and first flat index).
// Synchronises `stream`.
Range range(const void* x, DType dtype, int64_t n, void* status, int device, Stream stream);

// Indices into idx[0..n) and per-bin counts[0..k) (int64) and sums[0..k) (float64), all
// overwritten; same rule and argument checks as wsc::bin_uniform. The indices equal the CPU
// kernel's bit for bit. Sums are float64 additions in an order that depends on scheduling,
// so they may differ from the CPU's (whose AVX-512 kernel adds its hot bins in float32
// partials first: wsc/binning.h bounds that). Synchronises `stream` to check x for
// NaN/Inf.
void bin_uniform(const void* x, DType dtype, int64_t n, float lo, float hi, int64_t k, void* idx,
                 IndexType itype, int64_t* counts, double* sums, void* status, int device,
                 Stream stream);

// out[i] = codebook[idx[i]] converted to out_dtype (codebook: k float32 values on the
// device). Throws if any index is >= k (reads are clamped, never out of bounds).
// Synchronises `stream` to check the indices.
void gather(const void* idx, IndexType itype, int64_t n, const float* codebook, int64_t k,
            void* out, DType out_dtype, void* status, int device, Stream stream);

// out[i] = codebook[bin(x[i])] (fused quantize-dequantize), as wsc::share. Synchronises
// `stream` to check x for NaN/Inf.
void share(const void* x, DType dtype, int64_t n, float lo, float hi, const float* codebook,
           int64_t k, void* out, DType out_dtype, void* status, int device, Stream stream);

// Bytes of device workspace the Huffman decoders need for an alphabet of k symbols.
int64_t huffman_workspace_bytes(int64_t k);

// Decodes a chunked canonical Huffman stream (format: wsc/huffman.h) into idx[0..n) (uint8
// if itype == U8, which needs k <= 256). data[0..size) and chunk_offsets[0..n_chunks] are
// on the device; lengths[0..k) (the code lengths) on the HOST. `workspace`: device buffer of
// huffman_workspace_bytes(k) bytes, 16-byte aligned. Throws std::invalid_argument on bad
// lengths or counts (host checks) and on corrupt chunks (count and first chunk); never reads
// or writes out of bounds. Synchronises `stream`.
void huffman_decode(const uint8_t* data, int64_t size, const int64_t* chunk_offsets,
                    int64_t n_chunks, const uint8_t* lengths, int64_t k, int64_t n,
                    int64_t chunk_size, void* idx, IndexType itype, void* workspace, void* status,
                    int device, Stream stream);

// As huffman_decode, fused with the gather: out[i] = codebook[symbol i] converted to
// out_dtype (codebook: m float32 values on the device; as wsc::huffman_decode_gather, a
// symbol >= m is counted, its read clamped, and the call throws). Returns the payload bits
// the codes took (padding excluded), as the CPU function does. Synchronises `stream`.
int64_t huffman_decode_gather(const uint8_t* data, int64_t size, const int64_t* chunk_offsets,
                              int64_t n_chunks, const uint8_t* lengths, int64_t k, int64_t n,
                              int64_t chunk_size, const float* codebook, int64_t m, void* out,
                              DType out_dtype, void* workspace, void* status, int device,
                              Stream stream);

// Test hook: the device Huffman chunk decoder (csrc/cuda/huffman.cu) run on the host over
// host arrays, chunk after chunk, into uint16 indices; raises as huffman_decode does and
// returns the payload bits.
int64_t huffman_decode_on_host(const uint8_t* data, int64_t size, const int64_t* chunk_offsets,
                               int64_t n_chunks, const uint8_t* lengths, int64_t k, int64_t n,
                               int64_t chunk_size, uint16_t* idx);

// Test hook: the device binning rule (csrc/cuda/bin_rule.cuh) evaluated on the host over
// host arrays, so its logic is checked against the reference on machines without a GPU.
void bin_rule_on_host(const float* x, int64_t n, float lo, float hi, int64_t k, int32_t* out);

}  // namespace cuda
}  // namespace wsc
