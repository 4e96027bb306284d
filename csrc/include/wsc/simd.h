// Runtime choice of the SIMD kernels: the widest instruction set this CPU supports, or a
// lower one forced by tests (which compare every level bit for bit against the scalar code)
// and benchmarks. The scalar level is the portable code every build and CPU runs.
#pragma once

namespace wsc {

enum class SimdLevel : int { Scalar = 0, Avx2 = 1, Avx512 = 2 };

// Widest level of this CPU and build: Avx512 needs AVX-512 F, BW, DQ and VL, Avx2 needs AVX2
// (x86-64 GCC/Clang builds only; Scalar elsewhere).
SimdLevel simd_supported();

// Level the kernels use now: simd_supported() unless capped by set_simd_level.
SimdLevel simd_level();

// Caps the level (a level above simd_supported() is clamped to it); returns the level in use.
SimdLevel set_simd_level(SimdLevel cap);

}  // namespace wsc
