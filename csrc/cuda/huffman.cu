// Chunked canonical Huffman decoding on the GPU (stream format: wsc/huffman.h), into indices
// or fused with the codebook gather into float32/float16/bfloat16 weights.
//
// One thread decodes one chunk (grid-stride over chunks). Per symbol: the next kTableBits bits
// index a shared-memory table giving the symbol and its length for codes of at most
// kTableBits bits; longer codes are found from the canonical code's per-length limits (codes
// of length <= L are the left-aligned 32-bit values below limit[L]). Bits come from a 64-bit
// buffer refilled byte by byte; bytes past the chunk's end read as zero and are never loaded.
// A chunk whose offsets are out of range, whose bits are no code, whose symbols run past its
// bytes or leave bytes unused, or whose padding is not zero is counted as corrupt; the host
// then raises with the count and the first such chunk. Nothing is read or written out of
// bounds whatever the input.
#include <cstring>
#include <string>
#include <vector>

#include "../cpu/huffman_code.h"
#include "table.cuh"
#include "util.cuh"
#include "wsc/huffman.h"

namespace wsc {
namespace cuda {
namespace {

using namespace detail;

constexpr int kTableBits = 11;
constexpr int kTableSize = 1 << kTableBits;
constexpr int kHuffThreads = 128;

// Decoding tables, built on the host and copied into the caller's workspace. `sorted` (the
// used symbols by (length, value), uint16) follows the header.
struct Tables {
  uint32_t single[kTableSize];  // symbol | length << 16 for codes <= kTableBits; 0: longer or none
  unsigned long long limit[kHuffmanMaxLen + 1];
  unsigned long long first[kHuffmanMaxLen + 1];
  uint32_t offset[kHuffmanMaxLen + 1];
  uint32_t max_len;
};

constexpr size_t kSortedAt = (sizeof(Tables) + 15) / 16 * 16;

std::vector<uint8_t> build_tables(const uint8_t* lengths, int64_t k) {
  const wsc::detail::CanonicalCode code(lengths, k);  // validates the lengths
  std::vector<uint8_t> blob(kSortedAt + size_t(k) * sizeof(uint16_t), 0);
  Tables t;
  std::memset(&t, 0, sizeof(t));
  for (int64_t i = 0; i < k; ++i) {
    const int len = lengths[i];
    if (len == 0 || len > kTableBits) continue;
    const uint32_t start = code.codes[size_t(i)] << (kTableBits - len);
    for (uint32_t j = 0; j < (uint32_t(1) << (kTableBits - len)); ++j)
      t.single[start + j] = uint32_t(i) | uint32_t(len) << 16;
  }
  for (int len = 1; len <= kHuffmanMaxLen; ++len) {
    t.first[len] = code.first[len];
    t.limit[len] = (code.first[len] + code.count[len]) << (kHuffmanMaxLen - len);
    t.offset[len] = code.offset[len];
  }
  t.max_len = uint32_t(code.max_len);
  std::memcpy(blob.data(), &t, sizeof(t));
  if (!code.sorted.empty())
    std::memcpy(blob.data() + kSortedAt, code.sorted.data(), code.sorted.size() * sizeof(uint16_t));
  return blob;
}

// Where decoded symbols go: indices, or codebook values (gather fused).
// put() returns false for a symbol the sink cannot take (>= the codebook size; the read is
// clamped, the caller counts it).
template <class I>
struct IndexSink {
  I* out;
  __device__ void init(int) {}
  __host__ __device__ __forceinline__ bool put(int64_t i, uint32_t sym) const {
    out[i] = I(sym);
    return true;
  }
};

template <class O, bool kShared>
struct GatherSink {
  O* out;
  const float* codebook;
  int m;                    // codebook size
  Table<O, kShared> table;  // built in init() (every thread of the block calls it)
  __device__ void init(int) { table = Table<O, kShared>(codebook, m, shared_table()); }
  __device__ __forceinline__ bool put(int64_t i, uint32_t sym) const {
    const uint32_t top = uint32_t(m - 1);
    out[i] = table[sym > top ? top : sym];
    return sym <= top;
  }
  __device__ static O* shared_table() {
    extern __shared__ double smem[];
    return reinterpret_cast<O*>(smem);
  }
};

struct ChunkState {
  const uint8_t* p;
  int64_t nbytes;
  int64_t next = 0;   // next byte to load
  uint64_t buf = 0;   // unread bits, left-aligned
  int have = 0;       // valid bits in buf (bytes past the end count, as zeros)
  uint64_t used = 0;  // bits consumed

