"""PyTorch custom ops ``torch.ops.wsc.*`` over the native kernels, and friendly wrappers.

Each op is declared once here (schema from the type hints, one implementation for the
cpu and cuda devices, fake kernel for ``torch.compile``/meta tensors). CPU tensors go to the
C++ kernels, CUDA tensors to the CUDA kernels on PyTorch's current stream; every tensor of
one call must be on the same device. The wrappers ``range``, ``bin_uniform``, ``gather``
and ``share`` accept torch tensors or numpy arrays, never copy contiguous input, and return
the kind of array they were given.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from wsc import _cuda
from wsc._arrays import (
    FLOAT_CODES,
    INDEX_CODES,
    as_tensor,
    check_bins,
    check_bounds,
    check_device,
    check_tensor,
    index_dtype,
    to_user,
)
from wsc._native import _C

_FLOATS = tuple(FLOAT_CODES)
_INDICES = tuple(INDEX_CODES)
_DEVICES = ("cpu", "cuda")


# ---------------------------------------------------------------- range
@torch.library.custom_op("wsc::range", mutates_args=(), device_types=_DEVICES)
def range_op(x: torch.Tensor) -> torch.Tensor:
    """[min, max] of ``x`` as a float32 tensor of 2 on x's device; NaN/Inf raise ValueError."""
    dev = check_device(x, "x")
    check_tensor(x, "x", _FLOATS, device=dev)
    if x.numel() == 0:
        raise ValueError("x is empty; the range of no values is undefined")
    args = (x.data_ptr(), FLOAT_CODES[x.dtype], x.numel())
    lo, hi = _cuda.launch("cuda_range", dev, *args) if dev.type == "cuda" else _C.range(*args)
    return torch.tensor([lo, hi], dtype=torch.float32, device=dev)


@range_op.register_fake
def _(x):
    return x.new_empty(2, dtype=torch.float32)


