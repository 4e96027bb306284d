"""Input checks and zero-copy conversion shared by the op wrappers.

Every check names the argument and what was expected, so a bad call fails in Python
before a pointer crosses into the native kernels.
"""

from __future__ import annotations

import numpy as np
import torch

from wsc._native import BF16, F16, F32, U8, U16, _C

FLOAT_CODES = {torch.float32: F32, torch.float16: F16, torch.bfloat16: BF16}
INDEX_CODES = {torch.uint8: U8, torch.uint16: U16}
INDEX_NP = {np.dtype(np.uint8): U8, np.dtype(np.uint16): U16}
MIN_BINS, MAX_BINS = 2, 65536


def as_tensor(x, name: str) -> tuple[torch.Tensor, bool]:
    """View ``x`` (torch tensor or numpy array) as a tensor without copying; also say if it was numpy."""
    if isinstance(x, torch.Tensor):
        return x, False
    if isinstance(x, np.ndarray):
        if not x.flags.c_contiguous:
            raise ValueError(f"{name} must be C-contiguous; got a numpy array with strides {x.strides}")
        try:
            return torch.from_numpy(x), True
        except TypeError as exc:
            raise TypeError(f"{name} has unsupported numpy dtype {x.dtype}") from exc
    raise TypeError(f"{name} must be a torch.Tensor or numpy.ndarray, got {type(x).__name__}")


def to_user(t: torch.Tensor, numpy_in: bool):
    """Return ``t`` as numpy when the caller passed numpy, else as the tensor itself."""
    return t.numpy() if numpy_in else t


def check_tensor(t: torch.Tensor, name: str, dtypes, *, device: str | torch.device | None = "cpu",
                 like: str = "x") -> None:
    """Raise TypeError/ValueError unless ``t`` has one of ``dtypes``, sits on ``device`` and is contiguous.

    ``device`` is a device type (``"cpu"``), an exact device (the device of the argument
    named ``like``, which every tensor of one call must share) or None (not checked).
    """
    if t.dtype not in dtypes:
        want = ", ".join(str(d).replace("torch.", "") for d in dtypes)
        raise TypeError(f"{name} must have dtype {want}; got {str(t.dtype).replace('torch.', '')}")
    if isinstance(device, torch.device):
        if t.device != device:
            raise ValueError(f"{name} must be on the same device as {like} ({device}); got {t.device}")
    elif device is not None and t.device.type != device:
        raise ValueError(f"{name} must be on the {device} device; got {t.device}")
    if not t.is_contiguous():
        raise ValueError(f"{name} must be contiguous; got strides {tuple(t.stride())} for shape {tuple(t.shape)}")


def check_device(t: torch.Tensor, name: str) -> torch.device:
    """Return ``t.device`` after checking that the kernels run there: the cpu or a cuda device."""
    if t.device.type not in ("cpu", "cuda"):
        raise ValueError(f"{name} must be on the cpu device or a cuda device; got {t.device}")
    return t.device


