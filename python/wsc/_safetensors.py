"""The safetensors format: a strict zero-copy reader for hostile files, and a deterministic
writer that never concatenates.

The format: an 8-byte little-endian header length N, N bytes of JSON (an object mapping
each tensor name to ``{"dtype", "shape", "data_offsets": [begin, end]}``, plus an optional
``"__metadata__"`` object of strings), then the tensor bytes. Nothing in it is executable,
and this reader never interprets bytes as anything but numbers.

Everything is checked against the buffer before a tensor is made: the header length, the
JSON (no duplicate keys, no deep nesting), each dtype, shape and byte range (inside the
buffer, ``end - begin == numel * itemsize``), and that the byte ranges tile the data
section exactly (no overlap, no gap, nothing left over). Tensors are views of the buffer
(copied only when their offset is not aligned for their dtype), so reading allocates
nothing the file size does not bound. Every failure raises :class:`wsc.FormatError`.

The writer (:func:`serialize`) produces the header bytes and the list of data buffers in
file order, so a caller can measure a file without building it and write it buffer by
buffer; a tensor may be given as several parts (written back to back, never joined). Its
output depends on its input alone: metadata keys sorted, tensors ordered by item size
(largest first, so every tensor is aligned for its dtype) then name, the header padded with
spaces to a multiple of 8 bytes. (The reference writer orders the metadata by a per-process
hash, so two runs would write different bytes.)
"""

from __future__ import annotations

import json
import math
import struct

import numpy as np
import torch

from wsc.errors import FormatError

MAX_HEADER = 100 * 2**20  # as the reference implementation
MAX_DIMS = 32

DTYPES: dict[str, torch.dtype] = {
    "BOOL": torch.bool, "U8": torch.uint8, "I8": torch.int8, "I16": torch.int16, "U16": torch.uint16,
    "I32": torch.int32, "U32": torch.uint32, "I64": torch.int64, "U64": torch.uint64,
    "F16": torch.float16, "BF16": torch.bfloat16, "F32": torch.float32, "F64": torch.float64,
    "C64": torch.complex64,
}
for _code, _name in (("F8_E5M2", "float8_e5m2"), ("F8_E4M3", "float8_e4m3fn")):
    if hasattr(torch, _name):
        DTYPES[_code] = getattr(torch, _name)


CODES = {v: k for k, v in DTYPES.items()}


def _bytes_of(part) -> np.ndarray:
    """A flat uint8 view of a contiguous numpy array or CPU tensor (no copy)."""
    if isinstance(part, torch.Tensor):
        t = part.detach()
        if t.device.type != "cpu" or not t.is_contiguous():
            t = t.cpu().contiguous()
        return t.reshape(-1).view(torch.uint8).numpy()
    a = np.asarray(part)
    if not a.flags.c_contiguous:
        raise ValueError("a part must be C-contiguous")
    return a.reshape(-1).view(np.uint8)


def serialize(tensors: dict[str, tuple[torch.dtype, tuple[int, ...], list]],
              metadata: dict[str, str] | None = None) -> tuple[bytes, list[np.ndarray]]:
    """(the first 8 + N bytes: length and header, the data buffers in file order).

    ``tensors``: name -> (dtype, shape, parts), the parts contiguous numpy arrays or CPU
    tensors whose bytes, back to back, are the tensor's data.
    """
    order = sorted(tensors, key=lambda n: (-tensors[n][0].itemsize, n))
    header: dict = {}
    if metadata:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise TypeError("metadata must map str to str")
        header["__metadata__"] = dict(sorted(metadata.items()))
    buffers, pos = [], 0
    for name in order:
        dtype, shape, parts = tensors[name]
        if dtype not in CODES:
            raise TypeError(f"tensor {name!r}: dtype {dtype} has no safetensors code")
        views = [_bytes_of(p) for p in parts]
        nbytes = sum(v.size for v in views)
        if nbytes != math.prod(shape) * dtype.itemsize:
            raise ValueError(f"tensor {name!r}: {nbytes} bytes of data for shape {list(shape)} of {dtype}")
        header[name] = {"dtype": CODES[dtype], "shape": [int(d) for d in shape], "data_offsets": [pos, pos + nbytes]}
        buffers.extend(v for v in views if v.size)
        pos += nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text, buffers


