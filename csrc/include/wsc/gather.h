// Codebook gather and fused share (quantize-dequantize).
#pragma once
#include <cstdint>

#include "wsc/common.h"

namespace wsc {

// out[i] = codebook[idx[i]] converted to out_dtype. Throws std::invalid_argument if any
// index is >= k (the read is clamped first, so a bad index never reads out of bounds).
void gather(const void* idx, IndexType itype, int64_t n, const float* codebook, int64_t k,
            void* out, DType out_dtype);

// gather() for 4-bit indices packed two per byte (element 2j in the low nibble of byte j,
// ceil(n / 2) bytes): halves the memory of compact layers whose codebook has <= 16 values.
void gather_u4(const uint8_t* packed, int64_t n, const float* codebook, int64_t k, void* out,
               DType out_dtype);

// out[i] = codebook[bin(x[i])] with bin() the uniform-binning rule of wsc/binning.h.
// codebook holds k values; throws on NaN/Inf in x.
void share(const void* x, DType dtype, int64_t n, float lo, float hi, const float* codebook,
           int64_t k, void* out, DType out_dtype);

}  // namespace wsc
