"""Plain numpy versions of every native kernel: the oracles the tests compare against.

Inputs are numpy arrays (float16 is numpy's; bfloat16 callers pass float32 values that
are exactly representable in bfloat16). Slow and obvious on purpose.
"""

from __future__ import annotations

import builtins

import numpy as np


def range(x: np.ndarray) -> tuple[float, float]:  # noqa: A001 - mirrors the kernel's name
    """(min, max) of x; ValueError on empty input or NaN/Inf."""
    x = np.asarray(x, dtype=np.float32).ravel()
    if x.size == 0:
        raise ValueError("x is empty")
    bad = ~np.isfinite(x)
    if bad.any():
        raise ValueError(f"x contains {int(bad.sum())} NaN/Inf value(s); first at {int(np.argmax(bad))}")
    return float(x.min()), float(x.max())


def bin_index(x: np.ndarray, lo: float, hi: float, k: int) -> np.ndarray:
    """The binning rule in float64: clamp(floor((x - lo) / ((hi - lo) / k)), 0, k - 1) as int64."""
    x64 = np.asarray(x, dtype=np.float32).astype(np.float64).ravel()
    lo64, hi64 = float(np.float32(lo)), float(np.float32(hi))
    width = (hi64 - lo64) / k
    if width == 0.0:
        return np.zeros(x64.shape, dtype=np.int64)
    t = np.floor((x64 - lo64) / width)
    return np.clip(t, 0, k - 1).astype(np.int64)


def bin_uniform(x: np.ndarray, k: int, lo: float, hi: float):
    """(indices uint8/uint16, counts int64[k], sums float64[k]) of k equal bins over [lo, hi]."""
    x = np.asarray(x)
    idx = bin_index(x, lo, hi, k)
    vals = x.astype(np.float64).ravel()
    counts = np.bincount(idx, minlength=k).astype(np.int64)
    sums = np.bincount(idx, weights=vals, minlength=k)
    itype = np.uint8 if k <= 256 else np.uint16
    return idx.astype(itype).reshape(x.shape), counts, sums


def gather(indices: np.ndarray, codebook: np.ndarray, dtype=np.float32) -> np.ndarray:
    """codebook[indices] (float32 codebook, result cast to ``dtype``)."""
    cb = np.asarray(codebook, dtype=np.float32)
    idx = np.asarray(indices)
    if idx.size and int(idx.max()) >= cb.size:
        raise ValueError("index >= codebook size")
    return cb[idx.astype(np.int64)].astype(dtype)


def share(x: np.ndarray, lo: float, hi: float, codebook: np.ndarray) -> np.ndarray:
    """codebook[bin(x)] with len(codebook) bins over [lo, hi], in x's dtype."""
    x = np.asarray(x)
    k = len(codebook)
    idx = bin_index(x, lo, hi, k).reshape(x.shape)
    return np.asarray(codebook, dtype=np.float32)[idx].astype(x.dtype)


# ---------------------------------------------------------------- Huffman
# The stream format is the one of csrc/include/wsc/huffman.h: canonical codes, MSB first,
# chunks of chunk_size symbols each padded with zero bits to a byte boundary.

HUFFMAN_MAX_LEN = 32
_range = builtins.range  # this module defines its own range()


def huffman_code_lengths(counts, max_len: int) -> np.ndarray:
    """Optimal code lengths (uint8) under ``max_len`` by package-merge; ties as in the kernel.

    Symbols are ordered by (count, value); at equal weight a leaf comes before a package.
    Unused symbols get 0, a single used symbol gets 1.
    """
    counts = np.asarray(counts, dtype=np.int64).ravel()
    if (counts < 0).any():
        raise ValueError("counts must be >= 0")
    lengths = np.zeros(counts.size, dtype=np.uint8)
    syms = np.flatnonzero(counts > 0)
    n = syms.size
    if n == 0:
        return lengths
    if n == 1:
        lengths[syms[0]] = 1
        return lengths
    if n > 2**max_len:
        raise ValueError(f"max_len {max_len} allows at most {2**max_len} used symbols, got {n}")
    order = syms[np.argsort(counts[syms], kind="stable")]
    leaf = counts[order]
    items = leaf
    is_leaf = {max_len: np.ones(n, dtype=bool)}
    for d in _range(max_len - 1, 0, -1):
        m = items.size // 2 * 2
        packages = items[0:m:2] + items[1:m:2]
        merged = np.concatenate([leaf, packages])
        flags = np.concatenate([np.ones(n, dtype=bool), np.zeros(packages.size, dtype=bool)])
        o = np.argsort(merged, kind="stable")  # leaves first in the concatenation: they win ties
        items, is_leaf[d] = merged[o], flags[o]
    depth = np.zeros(n, dtype=np.int64)
    take = 2 * n - 2
    for d in _range(1, max_len + 1):
        if take == 0:
            break
        leaves = int(np.count_nonzero(is_leaf[d][:take]))
        depth[:leaves] += 1
        take = 2 * (take - leaves)
    lengths[order] = depth
    return lengths