def _no_duplicates(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise FormatError(f"key {k!r} appears twice")
        out[k] = v
    return out


def loads(text, what: str):
    """JSON text -> object; duplicate keys, nesting too deep, bad UTF-8 or syntax: FormatError."""
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates)
    except FormatError as exc:
        raise FormatError(f"{what}: {exc}") from None
    except RecursionError:
        raise FormatError(f"{what}: JSON nested too deeply") from None
    except (ValueError, TypeError) as exc:  # JSONDecodeError, UnicodeDecodeError, too many digits
        raise FormatError(f"{what}: not valid JSON ({type(exc).__name__}: {str(exc)[:200]})") from None


def is_int(v) -> bool:
    """An int that is not a bool (JSON true/false must not pass for 1/0)."""
    return isinstance(v, int) and not isinstance(v, bool)


def _shape(name: str, shape) -> tuple[int, ...]:
    if not (isinstance(shape, list) and len(shape) <= MAX_DIMS
            and all(is_int(d) and 0 <= d < 2**62 for d in shape)):
        raise FormatError(f"tensor {name!r}: bad shape {str(shape)[:100]} "
                          f"(a list of at most {MAX_DIMS} integers >= 0)")
    return tuple(shape)


def parse(buf: bytearray | bytes, where: str = "the data") -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """(metadata, tensors) of a safetensors file held in ``buf``; tensors view ``buf`` when it
    is a bytearray (a bytes object is copied once, so the tensors are writable)."""
    if isinstance(buf, (bytes, memoryview)):
        buf = bytearray(buf)
    size = len(buf)
    if size < 8:
        raise FormatError(f"{where}: not a .wsc file (only {size} bytes)")
    (n,) = struct.unpack_from("<Q", buf, 0)
    if n > size - 8:
        raise FormatError(f"{where}: truncated (a header of {n} bytes in a file of {size})")
    if n > MAX_HEADER:
        raise FormatError(f"{where}: a header of {n} bytes is larger than the {MAX_HEADER} allowed")
    if n < 2:
        raise FormatError(f"{where}: not a safetensors file (a header of {n} bytes)")
    header = loads(bytes(buf[8:8 + n]), f"{where}: safetensors header")
    if not isinstance(header, dict):
        raise FormatError(f"{where}: the safetensors header is not a JSON object")
    meta = header.pop("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise FormatError(f"{where}: '__metadata__' must map names to strings")
    start = 8 + n
    data_size = size - start
    spans, tensors = [], {}
    for name, e in header.items():
        if not isinstance(e, dict) or set(e) != {"dtype", "shape", "data_offsets"}:
            raise FormatError(f"{where}: tensor {name!r}: the entry must hold exactly dtype, shape, data_offsets")
        dtype = DTYPES.get(e["dtype"]) if isinstance(e["dtype"], str) else None
        if dtype is None:
            raise FormatError(f"{where}: tensor {name!r}: unknown dtype {str(e['dtype'])[:40]!r}")
        shape = _shape(name, e["shape"])
        off = e["data_offsets"]
        if not (isinstance(off, list) and len(off) == 2 and all(is_int(v) for v in off)
                and 0 <= off[0] <= off[1] <= data_size):
            raise FormatError(f"{where}: tensor {name!r}: data_offsets {str(off)[:60]} are not a range "
                              f"inside the {data_size} data bytes")
        itemsize = dtype.itemsize
        need = math.prod(shape) * itemsize
        if off[1] - off[0] != need:
            raise FormatError(f"{where}: tensor {name!r}: {off[1] - off[0]} bytes for shape {list(shape)} "
                              f"of {e['dtype']} ({need} bytes)")
        spans.append((off[0], off[1], name))
        tensors[name] = (dtype, shape, start + off[0], need)
    pos = 0
    for b, e, name in sorted(spans):
        if b != pos:
            what = "overlaps another" if b < pos else f"leaves a gap of {b - pos} bytes before it"
            raise FormatError(f"{where}: tensor {name!r}: its data {what}")
        pos = e
    if pos != data_size:
        raise FormatError(f"{where}: {data_size - pos} bytes after the last tensor's data")
    out = {}
    for name, (dtype, shape, at, nbytes) in tensors.items():
        raw = np.frombuffer(buf, dtype=np.uint8, count=nbytes, offset=at)
        if at % max(1, dtype.itemsize):  # unaligned for its dtype: copy (bounded by the file size)
            raw = raw.copy()
        t = torch.from_numpy(raw)
        out[name] = (t.view(dtype) if nbytes else torch.empty(0, dtype=dtype)).reshape(shape)
    return meta, out


__all__ = ["parse", "serialize", "loads", "is_int", "DTYPES", "MAX_DIMS"]
