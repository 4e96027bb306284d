"""Chunked canonical Huffman coding of index streams (uint8/uint16 codebook indices).

``encode`` builds optimal code lengths under a length limit (package-merge) from the
symbol counts, cuts the stream into chunks of ``chunk_size`` symbols that each start on a
byte boundary, and records the chunks' byte offsets, so ``decode`` runs chunks in
parallel. The format (canonical codes, most significant bit first, zero padding) is
described in ``csrc/include/wsc/huffman.h``; ``wsc.reference.huffman_encode`` writes the
same bytes in plain numpy.

A single used symbol still costs one bit per symbol (its code is ``0``), so every stream is
a well-defined bitstream; every other code is complete (Kraft sum 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from wsc import _cuda
from wsc._arrays import (
    FLOAT_CODES, ChunkedStream, as_tensor, check_bins, check_device, check_tensor, checked_array,
    counts_of, decode_target, index_array, int_in)
from wsc._native import U8, _C

MAX_LEN = 32
DEFAULT_MAX_LEN = 24
DEFAULT_CHUNK_SIZE = 16384


@dataclass(frozen=True)
class HuffmanStream(ChunkedStream):
    """An encoded index stream: payload, code lengths and chunk offsets.

    ``data``: the payload (uint8). ``lengths``: code length of each of the k symbols (uint8,
    0 for unused ones). ``chunk_offsets``: byte offset of each chunk (int64, n_chunks + 1
    entries, the first 0, the last len(data)). ``n_symbols``: how many indices were coded.
    ``chunk_size``: symbols per chunk (the last chunk may hold fewer).
    """

    data: np.ndarray
    lengths: np.ndarray
    chunk_offsets: np.ndarray
    n_symbols: int
    chunk_size: int

    @property
    def k(self) -> int:
        """Alphabet size."""
        return int(self.lengths.size)


def _target_device(out, device) -> torch.device:
    """Where to decode: ``device`` if given, else out's device (cpu for numpy or no out)."""
    here = out.device if isinstance(out, torch.Tensor) else torch.device("cpu")
    if device is None:
        return here
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    if out is not None and here != device:
        raise ValueError(f"out must be on {device} like device=; got {here}")
    return device


def _cuda_decode(fn: str, stream, data, lengths, offsets, device: torch.device, *args):
    """Upload the payload and offsets to ``device`` and run the CUDA decoder ``fn`` (lengths stay on the host)."""
    data_d = torch.tensor(data, device=device)
    offsets_d = torch.tensor(offsets, device=device)
    k = lengths.size
    workspace = torch.empty(_C.cuda_huffman_workspace_bytes(k), dtype=torch.uint8, device=device)
    return _cuda.launch(fn, device, data_d.data_ptr(), data.size, offsets_d.data_ptr(), offsets.size - 1,
                        lengths.ctypes.data, k, int(stream.n_symbols), int(stream.chunk_size), *args,
                        workspace.data_ptr())


def _max_len(max_len, counts: np.ndarray) -> int:
    """The length limit to use: ``max_len`` checked, or the default."""
    used = int(np.count_nonzero(counts))
    need = max(1, math.ceil(math.log2(used))) if used > 1 else 1
    if max_len is None:
        return max(DEFAULT_MAX_LEN, need)
    max_len = int_in(max_len, "max_len", 1, MAX_LEN)
    if max_len < need:
        raise ValueError(f"max_len {max_len} is too small for {used} used symbols (needs >= {need})")
    return max_len


def histogram(indices, k: int) -> np.ndarray:
    """int64[k]: how often each symbol occurs in ``indices`` (uint8/uint16, contiguous; every
    index must be < k). Native and multi-threaded; no temporary beyond the counts."""
    addr, itype, n = index_array(indices, "indices")
    return counts_of(check_bins(k, "k"), addr, itype, n, "k")


def code_lengths(counts, max_len: int | None = None) -> np.ndarray:
    """Optimal code lengths (uint8, one per symbol) for ``counts`` under ``max_len``.

    Package-merge, so the total ``sum(counts * lengths)`` is the smallest any prefix code
    with codes of at most ``max_len`` bits reaches (equal to Huffman's when the limit does not
    bind). Unused symbols get 0; a single used symbol gets 1.
    """
    if isinstance(counts, (int, np.integer)):
        raise TypeError("counts must be an integer array of counts, got int")
    counts = counts_of(counts, 0, U8, 0, "counts")
    lengths = np.empty(counts.size, dtype=np.uint8)
    _C.huffman_code_lengths(counts.ctypes.data, counts.size, _max_len(max_len, counts), lengths.ctypes.data)
    return lengths


