// The only file that knows Python: thin pybind11 wrappers over the torch-free kernels.
// Arrays cross as raw addresses (validated by the Python layer: dtype, device, size,
// contiguity); the GIL is released while a kernel runs.
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "wsc/binning.h"
#ifdef WSC_WITH_CUDA
#include "wsc/cuda.h"
#endif
#include "wsc/gather.h"
#include "wsc/gptq.h"
#include "wsc/histogram.h"
#include "wsc/huffman.h"
#include "wsc/parallel.h"
#include "wsc/range.h"
#include "wsc/rans.h"
#include "wsc/simd.h"

namespace py = pybind11;

namespace {
template <class T>
T* ptr(std::uintptr_t address) { return reinterpret_cast<T*>(address); }
}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "wsc native kernels (torch-free, raw pointers). Use wsc.ops, not this module.";
#ifdef WSC_WITH_CUDA
  m.attr("built_with_cuda") = true;
#else
  m.attr("built_with_cuda") = false;
#endif

  m.def(
      "cuda_device_count",
      []() {
#ifdef WSC_WITH_CUDA
        return wsc::cuda::device_count();
#else
        return 0;
#endif
      },
      "CUDA devices the extension's own CUDA runtime sees; 0 (never an error) without a GPU or "
      "driver, with a driver too old for the runtime, or in a build without CUDA kernels.");
  m.def(
      "cuda_runtime_info",
      []() -> std::string {
#ifdef WSC_WITH_CUDA
        return wsc::cuda::runtime_info();
#else
        return "built without CUDA kernels";
#endif
      },
      "One line on the CUDA runtime, driver and devices (diagnostics).");

  m.def("get_num_threads", &wsc::get_num_threads, "Threads the kernels use.");
  m.def("set_num_threads", &wsc::set_num_threads, py::arg("n"),
        "Set the kernel thread count; n < 1 restores the default (all cores).");

  // Private: tests force each SIMD level to compare it with the scalar code, benchmarks
  // measure them. Levels are ints (0 scalar, 1 AVX2, 2 AVX-512).
  m.def("_simd_supported", []() { return int(wsc::simd_supported()); },
        "Widest SIMD level of this CPU and build: 0 scalar, 1 AVX2, 2 AVX-512.");
  m.def("_simd_level", []() { return int(wsc::simd_level()); }, "SIMD level the kernels use.");
  m.def(
      "_set_simd_level",
      [](int cap) {
        wsc::check(cap >= 0, "_set_simd_level: level must be >= 0");
        return int(wsc::set_simd_level(wsc::SimdLevel(cap > 2 ? 2 : cap)));
      },
      py::arg("cap"), "Cap the SIMD level (clamped to the supported one); returns the level in use.");

  m.def(
      "range",
      [](std::uintptr_t x, int dtype, int64_t n) {
        wsc::Range r;
        {
          py::gil_scoped_release release;
          r = wsc::range(ptr<const void>(x), wsc::DType(dtype), n);
        }
        return py::make_tuple(r.lo, r.hi);
      },
      py::arg("x"), py::arg("dtype"), py::arg("n"),
      "(lo, hi) of n elements at address x; raises ValueError on NaN/Inf.");

  m.def(
      "bin_uniform",
      [](std::uintptr_t x, int dtype, int64_t n, float lo, float hi, int64_t k, std::uintptr_t idx,
         int itype, std::uintptr_t counts, std::uintptr_t sums) {
        py::gil_scoped_release release;
        wsc::bin_uniform(ptr<const void>(x), wsc::DType(dtype), n, lo, hi, k, ptr<void>(idx),
                         wsc::IndexType(itype), ptr<int64_t>(counts), ptr<double>(sums));
      },
      py::arg("x"), py::arg("dtype"), py::arg("n"), py::arg("lo"), py::arg("hi"), py::arg("k"),
      py::arg("idx"), py::arg("itype"), py::arg("counts"), py::arg("sums"),
      "Uniform binning into idx with per-bin counts (int64) and sums (float64).");

  m.def(
      "gather",
      [](std::uintptr_t idx, int itype, int64_t n, std::uintptr_t codebook, int64_t k,
         std::uintptr_t out, int out_dtype) {
        py::gil_scoped_release release;
        wsc::gather(ptr<const void>(idx), wsc::IndexType(itype), n, ptr<const float>(codebook), k,
                    ptr<void>(out), wsc::DType(out_dtype));
      },
      py::arg("idx"), py::arg("itype"), py::arg("n"), py::arg("codebook"), py::arg("k"),
      py::arg("out"), py::arg("out_dtype"), "out[i] = codebook[idx[i]].");

  m.def(
      "gather_u4",
      [](std::uintptr_t packed, int64_t n, std::uintptr_t codebook, int64_t k, std::uintptr_t out,
         int out_dtype) {
        py::gil_scoped_release release;
        wsc::gather_u4(ptr<const uint8_t>(packed), n, ptr<const float>(codebook), k, ptr<void>(out),
                       wsc::DType(out_dtype));
      },
      py::arg("packed"), py::arg("n"), py::arg("codebook"), py::arg("k"), py::arg("out"),
      py::arg("out_dtype"), "out[i] = codebook[nibble i of packed] (two 4-bit indices per byte).");

  m.def(
      "share",
      [](std::uintptr_t x, int dtype, int64_t n, float lo, float hi, std::uintptr_t codebook,
         int64_t k, std::uintptr_t out, int out_dtype) {
        py::gil_scoped_release release;
        wsc::share(ptr<const void>(x), wsc::DType(dtype), n, lo, hi, ptr<const float>(codebook),
                   k, ptr<void>(out), wsc::DType(out_dtype));
      },
      py::arg("x"), py::arg("dtype"), py::arg("n"), py::arg("lo"), py::arg("hi"),
      py::arg("codebook"), py::arg("k"), py::arg("out"), py::arg("out_dtype"),
      "out[i] = codebook[bin(x[i])] (fused quantize-dequantize).");

  m.def(
      "histogram",
      [](std::uintptr_t idx, int itype, int64_t n, int64_t k, std::uintptr_t counts) {
        py::gil_scoped_release release;
        wsc::histogram(ptr<const void>(idx), wsc::IndexType(itype), n, k, ptr<int64_t>(counts));
      },
      py::arg("idx"), py::arg("itype"), py::arg("n"), py::arg("k"), py::arg("counts"),
      "counts[0..k) (int64) = occurrences of each index value; raises ValueError on values >= k.");

  m.def(
      "gptq_block",
      [](std::uintptr_t block, int64_t groups, int64_t rows, int64_t width, std::uintptr_t u,
         std::uintptr_t pivots, std::uintptr_t values, int64_t k, std::uintptr_t bits, double rate,
         std::uintptr_t q, std::uintptr_t err) {
        py::gil_scoped_release release;
        wsc::gptq_block(ptr<double>(block), groups, rows, width, ptr<const double>(u),
                        ptr<const double>(pivots), ptr<const double>(values), k,
                        ptr<const double>(bits), rate, ptr<int64_t>(q), ptr<double>(err));
      },
      py::arg("block"), py::arg("groups"), py::arg("rows"), py::arg("width"), py::arg("u"),
      py::arg("pivots"), py::arg("values"), py::arg("k"), py::arg("bits"), py::arg("rate"),
      py::arg("q"), py::arg("err"),
      "GPTQ over one block of columns (float64, in place): indices q (int64) and errors err.");

  m.def(
      "huffman_code_lengths",
      [](std::uintptr_t counts, int64_t k, int max_len, std::uintptr_t lengths) {
        py::gil_scoped_release release;
        wsc::huffman_code_lengths(ptr<const int64_t>(counts), k, max_len, ptr<uint8_t>(lengths));
      },
      py::arg("counts"), py::arg("k"), py::arg("max_len"), py::arg("lengths"),
      "Optimal code lengths (uint8[k]) under max_len by package-merge.");

  m.def(
      "huffman_check_lengths",
      [](std::uintptr_t lengths, int64_t k) {
        py::gil_scoped_release release;
        wsc::huffman_check_lengths(ptr<const uint8_t>(lengths), k);
      },
      py::arg("lengths"), py::arg("k"),
      "Raises ValueError unless lengths (uint8[k]) form a code the Huffman coder accepts.");

  m.def(
      "huffman_plan",
      [](std::uintptr_t idx, int itype, int64_t n, std::uintptr_t lengths, int64_t k,
         int64_t chunk_size, std::uintptr_t chunk_offsets) {
        py::gil_scoped_release release;
        return wsc::huffman_plan(ptr<const void>(idx), wsc::IndexType(itype), n,
                                 ptr<const uint8_t>(lengths), k, chunk_size,
                                 ptr<int64_t>(chunk_offsets));
      },
      py::arg("idx"), py::arg("itype"), py::arg("n"), py::arg("lengths"), py::arg("k"),
      py::arg("chunk_size"), py::arg("chunk_offsets"),
      "Fills chunk_offsets (int64[n_chunks + 1]) and returns the payload size in bytes.");

  m.def(
      "huffman_encode",
      [](std::uintptr_t idx, int itype, int64_t n, std::uintptr_t lengths, int64_t k,
         int64_t chunk_size, std::uintptr_t chunk_offsets, std::uintptr_t out, int64_t out_size) {
        py::gil_scoped_release release;
        wsc::huffman_encode(ptr<const void>(idx), wsc::IndexType(itype), n,
                            ptr<const uint8_t>(lengths), k, chunk_size,
                            ptr<const int64_t>(chunk_offsets), ptr<uint8_t>(out), out_size);
      },
      py::arg("idx"), py::arg("itype"), py::arg("n"), py::arg("lengths"), py::arg("k"),
      py::arg("chunk_size"), py::arg("chunk_offsets"), py::arg("out"), py::arg("out_size"),
      "Writes the chunked canonical Huffman payload planned by huffman_plan into out.");

  m.def(
      "huffman_decode",
      [](std::uintptr_t data, int64_t size, std::uintptr_t chunk_offsets, int64_t n_chunks,
         std::uintptr_t lengths, int64_t k, int64_t n, int64_t chunk_size, std::uintptr_t idx,
         int itype) {
        py::gil_scoped_release release;
        wsc::huffman_decode(ptr<const uint8_t>(data), size, ptr<const int64_t>(chunk_offsets),
                            n_chunks, ptr<const uint8_t>(lengths), k, n, chunk_size,
                            ptr<void>(idx), wsc::IndexType(itype));
      },
      py::arg("data"), py::arg("size"), py::arg("chunk_offsets"), py::arg("n_chunks"),
      py::arg("lengths"), py::arg("k"), py::arg("n"), py::arg("chunk_size"), py::arg("idx"),
      py::arg("itype"), "Decodes n symbols of a chunked Huffman payload into idx.");

  m.def(
      "huffman_decode_gather",
      [](std::uintptr_t data, int64_t size, std::uintptr_t chunk_offsets, int64_t n_chunks,
         std::uintptr_t lengths, int64_t k, int64_t n, int64_t chunk_size,
         std::uintptr_t codebook, int64_t m, std::uintptr_t out, int out_dtype) {
        py::gil_scoped_release release;
        return wsc::huffman_decode_gather(ptr<const uint8_t>(data), size, ptr<const int64_t>(chunk_offsets),
                                   n_chunks, ptr<const uint8_t>(lengths), k, n, chunk_size,
                                   ptr<const float>(codebook), m, ptr<void>(out),
                                   wsc::DType(out_dtype));
      },
      py::arg("data"), py::arg("size"), py::arg("chunk_offsets"), py::arg("n_chunks"),
      py::arg("lengths"), py::arg("k"), py::arg("n"), py::arg("chunk_size"), py::arg("codebook"),
      py::arg("m"), py::arg("out"), py::arg("out_dtype"),
      "Decodes a chunked Huffman payload and writes codebook[symbol] into out (fused); "
      "returns the payload bits.");

  m.attr("rans_states") = wsc::kRansStates;
  m.attr("rans_low") = wsc::kRansLow;
  m.attr("rans_max_scale") = wsc::kRansMaxScale;

  m.def(
      "rans_quantize_freqs",
      [](std::uintptr_t counts, int64_t k, int scale_bits, std::uintptr_t freqs) {
        py::gil_scoped_release release;
        wsc::rans_quantize_freqs(ptr<const int64_t>(counts), k, scale_bits, ptr<uint32_t>(freqs));
      },
      py::arg("counts"), py::arg("k"), py::arg("scale_bits"), py::arg("freqs"),
      "Frequencies (uint32[k]) summing to 2^scale_bits for counts (int64[k]).");

  m.def(
      "rans_quantize_grid",
      [](std::uintptr_t counts, int64_t k, int scale_bits, int grid, std::uintptr_t freqs) {
        py::gil_scoped_release release;
        return wsc::rans_quantize_grid(ptr<const int64_t>(counts), k, scale_bits, grid,
                                       ptr<uint32_t>(freqs));
      },
      py::arg("counts"), py::arg("k"), py::arg("scale_bits"), py::arg("grid"), py::arg("freqs"),
      "Frequencies on a level grid for counts (int64[k]); False where the grid cannot hold them.");

  m.def(
      "rans_choose_scale",
      [](std::uintptr_t counts, int64_t k) {
        int grid = -1;
        int scale_bits;
        {
          py::gil_scoped_release release;
          scale_bits = wsc::rans_choose_scale(ptr<const int64_t>(counts), k, &grid);
        }
        return py::make_tuple(scale_bits, grid);
      },
      py::arg("counts"), py::arg("k"),
      "(scale bits, grid) the rANS coder picks for counts (int64[k]); grid -1: exact.");

  m.def(
      "rans_check_freqs",
      [](std::uintptr_t freqs, int64_t k, int scale_bits) {
        py::gil_scoped_release release;
        wsc::rans_check_freqs(ptr<const uint32_t>(freqs), k, scale_bits);
      },
      py::arg("freqs"), py::arg("k"), py::arg("scale_bits"),
      "Raises ValueError unless freqs (uint32[k]) sum to 2^scale_bits, scale_bits in [1, 20].");

  m.def(
      "rans_packed_size",
      [](std::uintptr_t freqs, int64_t k, int scale_bits) {
        py::gil_scoped_release release;
        return wsc::rans_packed_size(ptr<const uint32_t>(freqs), k, scale_bits);
      },
      py::arg("freqs"), py::arg("k"), py::arg("scale_bits"), "Bytes of the packed frequency table.");

  m.def(
      "rans_pack_freqs",
      [](std::uintptr_t freqs, int64_t k, int scale_bits, std::uintptr_t out, int64_t size) {
        py::gil_scoped_release release;
        wsc::rans_pack_freqs(ptr<const uint32_t>(freqs), k, scale_bits, ptr<uint8_t>(out), size);
      },
      py::arg("freqs"), py::arg("k"), py::arg("scale_bits"), py::arg("out"), py::arg("size"),
      "Packs the frequency table into out (size bytes, from rans_packed_size).");

  m.def(
      "rans_unpack_freqs",
      [](std::uintptr_t data, int64_t size, int64_t k, int encoding, std::uintptr_t freqs) {
        py::gil_scoped_release release;
        return wsc::rans_unpack_freqs(ptr<const uint8_t>(data), size, k, encoding,
                                      ptr<uint32_t>(freqs));
      },
      py::arg("data"), py::arg("size"), py::arg("k"), py::arg("encoding"), py::arg("freqs"),
      "Unpacks a table of k frequencies into freqs (uint32[k]); returns scale_bits.");

  m.def("rans_encode_bound", &wsc::rans_encode_bound, py::arg("n"), py::arg("chunk_size"),
        "Bytes rans_encode needs as its output buffer (scratch included).");

  m.def(
      "rans_encode",
      [](std::uintptr_t idx, int itype, int64_t n, std::uintptr_t freqs, int64_t k, int scale_bits,
         int states, int64_t chunk_size, std::uintptr_t chunk_offsets, std::uintptr_t out,
         int64_t capacity) {
        py::gil_scoped_release release;
        return wsc::rans_encode(ptr<const void>(idx), wsc::IndexType(itype), n,
                                ptr<const uint32_t>(freqs), k, scale_bits, states, chunk_size,
                                ptr<int64_t>(chunk_offsets), ptr<uint8_t>(out), capacity);
      },
      py::arg("idx"), py::arg("itype"), py::arg("n"), py::arg("freqs"), py::arg("k"),
      py::arg("scale_bits"), py::arg("states"), py::arg("chunk_size"), py::arg("chunk_offsets"), py::arg("out"),
      py::arg("capacity"),
      "Encodes n indices; fills chunk_offsets (int64[n_chunks + 1]); returns the payload size.");

  m.def(
      "rans_decode",
      [](std::uintptr_t data, int64_t size, std::uintptr_t chunk_offsets, int64_t n_chunks,
         std::uintptr_t freqs, int64_t k, int scale_bits, int states, int64_t n,
         int64_t chunk_size, std::uintptr_t idx, int itype) {
        py::gil_scoped_release release;
        wsc::rans_decode(ptr<const uint8_t>(data), size, ptr<const int64_t>(chunk_offsets),
                         n_chunks, ptr<const uint32_t>(freqs), k, scale_bits, states, n,
                         chunk_size, ptr<void>(idx), wsc::IndexType(itype));
      },
      py::arg("data"), py::arg("size"), py::arg("chunk_offsets"), py::arg("n_chunks"),
      py::arg("freqs"), py::arg("k"), py::arg("scale_bits"), py::arg("states"), py::arg("n"),
      py::arg("chunk_size"),
      py::arg("idx"), py::arg("itype"), "Decodes n symbols of a chunked rANS payload into idx.");

  m.def(
      "rans_decode_gather",
      [](std::uintptr_t data, int64_t size, std::uintptr_t chunk_offsets, int64_t n_chunks,
         std::uintptr_t freqs, int64_t k, int scale_bits, int states, int64_t n,
         int64_t chunk_size, std::uintptr_t codebook, int64_t m, std::uintptr_t out,
         int out_dtype) {
        py::gil_scoped_release release;
        wsc::rans_decode_gather(ptr<const uint8_t>(data), size, ptr<const int64_t>(chunk_offsets),
                                n_chunks, ptr<const uint32_t>(freqs), k, scale_bits, states, n,
                                chunk_size, ptr<const float>(codebook), m, ptr<void>(out),
                                wsc::DType(out_dtype));
      },
      py::arg("data"), py::arg("size"), py::arg("chunk_offsets"), py::arg("n_chunks"),
      py::arg("freqs"), py::arg("k"), py::arg("scale_bits"), py::arg("states"), py::arg("n"),
      py::arg("chunk_size"),
      py::arg("codebook"), py::arg("m"), py::arg("out"), py::arg("out_dtype"),
      "Decodes a chunked rANS payload and writes codebook[symbol] into out (fused).");

