// Codebook gather: indices -> float32/float16/bfloat16 values.
#include "wsc/gather.h"

#include <algorithm>
#include <string>
#include <vector>

#include "lookup.h"
#include "wsc/half.h"
#include "wsc/parallel.h"

namespace wsc {
namespace {

// Indices as uint8/uint16 arrays: blocks are read in place.
template <class I>
struct Plain {
  using Index = I;
  const I* p;
  const I* block(int64_t s, int64_t, I*) const { return p + s; }
};

// 4-bit indices packed two per byte, element 2j in the low nibble of byte j: a block is
// unpacked into one byte per index, so it takes the uint8 lookups.
struct Nibbles {
  using Index = uint8_t;
  const uint8_t* p;
  const uint8_t* block(int64_t s, int64_t m, uint8_t* buf) const {
    int64_t i = 0;
    if (s & 1) buf[i++] = p[s >> 1] >> 4;
    const uint8_t* byte = p + ((s + i) >> 1);
    for (; i + 2 <= m; i += 2, ++byte) {
      buf[i] = *byte & 15u;
      buf[i + 1] = *byte >> 4;
    }
    if (i < m) buf[i] = *byte & 15u;
    return buf;
  }
};

// Blocks of indices are first checked (a vectorised max), then looked up without a bound
// test per element; a block with an index >= k is counted and never gathered.
constexpr int64_t kGatherBlock = 4096;

template <class Src, class O>
void gather_typed(Src src, int64_t n, const O* table, int64_t k, O* out) {
  using I = typename Src::Index;
  const detail::Lookup<O> lookup(table, k, n);
  const int64_t nb = num_blocks(n, 1 << 16);
  std::vector<int64_t> bad(size_t(std::max<int64_t>(nb, 1)), 0);
  const uint32_t top = uint32_t(k - 1);
  parallel_for(nb, [&](int64_t b) {
    int64_t s = n * b / nb, e = n * (b + 1) / nb;
    int64_t nbad = 0;
    I buf[kGatherBlock];
    for (int64_t p = s; p < e; p += kGatherBlock) {
      const int64_t m = std::min(e - p, kGatherBlock);
      const I* idx = src.block(p, m, buf);
      uint32_t most = 0;
      for (int64_t i = 0; i < m; ++i) most = std::max(most, uint32_t(idx[i]));
      if (most > top) {
        for (int64_t i = 0; i < m; ++i) nbad += idx[i] > top;
        continue;
      }
      lookup(idx, m, out + p);
    }
    lookup.finish();
    bad[size_t(b)] = nbad;
  });
  int64_t total = 0;
  for (int64_t v : bad) total += v;
  check(total == 0, "gather: " + std::to_string(total) + " index value(s) >= codebook size " +
                        std::to_string(k));
}

template <class O>
void gather_out(const void* idx, IndexType itype, int64_t n, const float* codebook, int64_t k,
                void* out) {
  std::vector<O> table = codebook_as<O>(codebook, k);
  if (itype == IndexType::U8)
    gather_typed(Plain<uint8_t>{static_cast<const uint8_t*>(idx)}, n, table.data(), k,
                 static_cast<O*>(out));
  else
    gather_typed(Plain<uint16_t>{static_cast<const uint16_t*>(idx)}, n, table.data(), k,
                 static_cast<O*>(out));
}

template <class O>
void gather_u4_out(const uint8_t* packed, int64_t n, const float* codebook, int64_t k, void* out) {
  std::vector<O> table = codebook_as<O>(codebook, k);
  gather_typed(Nibbles{packed}, n, table.data(), k, static_cast<O*>(out));
}

}  // namespace

void gather(const void* idx, IndexType itype, int64_t n, const float* codebook, int64_t k,
            void* out, DType out_dtype) {
  check(k >= 1 && k <= kMaxBins, "gather: codebook size must be in [1, 65536]");
  switch (out_dtype) {
    case DType::F32: gather_out<float>(idx, itype, n, codebook, k, out); break;
    case DType::F16: gather_out<F16>(idx, itype, n, codebook, k, out); break;
    case DType::BF16: gather_out<BF16>(idx, itype, n, codebook, k, out); break;
  }
}

void gather_u4(const uint8_t* packed, int64_t n, const float* codebook, int64_t k, void* out,
               DType out_dtype) {
  check(k >= 1 && k <= 16, "gather_u4: codebook size must be in [1, 16]");
  switch (out_dtype) {
    case DType::F32: gather_u4_out<float>(packed, n, codebook, k, out); break;
    case DType::F16: gather_u4_out<F16>(packed, n, codebook, k, out); break;
    case DType::BF16: gather_u4_out<BF16>(packed, n, codebook, k, out); break;
  }
}

}  // namespace wsc