  __host__ __device__ __forceinline__ void refill() {
    while (have <= 56) {
      const uint64_t byte = next < nbytes ? p[next] : 0u;
      buf |= byte << (56 - have);
      have += 8;
      ++next;
    }
  }
};

// Decodes chunk c; returns false if it is corrupt (the caller counts it). Also compiled for the
// host, where a test hook (cuda_huffman_decode_on_host) checks it against the CPU decoder.
template <class Sink>
__host__ __device__ bool decode_chunk(int64_t c, const uint8_t* __restrict__ data, int64_t size,
                                      const int64_t* __restrict__ offsets, int64_t n_chunks,
                                      int64_t n, int64_t chunk_size, const uint32_t* single,
                                      const unsigned long long* limit,
                                      const unsigned long long* first, const uint32_t* offset,
                                      uint32_t max_len, const uint16_t* __restrict__ sorted,
                                      const Sink& sink, unsigned long long& beyond,
                                      unsigned long long& bits) {
  const int64_t b0 = offsets[c], b1 = offsets[c + 1];
  // Per chunk, the CPU's offset checks: start at 0, never decrease, end at the payload size.
  if (b0 < 0 || b1 < b0 || b1 > size || (c == 0 && b0 != 0) || (c + 1 == n_chunks && b1 != size))
    return false;
  ChunkState s;
  s.p = data + b0;
  s.nbytes = b1 - b0;
  const uint64_t total = uint64_t(s.nbytes) * 8;
  const int64_t start = c * chunk_size;
  const int64_t m = n - start < chunk_size ? n - start : chunk_size;
  for (int64_t i = 0; i < m; ++i) {
    s.refill();
    const uint32_t e = single[s.buf >> (64 - kTableBits)];
    uint32_t len = e >> 16, sym = e & 0xffffu;
    if (len == 0) {  // a code longer than the table, or no code
      const unsigned long long w = s.buf >> 32;
      for (uint32_t L = 1; L <= max_len; ++L) {
        if (w < limit[L]) {
          sym = sorted[offset[L] + uint32_t((w >> (kHuffmanMaxLen - L)) - first[L])];
          len = L;
          break;
        }
      }
      if (len == 0) return false;
    }
    s.buf <<= len;
    s.have -= int(len);
    s.used += len;
    if (s.used > total) return false;
    beyond += !sink.put(start + i, sym);
  }
  if ((s.used + 7) / 8 != uint64_t(s.nbytes)) return false;
  const unsigned pad = unsigned(total - s.used);  // < 8, and those bits are in buf
  s.refill();
  bits += s.used;
  return pad == 0 || (s.buf >> (64 - pad)) == 0;
}

template <class Sink>
__global__ void __launch_bounds__(kHuffThreads)
    huffman_kernel(const uint8_t* __restrict__ data, int64_t size,
                   const int64_t* __restrict__ offsets, int64_t n_chunks, int64_t n,
                   int64_t chunk_size, const uint8_t* __restrict__ tables, Sink sink,
                   Status* status) {
  __shared__ uint32_t single[kTableSize];
  __shared__ unsigned long long limit[kHuffmanMaxLen + 1], first[kHuffmanMaxLen + 1];
  __shared__ uint32_t offset[kHuffmanMaxLen + 1];
  const Tables* t = reinterpret_cast<const Tables*>(tables);
  for (int i = threadIdx.x; i < kTableSize; i += blockDim.x) single[i] = t->single[i];
  for (int i = threadIdx.x; i <= kHuffmanMaxLen; i += blockDim.x) {
    limit[i] = t->limit[i];
    first[i] = t->first[i];
    offset[i] = t->offset[i];
  }
  const uint32_t max_len = t->max_len;
  const uint16_t* sorted = reinterpret_cast<const uint16_t*>(tables + kSortedAt);
  sink.init(0);  // ends with __syncthreads() when it fills shared memory
  __syncthreads();
  BadTally bad;
  unsigned long long beyond = 0, bits = 0;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; c < n_chunks; c += stride) {
    const bool ok = decode_chunk(c, data, size, offsets, n_chunks, n, chunk_size, single, limit,
                                 first, offset, max_len, sorted, sink, beyond, bits);
    bad.add(!ok, c);
  }
  bad.flush(status);
  beyond = block_reduce(beyond, SumOp(), 0ull);
  if (threadIdx.x == 0 && beyond != 0) atomicAdd(&status->beyond, beyond);
  bits = block_reduce(bits, SumOp(), 0ull);
  if (threadIdx.x == 0 && bits != 0) atomicAdd(&status->bits, bits);
}

template <class Sink>
void launch(const Sink& sink, size_t smem, const uint8_t* data, int64_t size,
            const int64_t* offsets, int64_t n_chunks, int64_t n, int64_t chunk_size,
            const uint8_t* tables, Status* status, cudaStream_t stream) {
  auto kernel = huffman_kernel<Sink>;
  allow_dynamic_smem(kernel, smem, "huffman_kernel");
  int device = 0, sms = 0, per_sm = 0;
  check_cuda(cudaGetDevice(&device), "cudaGetDevice");
  check_cuda(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device),
             "cudaDeviceGetAttribute(multiprocessor count)");
  check_cuda(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kHuffThreads, smem),
             "cudaOccupancyMaxActiveBlocksPerMultiprocessor");
  const int64_t want = (n_chunks + kHuffThreads - 1) / kHuffThreads;
  const int64_t cap = int64_t(sms) * (per_sm < 1 ? 1 : per_sm);
  const int grid = int(want < cap ? want : cap);
  kernel<<<grid, kHuffThreads, smem, stream>>>(data, size, offsets, n_chunks, n, chunk_size, tables,
                                               sink, status);
  check_launch("huffman_kernel");
}

