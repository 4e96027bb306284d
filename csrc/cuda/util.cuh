// Internal helpers of the CUDA kernels: error checks, device guard, launch sizes, the status
// block that brings NaN/Inf and bad-index counts back to the host, 16-element vector loads,
// warp/block reductions.
#pragma once
#include <cuda_runtime.h>

#include <climits>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "wsc/common.h"
#include "wsc/cuda.h"
#include "wsc/half.h"

namespace wsc {
namespace cuda {
namespace detail {

// ------------------------------------------------------------------ errors
inline void check_cuda(cudaError_t err, const char* what) {
  if (err != cudaSuccess) {
    (void)cudaGetLastError();  // clear a non-sticky error so the next call starts clean
    throw std::runtime_error(std::string("wsc CUDA: ") + what +
                             " failed: " + cudaGetErrorName(err) + ": " + cudaGetErrorString(err));
  }
}

// Call right after a kernel launch: reports a bad launch configuration at once.
inline void check_launch(const char* kernel) { check_cuda(cudaGetLastError(), kernel); }

inline cudaStream_t as_stream(Stream s) { return reinterpret_cast<cudaStream_t>(s); }

// Makes `device` current for the lifetime of the guard, restores the previous one.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) : device_(device) {
    check_cuda(cudaGetDevice(&prev_), "cudaGetDevice");
    if (prev_ != device_) check_cuda(cudaSetDevice(device_), "cudaSetDevice");
  }
  ~DeviceGuard() {
    if (prev_ != device_) (void)cudaSetDevice(prev_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int device_;
  int prev_ = 0;
};

// ------------------------------------------------------------------ launch sizes
constexpr int kThreads = 256;  // threads per block of the element-wise kernels
constexpr int kGroup = 16;     // consecutive elements per thread and loop iteration

__host__ __device__ inline int64_t num_groups(int64_t n) { return (n + kGroup - 1) / kGroup; }

// Blocks for a grid-stride kernel over n elements: enough to fill every SM at the kernel's
// occupancy, never more than there are groups of work.
template <class Kernel>
int grid_size(Kernel kernel, int threads, size_t smem, int64_t n) {
  int device = 0, sms = 0, per_sm = 0;
  check_cuda(cudaGetDevice(&device), "cudaGetDevice");
  check_cuda(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device),
             "cudaDeviceGetAttribute(multiprocessor count)");
  check_cuda(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, smem),
             "cudaOccupancyMaxActiveBlocksPerMultiprocessor");
  if (per_sm < 1) per_sm = 1;
  const int64_t want = (num_groups(n) + threads - 1) / threads;
  const int64_t cap = int64_t(sms) * per_sm;
  return int(want < 1 ? 1 : (want < cap ? want : cap));
}

// Largest dynamic shared memory a block of `kernel` may request on the current device.
template <class Kernel>
size_t max_dynamic_smem(Kernel kernel) {
  int device = 0, optin = 0;
  check_cuda(cudaGetDevice(&device), "cudaGetDevice");
  check_cuda(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device),
             "cudaDeviceGetAttribute(shared memory per block)");
  cudaFuncAttributes attr;
  check_cuda(cudaFuncGetAttributes(&attr, kernel), "cudaFuncGetAttributes");
  return size_t(optin) > attr.sharedSizeBytes ? size_t(optin) - attr.sharedSizeBytes : 0;
}

// Lets `kernel` launch with `bytes` of dynamic shared memory (needed above 48 KiB); throws
// if the device cannot give that much.
template <class Kernel>
void allow_dynamic_smem(Kernel kernel, size_t bytes, const char* name) {
  if (bytes == 0) return;
  if (bytes > max_dynamic_smem(kernel))
    throw std::runtime_error(std::string("wsc CUDA: ") + name + " needs " + std::to_string(bytes) +
                             " bytes of shared memory, more than this device allows");
  check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)),
             "cudaFuncSetAttribute(max dynamic shared memory)");
}

// True when every pointer allows 16-byte vector loads/stores.
inline bool aligned16(const void* a, const void* b) {
  return (reinterpret_cast<std::uintptr_t>(a) % 16 == 0) &&
         (reinterpret_cast<std::uintptr_t>(b) % 16 == 0);
}

// ------------------------------------------------------------------ status block
// Device-side results that come back to the host. Layout fixed at kStatusBytes.
struct Status {
  int32_t lo_key;             // range: min of key(x)
  int32_t hi_key;             // range: max of key(x)
  unsigned long long bad;     // NaN/Inf inputs, or indices >= k
  unsigned long long first;   // flat index of the first bad element (ULLONG_MAX if none)
  unsigned long long beyond;  // Huffman decode + gather: symbols >= codebook size
  unsigned long long bits;    // Huffman: payload bits the codes took (padding excluded)
  unsigned long long reserved;
};
static_assert(sizeof(Status) == kStatusBytes, "Status must match kStatusBytes");

// Internal linkage: each translation unit launches its own copy.
static __global__ void init_status_kernel(Status* s) {
  s->lo_key = INT_MAX;
  s->hi_key = INT_MIN;
  s->bad = 0;
  s->first = ULLONG_MAX;
  s->beyond = 0;
  s->bits = 0;
  s->reserved = 0;
}