#ifdef WSC_WITH_CUDA
  // CUDA kernels: device addresses, the CUDA device index, a cudaStream_t as an integer and a
  // device status buffer of cuda_status_bytes. They queue work on the stream and wait for it
  // only to bring back a result or an error count.
  m.attr("cuda_status_bytes") = wsc::cuda::kStatusBytes;

  m.def(
      "cuda_range",
      [](std::uintptr_t x, int dtype, int64_t n, std::uintptr_t status, int device,
         std::uintptr_t stream) {
        wsc::Range r;
        {
          py::gil_scoped_release release;
          r = wsc::cuda::range(ptr<const void>(x), wsc::DType(dtype), n, ptr<void>(status), device,
                               stream);
        }
        return py::make_tuple(r.lo, r.hi);
      },
      py::arg("x"), py::arg("dtype"), py::arg("n"), py::arg("status"), py::arg("device"),
      py::arg("stream"),
      "(lo, hi) of n elements at device address x; raises ValueError on NaN/Inf.");

  m.def(
      "cuda_bin_uniform",
      [](std::uintptr_t x, int dtype, int64_t n, float lo, float hi, int64_t k, std::uintptr_t idx,
         int itype, std::uintptr_t counts, std::uintptr_t sums, std::uintptr_t status, int device,
         std::uintptr_t stream) {
        py::gil_scoped_release release;
        wsc::cuda::bin_uniform(ptr<const void>(x), wsc::DType(dtype), n, lo, hi, k, ptr<void>(idx),
                               wsc::IndexType(itype), ptr<int64_t>(counts), ptr<double>(sums),
                               ptr<void>(status), device, stream);
      },
      py::arg("x"), py::arg("dtype"), py::arg("n"), py::arg("lo"), py::arg("hi"), py::arg("k"),
      py::arg("idx"), py::arg("itype"), py::arg("counts"), py::arg("sums"), py::arg("status"),
      py::arg("device"), py::arg("stream"),
      "Uniform binning on the GPU into idx with per-bin counts (int64) and sums (float64).");

  m.def(
      "cuda_gather",
      [](std::uintptr_t idx, int itype, int64_t n, std::uintptr_t codebook, int64_t k,
         std::uintptr_t out, int out_dtype, std::uintptr_t status, int device,
         std::uintptr_t stream) {
        py::gil_scoped_release release;
        wsc::cuda::gather(ptr<const void>(idx), wsc::IndexType(itype), n,
                          ptr<const float>(codebook), k, ptr<void>(out), wsc::DType(out_dtype),
                          ptr<void>(status), device, stream);
      },
      py::arg("idx"), py::arg("itype"), py::arg("n"), py::arg("codebook"), py::arg("k"),
      py::arg("out"), py::arg("out_dtype"), py::arg("status"), py::arg("device"), py::arg("stream"),
      "out[i] = codebook[idx[i]] on the GPU.");

  m.def(
      "cuda_share",
      [](std::uintptr_t x, int dtype, int64_t n, float lo, float hi, std::uintptr_t codebook,
         int64_t k, std::uintptr_t out, int out_dtype, std::uintptr_t status, int device,
         std::uintptr_t stream) {
        py::gil_scoped_release release;
        wsc::cuda::share(ptr<const void>(x), wsc::DType(dtype), n, lo, hi,
                         ptr<const float>(codebook), k, ptr<void>(out), wsc::DType(out_dtype),
                         ptr<void>(status), device, stream);
      },
      py::arg("x"), py::arg("dtype"), py::arg("n"), py::arg("lo"), py::arg("hi"),
      py::arg("codebook"), py::arg("k"), py::arg("out"), py::arg("out_dtype"), py::arg("status"),
      py::arg("device"), py::arg("stream"),
      "out[i] = codebook[bin(x[i])] on the GPU (fused quantize-dequantize).");

  m.def("cuda_huffman_workspace_bytes", &wsc::cuda::huffman_workspace_bytes, py::arg("k"),
        "Bytes of device workspace cuda_huffman_decode/_gather need for k symbols.");

  m.def(
      "cuda_huffman_decode",
      [](std::uintptr_t data, int64_t size, std::uintptr_t chunk_offsets, int64_t n_chunks,
         std::uintptr_t lengths, int64_t k, int64_t n, int64_t chunk_size, std::uintptr_t idx,
         int itype, std::uintptr_t workspace, std::uintptr_t status, int device,
         std::uintptr_t stream) {
        py::gil_scoped_release release;
        wsc::cuda::huffman_decode(ptr<const uint8_t>(data), size, ptr<const int64_t>(chunk_offsets),
                                  n_chunks, ptr<const uint8_t>(lengths), k, n, chunk_size,
                                  ptr<void>(idx), wsc::IndexType(itype), ptr<void>(workspace),
                                  ptr<void>(status), device, stream);
      },
      py::arg("data"), py::arg("size"), py::arg("chunk_offsets"), py::arg("n_chunks"),
      py::arg("lengths"), py::arg("k"), py::arg("n"), py::arg("chunk_size"), py::arg("idx"),
      py::arg("itype"), py::arg("workspace"), py::arg("status"), py::arg("device"),
      py::arg("stream"),
      "Decodes a chunked Huffman payload on the GPU into indices (lengths: HOST address; the rest "
      "device).");

  m.def(
      "cuda_huffman_decode_gather",
      [](std::uintptr_t data, int64_t size, std::uintptr_t chunk_offsets, int64_t n_chunks,
         std::uintptr_t lengths, int64_t k, int64_t n, int64_t chunk_size, std::uintptr_t codebook,
         int64_t m, std::uintptr_t out, int out_dtype, std::uintptr_t workspace,
         std::uintptr_t status, int device, std::uintptr_t stream) {
        py::gil_scoped_release release;
        return wsc::cuda::huffman_decode_gather(
            ptr<const uint8_t>(data), size, ptr<const int64_t>(chunk_offsets), n_chunks,
            ptr<const uint8_t>(lengths), k, n, chunk_size, ptr<const float>(codebook), m,
            ptr<void>(out), wsc::DType(out_dtype), ptr<void>(workspace), ptr<void>(status), device,
            stream);
      },
      py::arg("data"), py::arg("size"), py::arg("chunk_offsets"), py::arg("n_chunks"),
      py::arg("lengths"), py::arg("k"), py::arg("n"), py::arg("chunk_size"), py::arg("codebook"),
      py::arg("m"), py::arg("out"), py::arg("out_dtype"), py::arg("workspace"), py::arg("status"),
      py::arg("device"), py::arg("stream"),
      "Decodes a chunked Huffman payload on the GPU straight into codebook values (fused gather); "
      "returns the payload bits.");

  m.def(
      "cuda_huffman_decode_on_host",
      [](std::uintptr_t data, int64_t size, std::uintptr_t chunk_offsets, int64_t n_chunks,
         std::uintptr_t lengths, int64_t k, int64_t n, int64_t chunk_size, std::uintptr_t idx) {
        return wsc::cuda::huffman_decode_on_host(
            ptr<const uint8_t>(data), size, ptr<const int64_t>(chunk_offsets), n_chunks,
            ptr<const uint8_t>(lengths), k, n, chunk_size, ptr<uint16_t>(idx));
      },
      py::arg("data"), py::arg("size"), py::arg("chunk_offsets"), py::arg("n_chunks"),
      py::arg("lengths"), py::arg("k"), py::arg("n"), py::arg("chunk_size"), py::arg("idx"),
      "Test hook: the CUDA chunk decoder run on the host (host arrays, uint16 output).");

  m.def(
      "cuda_bin_rule_on_host",
      [](std::uintptr_t x, int64_t n, float lo, float hi, int64_t k, std::uintptr_t out) {
        wsc::cuda::bin_rule_on_host(ptr<const float>(x), n, lo, hi, k, ptr<int32_t>(out));
      },
      py::arg("x"), py::arg("n"), py::arg("lo"), py::arg("hi"), py::arg("k"), py::arg("out"),
      "Test hook: the CUDA kernels' binning rule run on the host (float32 x, int32 out, host "
      "memory).");
#endif
}
