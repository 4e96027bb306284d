"""Stand-in for wsc.huffman until that branch lands (same API, pure numpy, slow). Test-only."""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class HuffmanStream:
    data: np.ndarray
    lengths: np.ndarray
    chunk_offsets: np.ndarray
    n_symbols: int
    chunk_size: int

    @property
    def k(self):
        return int(self.lengths.size)


def _lengths(counts):
    lengths = np.zeros(len(counts), dtype=np.uint8)
    heap = [(int(c), i, [i]) for i, c in enumerate(counts) if c > 0]
    if len(heap) == 1:
        lengths[heap[0][2][0]] = 1
    heapq.heapify(heap)
    tie = len(counts)
    while len(heap) > 1:
        w1, _, s1 = heapq.heappop(heap)
        w2, _, s2 = heapq.heappop(heap)
        lengths[s1 + s2] += 1
        heapq.heappush(heap, (w1 + w2, tie, s1 + s2))
        tie += 1
    return lengths


def _codes(lengths):
    codes, code, prev = {}, 0, 0
    for s in sorted(np.flatnonzero(lengths), key=lambda s: (lengths[s], s)):
        code <<= int(lengths[s]) - prev
        prev = int(lengths[s])
        codes[int(s)] = code
        code += 1
    return codes


def encode(indices, counts_or_k, *, max_len=None, chunk_size=16384):
    idx = np.asarray(indices).ravel().astype(np.int64)
    k = counts_or_k if isinstance(counts_or_k, int) else len(counts_or_k)
    counts = np.bincount(idx, minlength=k) if isinstance(counts_or_k, int) else np.asarray(counts_or_k)
    lengths = _lengths(counts)
    codes = _codes(lengths)
    chunks, offsets = [], [0]
    for s in range(0, idx.size, chunk_size):
        bits = "".join(format(codes[int(v)], f"0{lengths[v]}b") for v in idx[s:s + chunk_size])
        bits += "0" * (-len(bits) % 8)
        b = bytes(int(bits[i:i + 8], 2) for i in range(0, len(bits), 8))
        chunks.append(b)
        offsets.append(offsets[-1] + len(b))
    return HuffmanStream(np.frombuffer(b"".join(chunks), dtype=np.uint8).copy(), lengths,
                         np.asarray(offsets, dtype=np.int64), int(idx.size), chunk_size)


def decode(stream, out=None):
    lengths = np.asarray(stream.lengths)
    table = {(int(lengths[s]), c): s for s, c in _codes(lengths).items()}
    n, cs = stream.n_symbols, stream.chunk_size
    res = np.zeros(n, dtype=np.uint8 if lengths.size <= 256 else np.uint16)
    offs = np.asarray(stream.chunk_offsets)
    if offs.size != -(-n // cs) + 1 or offs[0] != 0 or offs[-1] != stream.data.size:
        raise ValueError("bad offsets")
    for c in range(offs.size - 1):
        bits = "".join(format(b, "08b") for b in stream.data[offs[c]:offs[c + 1]].tolist())
        pos = 0
        for i in range(c * cs, min(n, (c + 1) * cs)):
            v, ln = 0, 0
            while (ln, v) not in table:
                if ln > 32 or pos >= len(bits):
                    raise ValueError("bad code")
                v, ln, pos = v * 2 + int(bits[pos]), ln + 1, pos + 1
            res[i] = table[(ln, v)]
        if (pos + 7) // 8 != len(bits) // 8 or "1" in bits[pos:]:
            raise ValueError("bad padding")
    return res
