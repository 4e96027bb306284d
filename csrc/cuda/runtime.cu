// Device discovery that never throws: the extension imports and reports "no device" on a
// machine without a GPU or driver (the CUDA runtime is linked statically).
#include <cuda_runtime.h>

#include <string>

#include "wsc/cuda.h"

namespace wsc {
namespace cuda {

int device_count() noexcept {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n;
}

std::string runtime_info() noexcept {
  try {
    int runtime = 0, driver = 0, n = 0;
    (void)cudaRuntimeGetVersion(&runtime);
    (void)cudaDriverGetVersion(&driver);  // 0 when no driver is installed
    std::string s =
        "CUDA runtime " + std::to_string(runtime / 1000) + "." +
        std::to_string(runtime % 1000 / 10) + " (linked statically), driver supports " +
        (driver ? std::to_string(driver / 1000) + "." + std::to_string(driver % 1000 / 10)
                : "none") +
        ", ";
    const cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess) {
      (void)cudaGetLastError();
      return s + "no usable device (" + cudaGetErrorName(err) + ": " + cudaGetErrorString(err) +
             ")";
    }
    s += std::to_string(n) + " device(s)";
    for (int d = 0; d < n; ++d) {
      cudaDeviceProp prop;
      if (cudaGetDeviceProperties(&prop, d) == cudaSuccess)
        s += "; " + std::to_string(d) + ": " + prop.name + " (sm_" + std::to_string(prop.major) +
             std::to_string(prop.minor) + ")";
    }
    return s;
  } catch (...) {
    return "CUDA runtime information unavailable";
  }
}

}  // namespace cuda
}  // namespace wsc