inline Status* as_status(void* p) {
  check(p != nullptr && reinterpret_cast<std::uintptr_t>(p) % 16 == 0,
        "status must be a 16-byte aligned device buffer");
  return static_cast<Status*>(p);
}

static inline void init_status(Status* s, cudaStream_t stream) {
  init_status_kernel<<<1, 1, 0, stream>>>(s);
  check_launch("init_status_kernel");
}

// Copies the status back and waits for `stream` (only that stream).
inline Status fetch_status(const Status* s, cudaStream_t stream) {
  Status h;
  check_cuda(cudaMemcpyAsync(&h, s, sizeof(Status), cudaMemcpyDeviceToHost, stream),
             "cudaMemcpyAsync(status)");
  check_cuda(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
  return h;
}

// Same message as wsc::require_finite on the CPU.
inline void require_finite(const Status& h, const char* what) {
  if (h.bad != 0)
    throw std::invalid_argument(std::string(what) + " contains " + std::to_string(h.bad) +
                                " NaN/Inf value(s); the first is at flat index " +
                                std::to_string(h.first));
}

// ------------------------------------------------------------------ element access
template <class T>
__device__ __forceinline__ float to_float(T v) {
  return Elem<T>::load(&v, 0);
}
template <class O>
__device__ __forceinline__ O from_float(float f) {
  O o;
  Elem<O>::store(&o, 0, f);
  return o;
}

// kGroup consecutive elements (16, 32 or 64 bytes), moved with 128-bit loads and stores
// (`q`, the same bytes as 16-byte words) when the pointer is 16-byte aligned.
template <class T>
union alignas(16) Group {
  T v[kGroup];
  uint4 q[sizeof(T) * kGroup / 16];
};

template <class T>
__device__ __forceinline__ void load_group(const T* __restrict__ p, int64_t base, int m, bool vec,
                                           Group<T>& g) {
  if (vec && m == kGroup) {
    const uint4* src = reinterpret_cast<const uint4*>(p + base);
#pragma unroll
    for (int i = 0; i < int(sizeof(g.q) / 16); ++i) g.q[i] = __ldg(src + i);
  } else {
#pragma unroll
    for (int j = 0; j < kGroup; ++j)
      if (j < m) g.v[j] = p[base + j];
  }
}

template <class T>
__device__ __forceinline__ void store_group(T* __restrict__ p, int64_t base, int m, bool vec,
                                            const Group<T>& g) {
  if (vec && m == kGroup) {
    uint4* dst = reinterpret_cast<uint4*>(p + base);
#pragma unroll
    for (int i = 0; i < int(sizeof(g.q) / 16); ++i) dst[i] = g.q[i];
  } else {
#pragma unroll
    for (int j = 0; j < kGroup; ++j)
      if (j < m) p[base + j] = g.v[j];
  }
}

// ------------------------------------------------------------------ reductions
struct SumOp {
  template <class T>
  __device__ T operator()(T a, T b) const {
    return a + b;
  }
};
struct MinOp {
  template <class T>
  __device__ T operator()(T a, T b) const {
    return b < a ? b : a;
  }
};
struct MaxOp {
  template <class T>
  __device__ T operator()(T a, T b) const {
    return a < b ? b : a;
  }
};

template <class T, class Op>
__device__ __forceinline__ T warp_reduce(T v, Op op) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1)
    v = op(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

// Reduction over the block (blockDim.x a multiple of 32, at most 1024); every thread must
// call it. `identity` is op's neutral element. The result is valid in thread 0.
template <class T, class Op>
__device__ T block_reduce(T v, Op op, T identity) {
  __shared__ T partial[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_reduce(v, op);
  __syncthreads();  // `partial` may still be read by a previous call
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  if (warp == 0) {
    const int nwarps = int(blockDim.x >> 5);
    v = warp_reduce(lane < nwarps ? partial[lane] : identity, op);
  }
  return v;
}

// Per-thread tally of bad elements (NaN/Inf, or index >= k): count and first flat index.
struct BadTally {
  unsigned long long count = 0;
  unsigned long long first = ULLONG_MAX;

  __device__ __forceinline__ void add(bool bad, int64_t i) {
    if (bad) {
      ++count;
      first = (unsigned long long)i < first ? (unsigned long long)i : first;
    }
  }
  // Every thread of the block must call it; one atomic per block, and only if needed.
  __device__ void flush(Status* s) {
    const unsigned long long c = block_reduce(count, SumOp(), 0ull);
    const unsigned long long f = block_reduce(first, MinOp(), ULLONG_MAX);
    if (threadIdx.x == 0 && c != 0) {
      atomicAdd(&s->bad, c);
      atomicMin(&s->first, f);
    }
  }
};

__device__ __forceinline__ bool is_finite(float v) {
  return (__float_as_uint(v) & 0x7f800000u) != 0x7f800000u;
}

}  // namespace detail
}  // namespace cuda
}  // namespace wsc
