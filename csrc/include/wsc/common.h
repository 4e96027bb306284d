// Shared vocabulary of the torch-free kernels: element types and the dtype codes
// that cross the binding boundary.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

namespace wsc {

// Floating element types the kernels read and write. Values match wsc/_native.py.
enum class DType : int { F32 = 0, F16 = 1, BF16 = 2 };

// Index element types: uint8 for k <= 256, uint16 for k <= 65536.
enum class IndexType : int { U8 = 0, U16 = 1 };

constexpr int64_t kMinBins = 2;
constexpr int64_t kMaxBins = 65536;

inline int64_t dtype_size(DType t) { return t == DType::F32 ? 4 : 2; }
inline int64_t index_size(IndexType t) { return t == IndexType::U8 ? 1 : 2; }

// Throws std::invalid_argument (ValueError in Python) unless cond holds.
inline void check(bool cond, const std::string& message) {
  if (!cond) throw std::invalid_argument(message);
}

}  // namespace wsc
