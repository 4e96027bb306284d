// Codebook lookup for the share and gather kernels: values converted from float32 to the
// output type with the conversions of wsc/half.h (as the CPU's codebook_as), held in shared
// memory when the table is small, else read from global memory and converted per element.
#pragma once
#include <cstdint>

#include "util.cuh"

namespace wsc {
namespace cuda {
namespace detail {

constexpr int64_t kSharedTableBytes = 32 * 1024;

template <class O>
inline bool shared_table_fits(int64_t k) {
  return k * int64_t(sizeof(O)) <= kSharedTableBytes;
}

template <class O, bool kShared>
struct Table;

// Every thread of the block must construct it (it ends with __syncthreads()).
template <class O>
struct Table<O, true> {
  const O* t;
  Table() = default;
  __device__ Table(const float* __restrict__ codebook, int k, O* smem) : t(smem) {
    for (int i = threadIdx.x; i < k; i += blockDim.x) smem[i] = from_float<O>(codebook[i]);
    __syncthreads();
  }
  __device__ __forceinline__ O operator[](uint32_t i) const { return t[i]; }
};

template <class O>
struct Table<O, false> {
  const float* __restrict__ cb;
  Table() = default;
  __device__ Table(const float* __restrict__ codebook, int, O*) : cb(codebook) {}
  __device__ __forceinline__ O operator[](uint32_t i) const { return from_float<O>(__ldg(cb + i)); }
};

}  // namespace detail
}  // namespace cuda
}  // namespace wsc