def check_bins(k, name: str = "k") -> int:
    """Return ``k`` as int after checking that it is an integer in [2, 65536]."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(k).__name__}")
    if not MIN_BINS <= int(k) <= MAX_BINS:
        raise ValueError(f"{name} must be in [{MIN_BINS}, {MAX_BINS}], got {int(k)}")
    return int(k)


def check_bounds(lo, hi) -> tuple[float, float]:
    """Return (lo, hi) as float32-representable floats after checking lo <= hi, both finite."""
    vals = []
    for name, v in (("lo", lo), ("hi", hi)):
        if isinstance(v, torch.Tensor):
            v = v.item()
        if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)):
            raise TypeError(f"{name} must be a float, got {type(v).__name__}")
        v = float(np.float32(v))
        if not np.isfinite(v):
            raise ValueError(f"{name} must be finite, got {v}")
        vals.append(v)
    if vals[0] > vals[1]:
        raise ValueError(f"lo must be <= hi, got lo={vals[0]} > hi={vals[1]}")
    return vals[0], vals[1]


def index_dtype(k: int) -> torch.dtype:
    """uint8 indices for k <= 256, uint16 otherwise."""
    return torch.uint8 if k <= 256 else torch.uint16


# ---------------------------------------------------------------- entropy-coder inputs
def index_array(x, name: str, device: torch.device | str = "cpu") -> tuple[int, int, int]:
    """(address, index type code, element count) of a uint8/uint16 contiguous array on ``device``."""
    if isinstance(x, np.ndarray):
        if x.dtype not in INDEX_NP:
            raise TypeError(f"{name} must have dtype uint8, uint16; got {x.dtype}")
        if not x.flags.c_contiguous:
            raise ValueError(f"{name} must be C-contiguous; got a numpy array with strides {x.strides}")
        return x.ctypes.data, INDEX_NP[x.dtype], int(x.size)
    if isinstance(x, torch.Tensor):
        check_tensor(x, name, tuple(INDEX_CODES), device=device)
        return x.data_ptr(), INDEX_CODES[x.dtype], int(x.numel())
    raise TypeError(f"{name} must be a torch.Tensor or numpy.ndarray, got {type(x).__name__}")


def decode_target(out, n: int, k: int, device: torch.device | str = "cpu") -> tuple[object, int, int]:
    """(result, address, index type code) of where a decoder writes n indices of a k-symbol
    alphabet: a new uint8/uint16 array (numpy on the CPU, torch elsewhere) when ``out`` is None,
    else ``out`` itself after checking it is writeable, n elements, and wide enough for k."""
    if out is None:
        wide = k > 256
        if torch.device(device).type == "cpu":
            out = np.empty(n, dtype=np.uint16 if wide else np.uint8)
        else:
            out = torch.empty(n, dtype=torch.uint16 if wide else torch.uint8, device=device)
    elif isinstance(out, np.ndarray) and not out.flags.writeable:
        raise ValueError("out must be writeable")
    addr, itype, size = index_array(out, "out", device)
    if size != n:
        raise ValueError(f"out must have stream.n_symbols = {n} elements; got {size}")
    if itype == U8 and k > 256:
        raise TypeError(f"out must have dtype uint16 for k = {k} > 256; got uint8")
    return out, addr, itype


def int_in(v, name: str, lo: int, hi: int) -> int:
    """``v`` as int after checking that it is an integer in [lo, hi]."""
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(v).__name__}")
    if not lo <= v <= hi:
        raise ValueError(f"{name} must be in [{lo}, {hi}], got {int(v)}")
    return int(v)


def counts_of(counts_or_k, addr: int, itype: int, n: int, name: str = "counts_or_k") -> np.ndarray:
    """int64 counts: computed from the n indices at addr for an int k, else the given array checked."""
    if isinstance(counts_or_k, (int, np.integer)) and not isinstance(counts_or_k, bool):
        k = check_bins(counts_or_k, name)
        counts = np.empty(k, dtype=np.int64)
        _C.histogram(addr, itype, n, k, counts.ctypes.data)
        return counts
    if isinstance(counts_or_k, torch.Tensor):
        counts_or_k = counts_or_k.detach().cpu().numpy()
    if not isinstance(counts_or_k, np.ndarray):
        raise TypeError(f"{name} must be an int k or an integer array of counts, "
                        f"got {type(counts_or_k).__name__}")
    if counts_or_k.dtype.kind not in "iu":
        raise TypeError(f"{name} must have an integer dtype; got {counts_or_k.dtype}")
    if counts_or_k.ndim != 1:
        raise ValueError(f"{name} must be 1-D; got shape {counts_or_k.shape}")
    check_bins(counts_or_k.size, f"len({name})")
    if (counts_or_k < 0).any():
        raise ValueError(f"{name} must be >= 0; got {int(counts_or_k.min())}")
    return np.ascontiguousarray(counts_or_k, dtype=np.int64)


def checked_array(a, name: str, dtype, ndim: int = 1) -> np.ndarray:
    """``a`` made contiguous after checking that it is a numpy array of ``dtype`` with ``ndim`` dimensions."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(a).__name__}")
    if a.dtype != dtype:
        raise TypeError(f"{name} must have dtype {np.dtype(dtype)}; got {a.dtype}")
    if a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D; got shape {a.shape}")
    return np.ascontiguousarray(a)


class ChunkedStream:
    """What every chunked index stream (Huffman, rANS) derives from its fields: a mixin for the
    frozen dataclasses ``wsc.huffman.HuffmanStream`` and ``wsc.rans.RansStream``, which hold
    ``data`` (payload bytes) and ``chunk_offsets`` and define ``k``."""

    @property
    def n_chunks(self) -> int:
        """Number of independently decodable chunks."""
        return int(self.chunk_offsets.size) - 1

    @property
    def nbits(self) -> int:
        """Payload size in bits (chunk padding and any flushed coder state included)."""
        return 8 * int(self.data.size)

    @property
    def index_dtype(self) -> np.dtype:
        """dtype ``decode`` returns: uint8 for k <= 256, else uint16."""
        return np.dtype(np.uint8 if self.k <= 256 else np.uint16)

    def checked_chunks(self, max_chunk: int) -> tuple[np.ndarray, np.ndarray]:
        """Contiguous (data, chunk_offsets), checked: one offset per chunk boundary of
        ``n_symbols`` in chunks of ``chunk_size`` (at most ``max_chunk``), from 0 to the payload
        size, never decreasing. ValueError naming the field otherwise."""
        data = checked_array(self.data, "stream.data", np.uint8)
        offsets = checked_array(self.chunk_offsets, "stream.chunk_offsets", np.int64)
        n = int_in(self.n_symbols, "stream.n_symbols", 0, 2**62)
        cs = int_in(self.chunk_size, "stream.chunk_size", 1, max_chunk)
        if offsets.size != -(-n // cs) + 1:
            raise ValueError(f"stream.chunk_offsets must have ceil(n_symbols / chunk_size) + 1 = "
                             f"{-(-n // cs) + 1} entries; got {offsets.size}")
        if offsets[0] != 0 or offsets[-1] != data.size:
            raise ValueError(f"stream.chunk_offsets must run from 0 to len(stream.data) = {data.size}; "
                             f"got {int(offsets[0])} .. {int(offsets[-1])}")
        if (np.diff(offsets) < 0).any():
            raise ValueError("stream.chunk_offsets must not decrease")
        return data, offsets