// Host-side checks shared by both entry points; returns false when there is nothing to do.
bool prepare(int64_t size, int64_t n_chunks, const uint8_t* lengths, int64_t k, int64_t n,
             int64_t chunk_size, void* workspace, Status* status, cudaStream_t stream) {
  check(size >= 0, "huffman_decode: size must be >= 0");
  check(n >= 0, "huffman: the number of symbols must be >= 0, got " + std::to_string(n));
  check(chunk_size >= 1, "huffman: chunk_size must be >= 1, got " + std::to_string(chunk_size));
  const int64_t count = n / chunk_size + (n % chunk_size != 0);
  check(n_chunks == count, "huffman_decode: " + std::to_string(n) + " symbols in chunks of " +
                               std::to_string(chunk_size) + " make " + std::to_string(count) +
                               " chunks, but n_chunks is " + std::to_string(n_chunks));
  check(workspace != nullptr && reinterpret_cast<std::uintptr_t>(workspace) % 16 == 0,
        "huffman_decode: workspace must be a 16-byte aligned device buffer");
  const std::vector<uint8_t> blob = build_tables(lengths, k);  // validates lengths
  bool any_used = false;
  for (int64_t i = 0; i < k && !any_used; ++i) any_used = lengths[i] != 0;
  check(n == 0 || any_used, "huffman_decode: no symbol has a code, but n > 0");
  if (n == 0) return false;
  // Pageable source: the copy is staged before cudaMemcpyAsync returns, so `blob` may go.
  check_cuda(cudaMemcpyAsync(workspace, blob.data(), blob.size(), cudaMemcpyHostToDevice, stream),
             "cudaMemcpyAsync(huffman tables)");
  init_status(status, stream);
  return true;
}

void raise_corrupt(unsigned long long bad, unsigned long long first) {
  if (bad != 0)
    throw std::invalid_argument(
        "huffman_decode: " + std::to_string(bad) +
        " chunk(s) are corrupt or do not match the code lengths and offsets; the first is "
        "chunk " +
        std::to_string(first));
}

// Raises for corrupt chunks or symbols beyond the codebook; returns the payload bits.
int64_t finish(Status* status, cudaStream_t stream, int64_t m = 0) {
  const Status h = fetch_status(status, stream);
  raise_corrupt(h.bad, h.first);
  check(h.beyond == 0, "huffman_decode_gather: " + std::to_string(h.beyond) +
                           " decoded index value(s) >= codebook size " + std::to_string(m));
  return int64_t(h.bits);
}

}  // namespace

int64_t huffman_workspace_bytes(int64_t k) {
  return int64_t(kSortedAt) + k * int64_t(sizeof(uint16_t));
}