def huffman_lengths_unlimited(counts) -> np.ndarray:
    """Classic heap Huffman code lengths (no limit): the optimum package-merge must match in cost."""
    import heapq

    counts = np.asarray(counts, dtype=np.int64).ravel()
    lengths = np.zeros(counts.size, dtype=np.int64)
    heap = [(int(c), i, [i]) for i, c in enumerate(counts) if c > 0]
    if len(heap) == 1:
        lengths[heap[0][2][0]] = 1
    heapq.heapify(heap)
    tie = counts.size
    while len(heap) > 1:
        w1, _, s1 = heapq.heappop(heap)
        w2, _, s2 = heapq.heappop(heap)
        lengths[s1 + s2] += 1
        heapq.heappush(heap, (w1 + w2, tie, s1 + s2))
        tie += 1
    return lengths


def check_huffman_lengths(lengths) -> None:
    """ValueError unless lengths form a complete code, one symbol of length 1, or no symbol."""
    lengths = np.asarray(lengths).astype(np.int64)
    used = lengths[lengths > 0]
    if (used > HUFFMAN_MAX_LEN).any():
        raise ValueError("code length exceeds the maximum of 32")
    if used.size == 1:
        if used[0] != 1:
            raise ValueError("a single used symbol must have code length 1")
        return
    kraft = sum(1 << (HUFFMAN_MAX_LEN - int(v)) for v in used)
    if used.size and kraft != 1 << HUFFMAN_MAX_LEN:
        raise ValueError("code lengths are not a complete prefix code")


def canonical_codes(lengths) -> np.ndarray:
    """Canonical codes (uint64, right-aligned; 0 for unused symbols): by (length, value), from 0."""
    lengths = np.asarray(lengths).astype(np.int64)
    codes = np.zeros(lengths.size, dtype=np.uint64)
    code, prev = 0, 0
    for sym in sorted(np.flatnonzero(lengths > 0), key=lambda s: (lengths[s], s)):
        code <<= int(lengths[sym]) - prev
        prev = int(lengths[sym])
        codes[sym] = code
        code += 1
    return codes


def huffman_encode(indices, lengths, chunk_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(payload uint8, chunk byte offsets int64[n_chunks + 1]) of the flattened indices."""
    lengths = np.asarray(lengths).astype(np.int64)
    check_huffman_lengths(lengths)
    idx = np.asarray(indices).ravel().astype(np.int64)
    n = idx.size
    n_chunks = -(-n // chunk_size)
    if n and (idx.max() >= lengths.size or (lengths[np.minimum(idx, lengths.size - 1)] == 0).any()):
        raise ValueError("indices hold a symbol without a code")
    codes = canonical_codes(lengths).astype(np.int64)
    lens, cds = lengths[idx], codes[idx]
    # Bits of every code, most significant first, in blocks to bound memory.
    parts = []
    for s in np.arange(0, n, 1 << 16):
        ln, cd = lens[s : s + (1 << 16)], cds[s : s + (1 << 16)]
        shift = ln[:, None] - 1 - np.arange(int(ln.max()))[None, :]
        parts.append(((cd[:, None] >> np.maximum(shift, 0)) & 1)[shift >= 0].astype(np.uint8))
    bits = np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint8)
    chunk_bits = np.add.reduceat(lens, np.arange(0, n, chunk_size)) if n else np.zeros(0, np.int64)
    chunk_bytes = (chunk_bits + 7) // 8
    offsets = np.concatenate([[0], np.cumsum(chunk_bytes)]).astype(np.int64)
    # Move every chunk's bits to its byte-aligned start; the gaps stay zero (the padding).
    start = np.concatenate([[0], np.cumsum(chunk_bits)[:-1]]) if n else np.zeros(0, np.int64)
    padded = np.zeros(int(offsets[-1]) * 8, dtype=np.uint8)
    padded[np.arange(bits.size) + np.repeat(offsets[:-1] * 8 - start, chunk_bits)] = bits
    assert offsets.size == n_chunks + 1
    return np.packbits(padded), offsets


def huffman_decode(data, chunk_offsets, lengths, n: int, chunk_size: int) -> np.ndarray:
    """Decode n symbols (uint8 for k <= 256, else uint16); ValueError on any inconsistency."""
    data = np.asarray(data, dtype=np.uint8)
    offsets = np.asarray(chunk_offsets, dtype=np.int64)
    lengths = np.asarray(lengths).astype(np.int64)
    check_huffman_lengths(lengths)
    n_chunks = -(-n // chunk_size)
    if offsets.size != n_chunks + 1 or offsets[0] != 0 or offsets[-1] != data.size:
        raise ValueError("chunk offsets do not match the stream")
    if (np.diff(offsets) < 0).any():
        raise ValueError("chunk offsets decrease")
    codes = canonical_codes(lengths)
    table = {(int(lengths[s]), int(codes[s])): s for s in np.flatnonzero(lengths > 0)}
    max_len = int(lengths.max()) if lengths.size else 0
    out = np.zeros(n, dtype=np.uint8 if lengths.size <= 256 else np.uint16)
    for c in _range(n_chunks):
        bits = np.unpackbits(data[offsets[c] : offsets[c + 1]]).tolist()
        pos = 0
        for i in _range(c * chunk_size, min(n, (c + 1) * chunk_size)):
            value, length = 0, 0
            while (length, value) not in table:
                if length == max_len or pos == len(bits):
                    raise ValueError(f"chunk {c}: no code / runs past the end")
                value, length, pos = value * 2 + bits[pos], length + 1, pos + 1
            out[i] = table[(length, value)]
        if (pos + 7) // 8 != len(bits) // 8 or any(bits[pos:]):
            raise ValueError(f"chunk {c}: unused bytes or non-zero padding")
    return out