# ---------------------------------------------------------------- bin_uniform
@torch.library.custom_op("wsc::bin_uniform", mutates_args=(), device_types=_DEVICES)
def bin_uniform_op(
    x: torch.Tensor, lo: float, hi: float, k: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(indices shaped like x, counts int64[k], sums float64[k]) of k equal bins over [lo, hi]."""
    idx = torch.empty(x.shape, dtype=index_dtype(check_bins(k)), device=check_device(x, "x"))
    counts, sums = bin_uniform_into_op(x, lo, hi, k, idx)
    return idx, counts, sums


@bin_uniform_op.register_fake
def _(x, lo, hi, k):
    return (x.new_empty(x.shape, dtype=index_dtype(k)), x.new_empty(k, dtype=torch.int64),
            x.new_empty(k, dtype=torch.float64))


@torch.library.custom_op("wsc::bin_uniform_into", mutates_args=("indices",), device_types=_DEVICES)
def bin_uniform_into_op(
    x: torch.Tensor, lo: float, hi: float, k: int, indices: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Bin x into the caller's ``indices`` (uint8 for k <= 256 else uint16); return (counts, sums)."""
    dev = check_device(x, "x")
    check_tensor(x, "x", _FLOATS, device=dev)
    k = check_bins(k)
    lo, hi = check_bounds(lo, hi)
    check_tensor(indices, "indices", (index_dtype(k),), device=dev)
    if indices.numel() != x.numel():
        raise ValueError(f"indices must have {x.numel()} elements like x; got {indices.numel()}")
    counts = torch.empty(k, dtype=torch.int64, device=dev)
    sums = torch.empty(k, dtype=torch.float64, device=dev)
    args = (x.data_ptr(), FLOAT_CODES[x.dtype], x.numel(), lo, hi, k, indices.data_ptr(),
            INDEX_CODES[indices.dtype], counts.data_ptr(), sums.data_ptr())
    if dev.type == "cuda":
        _cuda.launch("cuda_bin_uniform", dev, *args)
    else:
        _C.bin_uniform(*args)
    return counts, sums


@bin_uniform_into_op.register_fake
def _(x, lo, hi, k, indices):
    return x.new_empty(k, dtype=torch.int64), x.new_empty(k, dtype=torch.float64)


# ---------------------------------------------------------------- gather
def _check_codebook(codebook: torch.Tensor, device: torch.device, like: str) -> None:
    check_tensor(codebook, "codebook", (torch.float32,), device=device, like=like)
    if codebook.dim() != 1 or not 1 <= codebook.numel() <= 65536:
        raise ValueError(f"codebook must be 1-D with 1 to 65536 values; got shape {tuple(codebook.shape)}")


@torch.library.custom_op("wsc::gather", mutates_args=(), device_types=_DEVICES)
def gather_op(indices: torch.Tensor, codebook: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """codebook[indices] as a new tensor of ``dtype`` (float32, float16 or bfloat16)."""
    out = torch.empty(indices.shape, dtype=dtype, device=check_device(indices, "indices"))
    gather_into_op(indices, codebook, out)
    return out


@gather_op.register_fake
def _(indices, codebook, dtype):
    return indices.new_empty(indices.shape, dtype=dtype)


@torch.library.custom_op("wsc::gather_into", mutates_args=("out",), device_types=_DEVICES)
def gather_into_op(indices: torch.Tensor, codebook: torch.Tensor, out: torch.Tensor) -> None:
    """Write codebook[indices] into ``out`` (same number of elements; float32/16 or bfloat16)."""
    dev = check_device(indices, "indices")
    check_tensor(indices, "indices", _INDICES, device=dev)
    _check_codebook(codebook, dev, "indices")
    check_tensor(out, "out", _FLOATS, device=dev, like="indices")
    if out.numel() != indices.numel():
        raise ValueError(f"out must have {indices.numel()} elements like indices; got {out.numel()}")
    args = (indices.data_ptr(), INDEX_CODES[indices.dtype], indices.numel(), codebook.data_ptr(),
            codebook.numel(), out.data_ptr(), FLOAT_CODES[out.dtype])
    if dev.type == "cuda":
        _cuda.launch("cuda_gather", dev, *args)
    else:
        _C.gather(*args)


@gather_into_op.register_fake
def _(indices, codebook, out):
    return None


@torch.library.custom_op("wsc::gather_u4", mutates_args=(), device_types="cpu")
def gather_u4_op(packed: torch.Tensor, codebook: torch.Tensor, shape: list[int], dtype: torch.dtype) -> torch.Tensor:
    """codebook[4-bit indices] shaped ``shape``: ``packed`` holds two per byte, even elements low."""
    check_tensor(packed, "packed", (torch.uint8,))
    _check_codebook(codebook, packed.device, "packed")
    if codebook.numel() > 16:
        raise ValueError(f"codebook must hold at most 16 values for 4-bit indices; got {codebook.numel()}")
    n = math.prod(shape)
    if packed.numel() != (n + 1) // 2:
        raise ValueError(f"packed must have ceil({n} / 2) = {(n + 1) // 2} bytes for shape {list(shape)}; "
                         f"got {packed.numel()}")
    if dtype not in FLOAT_CODES:
        raise TypeError(f"dtype must be torch.float32, torch.float16 or torch.bfloat16; got {dtype}")
    out = torch.empty(shape, dtype=dtype)
    _C.gather_u4(packed.data_ptr(), n, codebook.data_ptr(), codebook.numel(), out.data_ptr(), FLOAT_CODES[dtype])
    return out


@gather_u4_op.register_fake
def _(packed, codebook, shape, dtype):
    return packed.new_empty(shape, dtype=dtype)


def pack_u4(indices: torch.Tensor) -> torch.Tensor:
    """Pack uint8 indices < 16 two per byte (flat, even elements in the low nibble)."""
    check_tensor(indices, "indices", (torch.uint8,))
    flat = indices.reshape(-1)
    if flat.numel() and int(flat.max()) > 15:
        raise ValueError(f"indices must be < 16 to pack into 4 bits; got {int(flat.max())}")
    if flat.numel() % 2:
        flat = torch.cat([flat, flat.new_zeros(1)])
    pairs = flat.reshape(-1, 2)
    return pairs[:, 0] | (pairs[:, 1] << 4)


# ---------------------------------------------------------------- share
@torch.library.custom_op("wsc::share", mutates_args=(), device_types=_DEVICES)
def share_op(x: torch.Tensor, lo: float, hi: float, codebook: torch.Tensor) -> torch.Tensor:
    """codebook[bin(x)] with k = len(codebook) equal bins over [lo, hi], in x's dtype."""
    out = torch.empty_like(x, memory_format=torch.contiguous_format)
    share_into_op(x, lo, hi, codebook, out)
    return out


@share_op.register_fake
def _(x, lo, hi, codebook):
    return torch.empty_like(x, memory_format=torch.contiguous_format)


@torch.library.custom_op("wsc::share_into", mutates_args=("out",), device_types=_DEVICES)
def share_into_op(x: torch.Tensor, lo: float, hi: float, codebook: torch.Tensor, out: torch.Tensor) -> None:
    """Write codebook[bin(x)] into ``out`` (float32/float16/bfloat16, as many elements as x)."""
    dev = check_device(x, "x")
    check_tensor(x, "x", _FLOATS, device=dev)
    _check_codebook(codebook, dev, "x")
    k = check_bins(codebook.numel(), "len(codebook)")
    lo, hi = check_bounds(lo, hi)
    check_tensor(out, "out", _FLOATS, device=dev)
    if out.numel() != x.numel():
        raise ValueError(f"out must have {x.numel()} elements like x; got {out.numel()}")
    args = (x.data_ptr(), FLOAT_CODES[x.dtype], x.numel(), lo, hi, codebook.data_ptr(), k,
            out.data_ptr(), FLOAT_CODES[out.dtype])
    if dev.type == "cuda":
        _cuda.launch("cuda_share", dev, *args)
    else:
        _C.share(*args)


@share_into_op.register_fake
def _(x, lo, hi, codebook, out):
    return None


# ---------------------------------------------------------------- decode_gather
@torch.library.custom_op("wsc::decode_gather", mutates_args=(), device_types=_DEVICES)
def decode_gather_op(data: torch.Tensor, lengths: torch.Tensor, chunk_offsets: torch.Tensor, n: int,
                     chunk_size: int, codebook: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """codebook[symbols] of a chunked Huffman stream, decoded and gathered in one pass (1-D, n values)."""
    out = torch.empty(n, dtype=dtype, device=check_device(data, "data"))
    decode_gather_into_op(data, lengths, chunk_offsets, n, chunk_size, codebook, out)
    return out


@decode_gather_op.register_fake
def _(data, lengths, chunk_offsets, n, chunk_size, codebook, dtype):
    return data.new_empty(n, dtype=dtype)


@torch.library.custom_op("wsc::decode_gather_into", mutates_args=("out",), device_types=_DEVICES)
def decode_gather_into_op(data: torch.Tensor, lengths: torch.Tensor, chunk_offsets: torch.Tensor, n: int,
                          chunk_size: int, codebook: torch.Tensor, out: torch.Tensor) -> None:
    """Decode a chunked Huffman stream and write codebook[symbol] into ``out`` (n elements).

    All tensors on one device; on a GPU the (small) code lengths are read back to the host.
    """
    dev = check_device(data, "data")
    for name, t, dt in (("data", data, torch.uint8), ("lengths", lengths, torch.uint8),
                        ("chunk_offsets", chunk_offsets, torch.int64)):
        check_tensor(t, name, (dt,), device=dev, like="data")
        if t.dim() != 1:
            raise ValueError(f"{name} must be 1-D; got shape {tuple(t.shape)}")
    k = check_bins(lengths.numel(), "len(lengths)")
    _check_codebook(codebook, dev, "data")
    check_tensor(out, "out", _FLOATS, device=dev, like="data")
    if out.numel() != n:
        raise ValueError(f"out must have n = {n} elements; got {out.numel()}")
    if dev.type == "cuda":
        lengths_host = lengths.cpu()
        workspace = torch.empty(_C.cuda_huffman_workspace_bytes(k), dtype=torch.uint8, device=dev)
        _cuda.launch("cuda_huffman_decode_gather", dev, data.data_ptr(), data.numel(), chunk_offsets.data_ptr(),
                     chunk_offsets.numel() - 1, lengths_host.data_ptr(), k, n, chunk_size, codebook.data_ptr(),
                     codebook.numel(), out.data_ptr(), FLOAT_CODES[out.dtype], workspace.data_ptr())
        return
    _C.huffman_decode_gather(data.data_ptr(), data.numel(), chunk_offsets.data_ptr(), chunk_offsets.numel() - 1,
                             lengths.data_ptr(), k, n, chunk_size, codebook.data_ptr(),
                             codebook.numel(), out.data_ptr(), FLOAT_CODES[out.dtype])


@decode_gather_into_op.register_fake
def _(data, lengths, chunk_offsets, n, chunk_size, codebook, out):
    return None


# ---------------------------------------------------------------- wrappers
class Binned(NamedTuple):
    """Result of :func:`bin_uniform`."""

    indices: object
    counts: object
    sums: object
    lo: float
    hi: float


def range(x) -> tuple[float, float]:  # noqa: A001 - mirrors the kernel's name
    """(min, max) of a float32/float16/bfloat16 array; raises ValueError on NaN/Inf or empty input."""
    t, _ = as_tensor(x, "x")
    lo, hi = torch.ops.wsc.range(t).tolist()
    return lo, hi


def bin_uniform(x, k: int, lo: float | None = None, hi: float | None = None, *, out=None) -> Binned:
    """Bin ``x`` into ``k`` equal-width bins over [lo, hi] (default: x's own range).

    Returns indices (uint8 for k <= 256, else uint16, shaped like x; written into ``out``
    when given), per-bin counts (int64), per-bin sums (float64), and the lo/hi used.
    Values outside [lo, hi] are clamped. A sum errs by at most 16 * 2**-24 times its bin's
    sum of |x| (on AVX-512 CPUs the fullest bins first add in float32 partials of 16 values).
    """
    t, numpy_in = as_tensor(x, "x")
    check_tensor(t, "x", _FLOATS, device=check_device(t, "x"))
    k = check_bins(k)
    if (lo is None) != (hi is None):
        raise ValueError("pass both lo and hi, or neither (then x's min and max are used)")
    if lo is None:
        lo, hi = range(t)
    lo, hi = check_bounds(lo, hi)
    if out is None:
        idx, counts, sums = torch.ops.wsc.bin_uniform(t, lo, hi, k)
        return Binned(to_user(idx, numpy_in), to_user(counts, numpy_in), to_user(sums, numpy_in), lo, hi)
    out_t, _ = as_tensor(out, "out")
    counts, sums = torch.ops.wsc.bin_uniform_into(t, lo, hi, k, out_t)
    return Binned(out, to_user(counts, numpy_in), to_user(sums, numpy_in), lo, hi)


def gather(indices, codebook, out=None, dtype: torch.dtype = torch.float32):
    """``codebook[indices]`` as float32 (or ``dtype``: float16, or bfloat16 for torch indices: numpy has
    no bfloat16), optionally into ``out``."""
    idx, numpy_in = as_tensor(indices, "indices")
    cb, _ = as_tensor(codebook, "codebook")
    dev = check_device(idx, "indices")
    check_tensor(idx, "indices", _INDICES, device=dev)
    _check_codebook(cb, dev, "indices")
    if out is None:
        if dtype not in FLOAT_CODES:
            raise TypeError(f"dtype must be torch.float32, torch.float16 or torch.bfloat16; got {dtype}")
        if numpy_in and dtype == torch.bfloat16:
            raise TypeError("dtype torch.bfloat16 needs indices as a torch tensor (numpy has no bfloat16, and numpy "
                            "indices give a numpy result); pass torch.from_numpy(indices), or dtype=torch.float16")
        return to_user(torch.ops.wsc.gather(idx, cb, dtype), numpy_in)
    out_t, _ = as_tensor(out, "out")
    torch.ops.wsc.gather_into(idx, cb, out_t)
    return out


def share(x, lo: float, hi: float, codebook, out=None):
    """Fused quantize-dequantize: ``codebook[bin(x)]`` with len(codebook) bins over [lo, hi].

    The result has x's dtype, or is written into ``out`` (any float dtype) when given.
    """
    t, numpy_in = as_tensor(x, "x")
    cb, _ = as_tensor(codebook, "codebook")
    if out is None:
        return to_user(torch.ops.wsc.share(t, lo, hi, cb), numpy_in)
    out_t, _ = as_tensor(out, "out")
    torch.ops.wsc.share_into(t, lo, hi, cb, out_t)
    return out


__all__ = ["Binned", "range", "bin_uniform", "gather", "share"]
