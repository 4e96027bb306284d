// Uniform binning on the GPU: indices, per-bin counts (int64) and sums (float64) in one pass.
//
// Weights crowd into a few central bins, so per-element atomics on a shared histogram would
// serialise. Two schemes, both free of contended per-element atomics:
//  - small k (k * kPrivThreads * 12 bytes fits in the block's shared memory): every thread
//    owns a private column of the block's histogram and updates it with plain loads and
//    stores; the block then sums the columns (one warp per bin) and adds one value per bin
//    to the global result.
//  - larger k: within each warp, lanes holding the same bin are grouped (__match_any_sync);
//    the group's lowest lane adds the group's count and sum with one atomic, to a per-block
//    shared histogram (k <= kSharedBins) or straight to the global one.
// Indices equal the CPU kernel's bit for bit (bin_rule.cuh); sums are float64 but their
// addition order depends on scheduling.
#include <cuda_runtime.h>

#include "bin_rule.cuh"
#include "util.cuh"
#include "wsc/binning.h"

namespace wsc {
namespace cuda {
namespace {

using namespace detail;

constexpr int kPrivThreads = 128;
constexpr int64_t kPrivBinsMax = 64;   // at most 128 * 64 * 12 B = 96 KiB of shared memory
constexpr int64_t kSharedBins = 3072;  // 3072 * 16 B = 48 KiB
constexpr uint32_t kNoBin = 0xffffffffu;

// ------------------------------------------------------------------ private columns, small k
template <class T, class I>
__global__ void __launch_bounds__(kPrivThreads)
    bin_private_kernel(const T* __restrict__ x, int64_t n, BinParams p, int k, I* __restrict__ idx,
                       bool vec, unsigned long long* __restrict__ counts, double* __restrict__ sums,
                       Status* status) {
  extern __shared__ double smem[];
  double* hsum = smem;                                                    // [k][kPrivThreads]
  uint32_t* hcnt = reinterpret_cast<uint32_t*>(smem + k * kPrivThreads);  // [k][kPrivThreads]
  const int tid = threadIdx.x;
  for (int b = 0; b < k; ++b) {  // a thread touches only its own column until the reduction
    hsum[b * kPrivThreads + tid] = 0.0;
    hcnt[b * kPrivThreads + tid] = 0u;
  }
  BadTally bad;
  const int64_t groups = num_groups(n);
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t g = int64_t(blockIdx.x) * blockDim.x + tid; g < groups; g += stride) {
    const int64_t base = g * kGroup;
    const int m = int(n - base < kGroup ? n - base : kGroup);
    Group<T> in;
    Group<I> out;
    load_group(x, base, m, vec, in);
#pragma unroll
    for (int j = 0; j < kGroup; ++j) {
      if (j < m) {
        const float v = to_float(in.v[j]);
        bad.add(!is_finite(v), base + j);
        const uint32_t b = bin_of(v, p);
        out.v[j] = I(b);
        hsum[b * kPrivThreads + tid] += double(v);
        hcnt[b * kPrivThreads + tid] += 1u;
      }
    }
    store_group(idx, base, m, vec, out);
  }
  __syncthreads();
  const int lane = tid & 31, warp = tid >> 5;
  for (int b = warp; b < k; b += kPrivThreads / 32) {
    double s = 0.0;
    unsigned long long c = 0;
    for (int t = lane; t < kPrivThreads; t += 32) {
      s += hsum[b * kPrivThreads + t];
      c += hcnt[b * kPrivThreads + t];
    }
    s = warp_reduce(s, SumOp());
    c = warp_reduce(c, SumOp());
    if (lane == 0 && c != 0) {
      atomicAdd(&sums[b], s);
      atomicAdd(&counts[b], c);
    }
  }
  bad.flush(status);
}

// ------------------------------------------------------------------ warp-aggregated, larger k
// The loop runs in warp-uniform steps so that every lane takes part in __match_any_sync.
template <class T, class I>
__global__ void __launch_bounds__(kThreads)
    bin_aggregated_kernel(const T* __restrict__ x, int64_t n, BinParams p, int k,
                          I* __restrict__ idx, bool vec, bool use_shared,
                          unsigned long long* counts, double* sums, Status* status) {
  extern __shared__ double smem[];
  __shared__ double lane_value[kThreads];
  double* hsum = sums;
  unsigned long long* hcnt = counts;
  if (use_shared) {
    hsum = smem;                                             // [k]
    hcnt = reinterpret_cast<unsigned long long*>(smem + k);  // [k]
    for (int b = threadIdx.x; b < k; b += blockDim.x) {
      hsum[b] = 0.0;
      hcnt[b] = 0ull;
    }
    __syncthreads();
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  BadTally bad;
  const int64_t groups = num_groups(n);
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t g0 = int64_t(blockIdx.x) * blockDim.x + warp * 32; g0 < groups; g0 += stride) {
    const int64_t g = g0 + lane;
    const int64_t base = g * kGroup;
    const int m = g < groups ? int(n - base < kGroup ? n - base : kGroup) : 0;
    Group<T> in;
    Group<I> out;
    load_group(x, base, m, vec, in);
#pragma unroll
    for (int j = 0; j < kGroup; ++j) {
      float v = 0.0f;
      uint32_t b = kNoBin;
      if (j < m) {
        v = to_float(in.v[j]);
        bad.add(!is_finite(v), base + j);
        b = bin_of(v, p);
        out.v[j] = I(b);
      }
      const unsigned peers = __match_any_sync(0xffffffffu, b);
      lane_value[threadIdx.x] = double(v);
      __syncwarp();
      if (b != kNoBin && lane == __ffs(peers) - 1) {
        double s = 0.0;
        for (unsigned rest = peers; rest != 0; rest &= rest - 1)
          s += lane_value[warp * 32 + __ffs(rest) - 1];
        atomicAdd(&hsum[b], s);
        atomicAdd(&hcnt[b], (unsigned long long)__popc(peers));
      }
      __syncwarp();
    }
    if (m > 0) store_group(idx, base, m, vec, out);
  }
  if (use_shared) {
    __syncthreads();
    for (int b = threadIdx.x; b < k; b += blockDim.x) {
      if (hcnt[b] != 0) {
        atomicAdd(&sums[b], hsum[b]);
        atomicAdd(&counts[b], hcnt[b]);
      }
    }
  }
  bad.flush(status);
}

// ------------------------------------------------------------------ host side
template <class T, class I>
void bin_typed(const T* x, int64_t n, const BinParams& p, int64_t k, I* idx, int64_t* counts,
               double* sums, Status* status, cudaStream_t stream) {
  static_assert(sizeof(unsigned long long) == sizeof(int64_t), "counts are 64-bit");
  auto* ucounts = reinterpret_cast<unsigned long long*>(counts);
  const bool vec = aligned16(x, idx);
  const size_t priv_smem = size_t(k) * kPrivThreads * (sizeof(double) + sizeof(uint32_t));
  if (k <= kPrivBinsMax && priv_smem <= max_dynamic_smem(bin_private_kernel<T, I>)) {
    auto kernel = bin_private_kernel<T, I>;
    allow_dynamic_smem(kernel, priv_smem, "bin_private_kernel");
    const int grid = grid_size(kernel, kPrivThreads, priv_smem, n);
    kernel<<<grid, kPrivThreads, priv_smem, stream>>>(x, n, p, int(k), idx, vec, ucounts, sums,
                                                      status);
    check_launch("bin_private_kernel");
  } else {
    const bool use_shared = k <= kSharedBins;
    const size_t smem = use_shared ? size_t(k) * (sizeof(double) + sizeof(unsigned long long)) : 0;
    auto kernel = bin_aggregated_kernel<T, I>;
    allow_dynamic_smem(kernel, smem, "bin_aggregated_kernel");
    const int grid = grid_size(kernel, kThreads, smem, n);
    kernel<<<grid, kThreads, smem, stream>>>(x, n, p, int(k), idx, vec, use_shared, ucounts, sums,
                                             status);
    check_launch("bin_aggregated_kernel");
  }
}

template <class T>
void bin_index_dispatch(const T* x, int64_t n, const BinParams& p, int64_t k, void* idx,
                        IndexType itype, int64_t* counts, double* sums, Status* status,
                        cudaStream_t stream) {
  if (itype == IndexType::U8)
    bin_typed(x, n, p, k, static_cast<uint8_t*>(idx), counts, sums, status, stream);
  else
    bin_typed(x, n, p, k, static_cast<uint16_t*>(idx), counts, sums, status, stream);
}

}  // namespace

void bin_uniform(const void* x, DType dtype, int64_t n, float lo, float hi, int64_t k, void* idx,
                 IndexType itype, int64_t* counts, double* sums, void* status, int device,
                 Stream stream) {
  check_bin_args("bin_uniform", lo, hi, k);
  check(itype == IndexType::U16 || k <= 256, "bin_uniform: uint8 indices need k <= 256");
  DeviceGuard guard(device);
  Status* s = as_status(status);
  const cudaStream_t st = as_stream(stream);
  check_cuda(cudaMemsetAsync(counts, 0, size_t(k) * sizeof(int64_t), st),
             "cudaMemsetAsync(counts)");
  check_cuda(cudaMemsetAsync(sums, 0, size_t(k) * sizeof(double), st), "cudaMemsetAsync(sums)");
  if (n == 0) return;
  init_status(s, st);
  const BinParams p = make_bin_params(lo, hi, k);
  switch (dtype) {
    case DType::F32:
      bin_index_dispatch(static_cast<const float*>(x), n, p, k, idx, itype, counts, sums, s, st);
      break;
    case DType::F16:
      bin_index_dispatch(static_cast<const F16*>(x), n, p, k, idx, itype, counts, sums, s, st);
      break;
    case DType::BF16:
      bin_index_dispatch(static_cast<const BF16*>(x), n, p, k, idx, itype, counts, sums, s, st);
      break;
    default:
      throw std::invalid_argument("bin_uniform: unknown dtype");
  }
  require_finite(fetch_status(s, st), "x");
}

void bin_rule_on_host(const float* x, int64_t n, float lo, float hi, int64_t k, int32_t* out) {
  check_bin_args("bin_rule_on_host", lo, hi, k);
  const BinParams p = make_bin_params(lo, hi, k);
  for (int64_t i = 0; i < n; ++i) out[i] = int32_t(bin_of(x[i], p));
}

}  // namespace cuda
}  // namespace wsc