void huffman_decode(const uint8_t* data, int64_t size, const int64_t* chunk_offsets,
                    int64_t n_chunks, const uint8_t* lengths, int64_t k, int64_t n,
                    int64_t chunk_size, void* idx, IndexType itype, void* workspace, void* status,
                    int device, Stream stream) {
  check(itype == IndexType::U16 || k <= 256, "huffman_decode: uint8 output needs k <= 256");
  DeviceGuard guard(device);
  Status* s = as_status(status);
  const cudaStream_t st = as_stream(stream);
  if (!prepare(size, n_chunks, lengths, k, n, chunk_size, workspace, s, st)) return;
  const auto* tables = static_cast<const uint8_t*>(workspace);
  if (itype == IndexType::U8)
    launch(IndexSink<uint8_t>{static_cast<uint8_t*>(idx)}, 0, data, size, chunk_offsets, n_chunks,
           n, chunk_size, tables, s, st);
  else
    launch(IndexSink<uint16_t>{static_cast<uint16_t*>(idx)}, 0, data, size, chunk_offsets, n_chunks,
           n, chunk_size, tables, s, st);
  finish(s, st);
}

namespace {
template <class O>
void decode_gather_typed(const uint8_t* data, int64_t size, const int64_t* offsets,
                         int64_t n_chunks, int64_t n, int64_t chunk_size, const float* codebook,
                         int64_t m, O* out, const uint8_t* tables, Status* s, cudaStream_t st) {
  if (shared_table_fits<O>(m)) {
    GatherSink<O, true> sink{out, codebook, int(m), {}};
    launch(sink, size_t(m) * sizeof(O), data, size, offsets, n_chunks, n, chunk_size, tables, s,
           st);
  } else {
    GatherSink<O, false> sink{out, codebook, int(m), {}};
    launch(sink, 0, data, size, offsets, n_chunks, n, chunk_size, tables, s, st);
  }
}
}  // namespace

int64_t huffman_decode_gather(const uint8_t* data, int64_t size, const int64_t* chunk_offsets,
                              int64_t n_chunks, const uint8_t* lengths, int64_t k, int64_t n,
                              int64_t chunk_size, const float* codebook, int64_t m, void* out,
                              DType out_dtype, void* workspace, void* status, int device,
                              Stream stream) {
  check(m >= 1 && m <= kMaxBins, "huffman_decode_gather: codebook size must be in [1, 65536]");
  DeviceGuard guard(device);
  Status* s = as_status(status);
  const cudaStream_t st = as_stream(stream);
  if (!prepare(size, n_chunks, lengths, k, n, chunk_size, workspace, s, st)) return 0;
  const auto* tables = static_cast<const uint8_t*>(workspace);
  switch (out_dtype) {
    case DType::F32:
      decode_gather_typed(data, size, chunk_offsets, n_chunks, n, chunk_size, codebook, m,
                          static_cast<float*>(out), tables, s, st);
      break;
    case DType::F16:
      decode_gather_typed(data, size, chunk_offsets, n_chunks, n, chunk_size, codebook, m,
                          static_cast<F16*>(out), tables, s, st);
      break;
    case DType::BF16:
      decode_gather_typed(data, size, chunk_offsets, n_chunks, n, chunk_size, codebook, m,
                          static_cast<BF16*>(out), tables, s, st);
      break;
    default:
      throw std::invalid_argument("huffman_decode_gather: unknown output dtype");
  }
  return finish(s, st, m);
}

int64_t huffman_decode_on_host(const uint8_t* data, int64_t size, const int64_t* chunk_offsets,
                               int64_t n_chunks, const uint8_t* lengths, int64_t k, int64_t n,
                               int64_t chunk_size, uint16_t* idx) {
  check(size >= 0 && n >= 0 && chunk_size >= 1, "huffman_decode_on_host: bad sizes");
  check(n_chunks == n / chunk_size + (n % chunk_size != 0), "huffman_decode_on_host: bad n_chunks");
  const std::vector<uint8_t> blob = build_tables(lengths, k);
  Tables t;
  std::memcpy(&t, blob.data(), sizeof(t));
  std::vector<uint16_t> sorted(static_cast<size_t>(k));
  std::memcpy(sorted.data(), blob.data() + kSortedAt, sorted.size() * sizeof(uint16_t));
  const IndexSink<uint16_t> sink{idx};
  unsigned long long bad = 0, first = 0, beyond = 0, bits = 0;
  for (int64_t c = 0; c < n_chunks; ++c) {
    if (decode_chunk(c, data, size, chunk_offsets, n_chunks, n, chunk_size, t.single, t.limit,
                     t.first, t.offset, t.max_len, sorted.data(), sink, beyond, bits))
      continue;
    if (bad++ == 0) first = (unsigned long long)c;
  }
  raise_corrupt(bad, first);
  return int64_t(bits);
}

}  // namespace cuda
}  // namespace wsc
