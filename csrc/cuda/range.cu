// Range kernel on the GPU: min/max with NaN/Inf count and first index, exact via the integer
// keys of csrc/cpu/range.cpp (a float's key is monotone in its value, -0.0 just below +0.0),
// so the result is the CPU's bit for bit.
#include <climits>

#include "util.cuh"

namespace wsc {
namespace cuda {
namespace {

using namespace detail;

__device__ __forceinline__ int32_t key(uint32_t u) {
  return int32_t(u ^ (uint32_t(int32_t(u) >> 31) & 0x7fffffffu));
}
inline float unkey(int32_t k) {
  uint32_t u = uint32_t(k);
  return bits_to_float(u ^ (uint32_t(int32_t(u) >> 31) & 0x7fffffffu));
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    range_kernel(const T* __restrict__ x, int64_t n, bool vec, Status* status) {
  int32_t lo = INT_MAX, hi = INT_MIN;
  BadTally bad;
  const int64_t groups = num_groups(n);
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t g = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; g < groups; g += stride) {
    const int64_t base = g * kGroup;
    const int m = int(n - base < kGroup ? n - base : kGroup);
    Group<T> in;
    load_group(x, base, m, vec, in);
#pragma unroll
    for (int j = 0; j < kGroup; ++j) {
      if (j < m) {
        const float v = to_float(in.v[j]);
        const int32_t k = key(__float_as_uint(v));
        lo = k < lo ? k : lo;
        hi = k > hi ? k : hi;
        bad.add(!is_finite(v), base + j);
      }
    }
  }
  lo = block_reduce(lo, MinOp(), int32_t(INT_MAX));
  hi = block_reduce(hi, MaxOp(), int32_t(INT_MIN));
  if (threadIdx.x == 0) {
    atomicMin(&status->lo_key, lo);
    atomicMax(&status->hi_key, hi);
  }
  bad.flush(status);
}

template <class T>
Range range_typed(const T* x, int64_t n, Status* status, cudaStream_t stream) {
  init_status(status, stream);
  const bool vec = aligned16(x, x);
  const int grid = grid_size(range_kernel<T>, kThreads, 0, n);
  range_kernel<T><<<grid, kThreads, 0, stream>>>(x, n, vec, status);
  check_launch("range_kernel");
  const Status h = fetch_status(status, stream);
  require_finite(h, "x");
  return {unkey(h.lo_key), unkey(h.hi_key)};
}

}  // namespace

Range range(const void* x, DType dtype, int64_t n, void* status, int device, Stream stream) {
  check(n > 0, "range: x is empty; the range of no values is undefined");
  DeviceGuard guard(device);
  Status* s = as_status(status);
  const cudaStream_t st = as_stream(stream);
  switch (dtype) {
    case DType::F32:
      return range_typed(static_cast<const float*>(x), n, s, st);
    case DType::F16:
      return range_typed(static_cast<const F16*>(x), n, s, st);
    case DType::BF16:
      return range_typed(static_cast<const BF16*>(x), n, s, st);
  }
  throw std::invalid_argument("range: unknown dtype");
}

}  // namespace cuda
}  // namespace wsc