def encode(indices, counts_or_k, *, max_len: int | None = None,
           chunk_size: int = DEFAULT_CHUNK_SIZE) -> HuffmanStream:
    """Huffman-code the flattened ``indices`` (uint8/uint16, numpy or CPU torch, contiguous).

    ``counts_or_k``: an int k (counts are taken from the indices, which must be < k) or the
    counts of the k symbols (integer array; every symbol present in ``indices`` needs a count
    > 0). ``max_len``: longest code allowed, 1..32; the default, 24, is always feasible (k <=
    65536 needs at most 16) and binds only for symbols rarer than about 2^-24, where it
    costs next to nothing. ``chunk_size``: symbols per independently decodable chunk.
    """
    addr, itype, n = index_array(indices, "indices")
    counts = counts_of(counts_or_k, addr, itype, n)
    k = counts.size
    chunk_size = int_in(chunk_size, "chunk_size", 1, 2**40)
    max_len = _max_len(max_len, counts)
    if n > 0 and not counts.any():
        raise ValueError("counts_or_k has no non-zero count, but indices is not empty")
    lengths = np.empty(k, dtype=np.uint8)
    _C.huffman_code_lengths(counts.ctypes.data, k, max_len, lengths.ctypes.data)
    n_chunks = -(-n // chunk_size)
    offsets = np.empty(n_chunks + 1, dtype=np.int64)
    size = _C.huffman_plan(addr, itype, n, lengths.ctypes.data, k, chunk_size, offsets.ctypes.data)
    data = np.empty(size, dtype=np.uint8)
    _C.huffman_encode(addr, itype, n, lengths.ctypes.data, k, chunk_size, offsets.ctypes.data,
                      data.ctypes.data, size)
    for a in (data, lengths, offsets):
        a.flags.writeable = False
    return HuffmanStream(data, lengths, offsets, n, chunk_size)


def _check_stream(stream) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Contiguous (data, lengths, chunk_offsets) of a structurally valid stream."""
    if not isinstance(stream, HuffmanStream):
        raise TypeError(f"stream must be a HuffmanStream, got {type(stream).__name__}")
    lengths = checked_array(stream.lengths, "stream.lengths", np.uint8)
    check_bins(lengths.size, "stream.k")
    data, offsets = stream.checked_chunks(2**40)
    if (lengths > MAX_LEN).any():
        raise ValueError(f"stream.lengths must be <= {MAX_LEN}; got {int(lengths.max())}")
    return data, lengths, offsets


def decode(stream: HuffmanStream, out=None, *, device=None):
    """Decode ``stream`` into a new 1-D numpy array of ``stream.index_dtype``, or into ``out``.

    ``out``: numpy array or torch tensor, contiguous, ``stream.n_symbols`` elements, uint8
    (only for k <= 256) or uint16. ``device="cuda"`` (or ``out`` on a CUDA device) decodes on
    that GPU and returns a torch tensor there. Corrupt or inconsistent streams raise ValueError.
    """
    data, lengths, offsets = _check_stream(stream)
    n, k = int(stream.n_symbols), lengths.size
    target = _target_device(out, device)
    result, addr, itype = decode_target(out, n, k, target)
    if target.type == "cuda":
        _cuda_decode("cuda_huffman_decode", stream, data, lengths, offsets, target, addr, itype)
        return result
    _C.huffman_decode(data.ctypes.data, data.size, offsets.ctypes.data, offsets.size - 1,
                      lengths.ctypes.data, k, n, int(stream.chunk_size), addr, itype)
    return result


def decode_gather(stream: HuffmanStream, codebook, out=None, dtype: torch.dtype = torch.float32,
                  *, return_bits: bool = False):
    """``codebook[decode(stream)]`` in one fused pass, never holding the whole index array.

    Returns a new 1-D tensor of ``dtype`` (float32/float16/bfloat16) on the codebook's device,
    or fills ``out`` (a contiguous tensor on that device, or a numpy array for a CPU codebook,
    with ``stream.n_symbols`` elements) and returns it; with ``return_bits``, also the payload
    bits the codes took (padding excluded). With a CUDA codebook the payload is copied to that
    GPU and decoded there, straight into the weights (one kernel).
    """
    data, lengths, offsets = _check_stream(stream)
    cb, _ = as_tensor(codebook, "codebook")
    dev = check_device(cb, "codebook")
    check_tensor(cb, "codebook", (torch.float32,), device=dev)
    if cb.dim() != 1 or not 1 <= cb.numel() <= 65536:
        raise ValueError(f"codebook must be 1-D with 1 to 65536 values; got shape {tuple(cb.shape)}")
    n = int(stream.n_symbols)
    if out is None:
        if dtype not in FLOAT_CODES:
            raise TypeError(f"dtype must be torch.float32, torch.float16 or torch.bfloat16; got {dtype}")
        target = result = torch.empty(n, dtype=dtype, device=dev)
    else:
        target, _ = as_tensor(out, "out")
        check_tensor(target, "out", tuple(FLOAT_CODES), device=dev, like="codebook")
        if target.numel() != n:
            raise ValueError(f"out must have stream.n_symbols = {n} elements; got {target.numel()}")
        result = out
    if dev.type == "cuda":
        bits = _cuda_decode("cuda_huffman_decode_gather", stream, data, lengths, offsets, dev, cb.data_ptr(),
                            cb.numel(), target.data_ptr(), FLOAT_CODES[target.dtype])
    else:
        bits = _C.huffman_decode_gather(data.ctypes.data, data.size, offsets.ctypes.data, offsets.size - 1,
                                        lengths.ctypes.data, lengths.size, n, int(stream.chunk_size),
                                        cb.data_ptr(), cb.numel(), target.data_ptr(), FLOAT_CODES[target.dtype])
    return (result, bits) if return_bits else result


__all__ = ["HuffmanStream", "histogram", "code_lengths", "encode", "decode", "decode_gather", "MAX_LEN", "DEFAULT_MAX_LEN",
           "DEFAULT_CHUNK_SIZE"]
