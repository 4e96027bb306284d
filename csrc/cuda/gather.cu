// Codebook gather on the GPU: uint8/uint16 indices -> float32/float16/bfloat16 values.
// Reads are clamped to the codebook, so a bad index never reads out of bounds; bad indices
// are counted and reported as on the CPU.
#include <string>

#include "table.cuh"
#include "util.cuh"

namespace wsc {
namespace cuda {
namespace {

using namespace detail;

template <class I, class O, bool kSharedTable>
__global__ void __launch_bounds__(kThreads)
    gather_kernel(const I* __restrict__ idx, int64_t n, const float* __restrict__ codebook, int k,
                  O* __restrict__ out, bool vec, Status* status) {
  extern __shared__ double smem[];
  const Table<O, kSharedTable> table(codebook, k, reinterpret_cast<O*>(smem));
  const uint32_t top = uint32_t(k - 1);
  BadTally bad;
  const int64_t groups = num_groups(n);
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t g = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; g < groups; g += stride) {
    const int64_t base = g * kGroup;
    const int m = int(n - base < kGroup ? n - base : kGroup);
    Group<I> in;
    Group<O> res;
    load_group(idx, base, m, vec, in);
#pragma unroll
    for (int j = 0; j < kGroup; ++j) {
      if (j < m) {
        const uint32_t v = in.v[j];
        bad.add(v > top, base + j);
        res.v[j] = table[v > top ? top : v];
      }
    }
    store_group(out, base, m, vec, res);
  }
  bad.flush(status);
}

template <class I, class O>
void gather_typed(const I* idx, int64_t n, const float* codebook, int64_t k, O* out, Status* status,
                  cudaStream_t stream) {
  const bool vec = aligned16(idx, out);
  if (shared_table_fits<O>(k)) {
    auto kernel = gather_kernel<I, O, true>;
    const size_t smem = size_t(k) * sizeof(O);
    allow_dynamic_smem(kernel, smem, "gather_kernel");
    const int grid = grid_size(kernel, kThreads, smem, n);
    kernel<<<grid, kThreads, smem, stream>>>(idx, n, codebook, int(k), out, vec, status);
  } else {
    auto kernel = gather_kernel<I, O, false>;
    const int grid = grid_size(kernel, kThreads, 0, n);
    kernel<<<grid, kThreads, 0, stream>>>(idx, n, codebook, int(k), out, vec, status);
  }
  check_launch("gather_kernel");
}

template <class O>
void gather_out(const void* idx, IndexType itype, int64_t n, const float* codebook, int64_t k,
                void* out, Status* status, cudaStream_t stream) {
  if (itype == IndexType::U8)
    gather_typed(static_cast<const uint8_t*>(idx), n, codebook, k, static_cast<O*>(out), status,
                 stream);
  else
    gather_typed(static_cast<const uint16_t*>(idx), n, codebook, k, static_cast<O*>(out), status,
                 stream);
}

}  // namespace

void gather(const void* idx, IndexType itype, int64_t n, const float* codebook, int64_t k,
            void* out, DType out_dtype, void* status, int device, Stream stream) {
  check(k >= 1 && k <= kMaxBins, "gather: codebook size must be in [1, 65536]");
  if (n == 0) return;
  DeviceGuard guard(device);
  Status* s = as_status(status);
  const cudaStream_t st = as_stream(stream);
  init_status(s, st);
  switch (out_dtype) {
    case DType::F32:
      gather_out<float>(idx, itype, n, codebook, k, out, s, st);
      break;
    case DType::F16:
      gather_out<F16>(idx, itype, n, codebook, k, out, s, st);
      break;
    case DType::BF16:
      gather_out<BF16>(idx, itype, n, codebook, k, out, s, st);
      break;
    default:
      throw std::invalid_argument("gather: unknown output dtype");
  }
  const Status h = fetch_status(s, st);
  check(h.bad == 0, "gather: " + std::to_string(h.bad) + " index value(s) >= codebook size " +
                        std::to_string(k));
}

}  // namespace cuda
}  // namespace wsc
