// CPU feature detection behind wsc::simd_level.
#include "wsc/simd.h"

#include <algorithm>
#include <atomic>

#include "simd_arch.h"

namespace wsc {
namespace {

SimdLevel detect() {
#if WSC_X86_SIMD
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
    return SimdLevel::Avx512;
  if (__builtin_cpu_supports("avx2")) return SimdLevel::Avx2;
#endif
  return SimdLevel::Scalar;
}

const SimdLevel g_supported = detect();
std::atomic<int> g_level{int(g_supported)};

}  // namespace

SimdLevel simd_supported() { return g_supported; }

SimdLevel simd_level() { return SimdLevel(g_level.load(std::memory_order_relaxed)); }

SimdLevel set_simd_level(SimdLevel cap) {
  g_level.store(std::min(int(cap), int(g_supported)));
  return simd_level();
}

}  // namespace wsc
