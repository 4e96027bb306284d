// Fused share (quantize-dequantize) on the GPU: x -> codebook[bin(x)] in one pass.
// The codebook is converted to the output type once per block into shared memory when it is
// small, else read from global memory (L1/L2 cached) and converted per element; both use
// the conversions of wsc/half.h, so values equal the CPU kernel's.
#include "bin_rule.cuh"
#include "table.cuh"
#include "util.cuh"

namespace wsc {
namespace cuda {
namespace {

using namespace detail;

template <class T, class O, bool kSharedTable>
__global__ void __launch_bounds__(kThreads)
    share_kernel(const T* __restrict__ x, int64_t n, BinParams p,
                 const float* __restrict__ codebook, int k, O* __restrict__ out, bool vec,
                 Status* status) {
  extern __shared__ double smem[];
  const Table<O, kSharedTable> table(codebook, k, reinterpret_cast<O*>(smem));
  BadTally bad;
  const int64_t groups = num_groups(n);
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t g = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; g < groups; g += stride) {
    const int64_t base = g * kGroup;
    const int m = int(n - base < kGroup ? n - base : kGroup);
    Group<T> in;
    Group<O> res;
    load_group(x, base, m, vec, in);
#pragma unroll
    for (int j = 0; j < kGroup; ++j) {
      if (j < m) {
        const float v = to_float(in.v[j]);
        bad.add(!is_finite(v), base + j);
        res.v[j] = table[bin_of(v, p)];
      }
    }
    store_group(out, base, m, vec, res);
  }
  bad.flush(status);
}

template <class T, class O>
void share_typed(const T* x, int64_t n, const BinParams& p, const float* codebook, int64_t k,
                 O* out, Status* status, cudaStream_t stream) {
  const bool vec = aligned16(x, out);
  if (shared_table_fits<O>(k)) {
    auto kernel = share_kernel<T, O, true>;
    const size_t smem = size_t(k) * sizeof(O);
    allow_dynamic_smem(kernel, smem, "share_kernel");
    const int grid = grid_size(kernel, kThreads, smem, n);
    kernel<<<grid, kThreads, smem, stream>>>(x, n, p, codebook, int(k), out, vec, status);
  } else {
    auto kernel = share_kernel<T, O, false>;
    const int grid = grid_size(kernel, kThreads, 0, n);
    kernel<<<grid, kThreads, 0, stream>>>(x, n, p, codebook, int(k), out, vec, status);
  }
  check_launch("share_kernel");
}

template <class T>
void share_out(const T* x, int64_t n, const BinParams& p, const float* codebook, int64_t k,
               void* out, DType out_dtype, Status* status, cudaStream_t stream) {
  switch (out_dtype) {
    case DType::F32:
      return share_typed(x, n, p, codebook, k, static_cast<float*>(out), status, stream);
    case DType::F16:
      return share_typed(x, n, p, codebook, k, static_cast<F16*>(out), status, stream);
    case DType::BF16:
      return share_typed(x, n, p, codebook, k, static_cast<BF16*>(out), status, stream);
  }
  throw std::invalid_argument("share: unknown output dtype");
}

}  // namespace

void share(const void* x, DType dtype, int64_t n, float lo, float hi, const float* codebook,
           int64_t k, void* out, DType out_dtype, void* status, int device, Stream stream) {
  check_bin_args("share", lo, hi, k);
  if (n == 0) return;
  DeviceGuard guard(device);
  Status* s = as_status(status);
  const cudaStream_t st = as_stream(stream);
  init_status(s, st);
  const BinParams p = make_bin_params(lo, hi, k);
  switch (dtype) {
    case DType::F32:
      share_out(static_cast<const float*>(x), n, p, codebook, k, out, out_dtype, s, st);
      break;
    case DType::F16:
      share_out(static_cast<const F16*>(x), n, p, codebook, k, out, out_dtype, s, st);
      break;
    case DType::BF16:
      share_out(static_cast<const BF16*>(x), n, p, codebook, k, out, out_dtype, s, st);
      break;
    default:
      throw std::invalid_argument("share: unknown dtype");
  }
  require_finite(fetch_status(s, st), "x");
}

}  // namespace cuda
}  // namespace wsc
