"""Chunked static-model rANS coding of index streams (uint8/uint16 codebook indices).

``encode`` quantises the symbol counts to frequencies with a power-of-two total (every used
symbol at least 1), choosing the precision ``scale_bits`` and the model (exact, or the rare
symbols beside a dominant one on a coarse grid that packs in a few bits each) so that the
payload plus the packed table cost no more than 0.01% over the best precision in range; it
cuts the stream into chunks that decode independently, each with eight interleaved 32-bit
states (fewer, down to one, where flushing eight would weigh on a short or low-entropy
stream), and records their byte offsets, so ``decode`` runs chunks in parallel. Unlike
Huffman, a symbol costs a fraction of a bit when it is frequent: the payload comes within a
fraction of a percent of the order-0 entropy.

The format is described in ``csrc/include/wsc/rans.h``; ``wsc.reference.rans_encode`` writes
the same bytes in plain Python.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from wsc._arrays import (
    FLOAT_CODES, ChunkedStream, as_tensor, check_bins, check_tensor, checked_array, counts_of,
    decode_target, index_array, int_in)
from wsc._native import U8, _C

MIN_SCALE_BITS = 1
MAX_SCALE_BITS = int(_C.rans_max_scale)
MAX_STATES = int(_C.rans_states)
STATE_COUNTS = (8, 4, 2, 1)  # states per chunk a stream may use, the fastest first
STATE_LOW = int(_C.rans_low)
GRIDS = 32  # level grids of the packed table
TABLE_ENCODING = 2  # of pack_freqs; .wsc version 2 files hold encoding 1
MAX_CHUNK = 1 << 22  # symbols per chunk: bounds what a reader allocates per 4 bytes of payload (one state)
FLUSH_SHARE = 1e-3  # the automatic layout keeps the states' flush below this share of the payload
LONG_STREAM = 1 << 22  # symbols; a longer stream keeps MIN_LONG_STATES (4 decode about as fast as 8)
MIN_LONG_STATES = 4


@dataclass(frozen=True)
class RansStream(ChunkedStream):
    """An encoded index stream: payload, quantised frequencies and chunk offsets.

    ``data``: the payload (uint8). ``freqs``: the frequency of each of the k symbols
    (uint32, summing to ``2 ** scale_bits``; 0 for unused ones). ``chunk_offsets``: byte
    offset of each chunk (int64, n_chunks + 1 entries, the first 0, the last len(data)).
    ``n_symbols``: how many indices were coded. ``chunk_size``: symbols per chunk (the last
    chunk may hold fewer). ``scale_bits``: the precision of the frequencies. ``states``:
    interleaved 32-bit states per chunk (1, 2, 4 or 8), flushed at the chunk's start.
    """

    data: np.ndarray
    freqs: np.ndarray
    chunk_offsets: np.ndarray
    n_symbols: int
    chunk_size: int
    scale_bits: int
    states: int

    @property
    def k(self) -> int:
        """Alphabet size."""
        return int(self.freqs.size)

    @property
    def table_bytes(self) -> int:
        """Size of the frequency table as a .wsc file stores it (``pack_freqs``)."""
        freqs = checked_array(self.freqs, "stream.freqs", np.uint32)
        return int(_C.rans_packed_size(freqs.ctypes.data, freqs.size, int(self.scale_bits)))


# ---------------------------------------------------------------- the model
def _counts_array(counts) -> np.ndarray:
    if isinstance(counts, (int, np.integer)):
        raise TypeError("counts must be an integer array of counts, got int")
    return counts_of(counts, 0, U8, 0, "counts")


def _model(scale_bits, grid, counts: np.ndarray) -> tuple[int, int]:
    """(scale_bits, grid) to use: ``scale_bits`` checked against the used symbols (with
    ``grid``, None for the exact model), or the automatic choice when it is None."""
    if scale_bits is None:
        if grid is not None:
            raise ValueError("grid needs scale_bits")
        return tuple(int(v) for v in _C.rans_choose_scale(counts.ctypes.data, counts.size))
    scale_bits = int_in(scale_bits, "scale_bits", MIN_SCALE_BITS, MAX_SCALE_BITS)
    used = max(int(np.count_nonzero(counts)), 1)
    if used > 1 << scale_bits:
        raise ValueError(f"scale_bits {scale_bits} is too small for {used} used symbols "
                         f"(needs >= {math.ceil(math.log2(used))})")
    return scale_bits, -1 if grid is None else int_in(grid, "grid", 0, GRIDS - 1)


def _quantize(counts: np.ndarray, scale_bits: int, grid: int) -> np.ndarray:
    freqs = np.empty(counts.size, dtype=np.uint32)
    if grid < 0:
        _C.rans_quantize_freqs(counts.ctypes.data, counts.size, scale_bits, freqs.ctypes.data)
    elif not _C.rans_quantize_grid(counts.ctypes.data, counts.size, scale_bits, grid, freqs.ctypes.data):
        raise ValueError(f"grid {grid} cannot hold counts at scale_bits {scale_bits}: the symbol of "
                         "largest count would not keep the largest frequency")
    return freqs


def choose_model(counts) -> tuple[int, int]:
    """(scale_bits, grid) that ``encode`` picks for ``counts``; grid -1 is the exact model.

    Per precision, the exact model or, when one symbol holds at least half of the counts, a
    level grid (the rare symbols on a coarse square-root scale, so that the packed table costs
    a few bits per symbol), whichever codes smaller (payload plus packed table); then the
    smallest precision in [max(1, ceil(log2(used))), 16] within 0.01% of the best in that
    range, up to 20 when that codes more than 0.1% smaller (rare symbols beside very frequent
    ones, or more than 2^16 used symbols)."""
    counts = _counts_array(counts)
    return _model(None, None, counts)


def quantize_freqs(counts, scale_bits: int | None = None, grid: int | None = None) -> tuple[np.ndarray, int]:
    """(frequencies uint32[k] summing to 2**scale_bits, scale_bits) for ``counts``.

    Every symbol with a count gets at least 1. ``scale_bits``: 1..20, or None for the model
    :func:`choose_model` picks. ``grid``: None (the exact model: the rounding corrected one
    unit at a time where it costs least) or a level grid 0..31 (every used symbol but the one
    of largest count on the grid, at the level that costs least in payload and table, that
    one takes the rest; ValueError where it cannot).
    """
    counts = _counts_array(counts)
    scale_bits, grid = _model(scale_bits, grid, counts)
    return _quantize(counts, scale_bits, grid), scale_bits


def pack_freqs(freqs, scale_bits: int) -> np.ndarray:
    """The frequency table as a .wsc file stores it (uint8, table encoding 2): exp-Golomb
    codes of the frequencies or of the steps between grid levels, zero runs; the smallest."""
    freqs = checked_array(freqs, "freqs", np.uint32)
    check_bins(freqs.size, "len(freqs)")
    scale_bits = int_in(scale_bits, "scale_bits", MIN_SCALE_BITS, MAX_SCALE_BITS)
    size = _C.rans_packed_size(freqs.ctypes.data, freqs.size, scale_bits)
    out = np.empty(size, dtype=np.uint8)
    _C.rans_pack_freqs(freqs.ctypes.data, freqs.size, scale_bits, out.ctypes.data, size)
    return out


def unpack_freqs(data, k: int, encoding: int = TABLE_ENCODING) -> tuple[np.ndarray, int]:
    """(freqs uint32[k], scale_bits) of a packed table in ``encoding`` 2 (``pack_freqs``) or 1
    (what .wsc version 2 files hold); ValueError on any inconsistency."""
    data = checked_array(data, "data", np.uint8)
    k = check_bins(k)
    encoding = int_in(encoding, "encoding", 1, TABLE_ENCODING)
    freqs = np.empty(k, dtype=np.uint32)
    scale_bits = _C.rans_unpack_freqs(data.ctypes.data, data.size, k, encoding, freqs.ctypes.data)
    return freqs, int(scale_bits)


def _layout(n: int, bits: float, chunk_size: int | None = None) -> tuple[int, int]:
    """(chunk_size, states) for n symbols of ``bits`` bits each: the most states (8, 4, 2, 1)
    whose flush (4 bytes per state and chunk) can stay within FLUSH_SHARE of the payload, with
    the shortest chunk (a power of two in [2**16, 2**22]) that keeps it there, or
    ``chunk_size`` when given; the fewest states in the longest chunk when none can. Streams
    of more than LONG_STREAM symbols keep at least MIN_LONG_STATES, so that they decode fast."""
    sizes = [chunk_size] if chunk_size is not None else [1 << e for e in range(16, 23)]
    fewest = MIN_LONG_STATES if n > LONG_STREAM else 1
    for states in STATE_COUNTS[:STATE_COUNTS.index(fewest) + 1]:
        for chunk in sizes:
            if 32 * states * -(-n // chunk) <= FLUSH_SHARE * n * bits:
                return chunk, states
    return sizes[-1], fewest


def auto_layout(counts, freqs, scale_bits: int, chunk_size: int | None = None) -> tuple[int, int]:
    """(chunk_size, states) that ``encode`` picks for these counts and quantised frequencies:
    eight states per chunk and chunks long enough that their flushed states cost at most 0.1%
    of the payload; fewer states where even the longest chunks (or the whole stream) cannot
    keep eight that cheap, since the flush of one state is about 4 bytes whatever the entropy
    (but at least 4 in streams of more than 2**22 symbols, for speed). ``chunk_size``: given,
    only the states are chosen."""
    counts = np.asarray(counts, dtype=np.float64)
    n, used = counts.sum(), counts > 0
    bits = float((counts[used] * (scale_bits - np.log2(np.asarray(freqs, dtype=np.float64)[used]))).sum())
    return _layout(int(n), bits / max(n, 1), chunk_size)


def estimate_bits(counts) -> int:
    """About the bits ``encode`` codes a histogram in, cheaply (no quantisation): the order-0
    entropy, the flushed states (4 bytes per state and chunk, :func:`auto_layout` with the
    entropy for the payload) and the model, 16 + sum over used symbols of 2 + 0.35 * log2(1 + 256 * c / n)
    bits plus 1 + 2 * log2(1 + mean gap) per run of unused symbols (fitted to the packed table
    and the payload's excess over the entropy: within a factor of about 1.5 from k = 3 to
    4096, 10k to 1M symbols, uniform to one symbol at 99%)."""
    counts = np.asarray(counts, dtype=np.float64).ravel()
    used = counts > 0
    n, u = float(counts.sum()), counts[used]
    if u.size == 0:
        return 0
    p = u / n
    h = float(-(u * np.log2(p)).sum())
    chunk, states = _layout(int(n), h / n)
    flush = 32 * states * math.ceil(n / chunk)
    runs = int(np.count_nonzero(np.diff(used.astype(np.int8)) == 1)) + int(not used[0])
    gap = (counts.size - u.size) / max(runs, 1)
    model = 16 + float((2 + 0.35 * np.log2(1 + 256 * p)).sum()) + runs * (1 + 2 * math.log2(1 + gap))
    return int(math.ceil(h + flush + model))


# ---------------------------------------------------------------- coding
def encode(indices, counts_or_k, *, scale_bits: int | None = None, chunk_size: int | None = None,
           states: int | None = None) -> RansStream:
    """rANS-code the flattened ``indices`` (uint8/uint16, numpy or CPU torch, contiguous).

    ``counts_or_k``: an int k (counts are taken from the indices, which must be < k) or the
    counts of the k symbols (integer array; every symbol present in ``indices`` needs a count
    > 0). ``scale_bits``: precision of the frequencies, 1..20 (the total is 2**scale_bits),
    exact model; None picks the precision and the model (:func:`choose_model`).
    ``chunk_size``: symbols per independently decodable chunk, at most 2**22; ``states``:
    interleaved states per chunk, 1, 2, 4 or 8. None picks them (:func:`auto_layout`: the
    states each chunk starts with cost at most 0.1% of the payload, or as little as they can).
    """
    addr, itype, n = index_array(indices, "indices")
    counts = counts_of(counts_or_k, addr, itype, n)
    k = counts.size
    if n > 0 and not counts.any():
        raise ValueError("counts_or_k has no non-zero count, but indices is not empty")
    scale_bits, grid = _model(scale_bits, None, counts)
    freqs = _quantize(counts, scale_bits, grid)
    if chunk_size is not None:
        chunk_size = int_in(chunk_size, "chunk_size", 1, MAX_CHUNK)
    if states is None:
        chunk_size, states = auto_layout(counts, freqs, scale_bits, chunk_size)
    elif states not in STATE_COUNTS:
        raise ValueError(f"states must be one of {sorted(STATE_COUNTS)}; got {states!r}")
    elif chunk_size is None:
        chunk_size = auto_layout(counts, freqs, scale_bits)[0]
    n_chunks = -(-n // chunk_size)
    offsets = np.empty(n_chunks + 1, dtype=np.int64)
    buf = np.empty(_C.rans_encode_bound(n, chunk_size), dtype=np.uint8)
    size = _C.rans_encode(addr, itype, n, freqs.ctypes.data, k, scale_bits, states, chunk_size,
                          offsets.ctypes.data, buf.ctypes.data, buf.size)
    data = buf[:size].copy()
    del buf
    for a in (data, freqs, offsets):
        a.flags.writeable = False
    return RansStream(data, freqs, offsets, n, chunk_size, scale_bits, states)


def _check_stream(stream) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Contiguous (data, freqs, chunk_offsets) of a structurally valid stream."""
    if not isinstance(stream, RansStream):
        raise TypeError(f"stream must be a RansStream, got {type(stream).__name__}")
    freqs = checked_array(stream.freqs, "stream.freqs", np.uint32)
    check_bins(freqs.size, "stream.k")
    int_in(stream.scale_bits, "stream.scale_bits", MIN_SCALE_BITS, MAX_SCALE_BITS)
    if stream.states not in STATE_COUNTS:
        raise ValueError(f"stream.states must be one of {sorted(STATE_COUNTS)}; got {stream.states!r}")
    data, offsets = stream.checked_chunks(MAX_CHUNK)
    return data, freqs, offsets


def decode(stream: RansStream, out=None):
    """Decode ``stream`` into a new 1-D numpy array of ``stream.index_dtype``, or into ``out``.

    ``out``: numpy array or CPU torch tensor, contiguous, ``stream.n_symbols`` elements,
    uint8 (only for k <= 256) or uint16. Corrupt or inconsistent streams raise ValueError.
    """
    data, freqs, offsets = _check_stream(stream)
    n, k = int(stream.n_symbols), freqs.size
    result, addr, itype = decode_target(out, n, k)
    _C.rans_decode(data.ctypes.data, data.size, offsets.ctypes.data, offsets.size - 1, freqs.ctypes.data, k,
                   int(stream.scale_bits), int(stream.states), n, int(stream.chunk_size), addr, itype)
    return result


def decode_gather(stream: RansStream, codebook, out=None, dtype: torch.dtype = torch.float32):
    """``codebook[decode(stream)]`` in one fused pass, never holding the index array.

    Returns a new 1-D tensor of ``dtype`` (float32/float16/bfloat16), or fills ``out`` (a
    contiguous CPU tensor or numpy array with ``stream.n_symbols`` elements) and returns it.
    A symbol with a frequency but no codebook value raises ValueError.
    """
    data, freqs, offsets = _check_stream(stream)
    cb, _ = as_tensor(codebook, "codebook")
    check_tensor(cb, "codebook", (torch.float32,))
    if cb.dim() != 1 or not 1 <= cb.numel() <= 65536:
        raise ValueError(f"codebook must be 1-D with 1 to 65536 values; got shape {tuple(cb.shape)}")
    n = int(stream.n_symbols)
    if out is None:
        if dtype not in FLOAT_CODES:
            raise TypeError(f"dtype must be torch.float32, torch.float16 or torch.bfloat16; got {dtype}")
        target = result = torch.empty(n, dtype=dtype)
    else:
        target, _ = as_tensor(out, "out")
        check_tensor(target, "out", tuple(FLOAT_CODES))
        if target.numel() != n:
            raise ValueError(f"out must have stream.n_symbols = {n} elements; got {target.numel()}")
        result = out
    _C.rans_decode_gather(data.ctypes.data, data.size, offsets.ctypes.data, offsets.size - 1, freqs.ctypes.data,
                          freqs.size, int(stream.scale_bits), int(stream.states), n, int(stream.chunk_size), cb.data_ptr(), cb.numel(),
                          target.data_ptr(), FLOAT_CODES[target.dtype])
    return result


__all__ = ["RansStream", "encode", "decode", "decode_gather", "quantize_freqs", "choose_model", "pack_freqs",
           "unpack_freqs", "auto_layout", "estimate_bits", "MIN_SCALE_BITS", "MAX_SCALE_BITS", "GRIDS", "TABLE_ENCODING", "MAX_STATES",
           "STATE_COUNTS", "STATE_LOW", "MAX_CHUNK"]
