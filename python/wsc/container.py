"""The .wsc file: a safetensors file (no pickle: reading never runs code) with JSON metadata.

Tensors in the file (few and flat, so the header stays small):

- ``codebook``: float32[m], the shared values;
- ``lengths``: uint8[H, max(m, 2)], the Huffman code lengths of each of the H shared tensors
  coded with Huffman, in order (absent when no tensor is);
- ``tables``: uint8, the packed rANS frequency tables (``wsc.rans.pack_freqs``, table
  encoding 2; encoding 1 in version 2 files) of the shared tensors coded with rANS, back to
  back (absent when no tensor is);
- ``offsets``: for each shared tensor in turn the byte offset where each of its chunks
  ends, ceil(numel / chunk_size) values (the first chunk starts at 0); uint32, or int64 when
  a stream holds 4 GiB or more. Before version 7: int64, each tensor's list led by its 0;
- ``data``: uint8, the payloads of the shared tensors back to back;
- ``scales``: bfloat16, for the shared tensors that have them (schemes with a per-tensor or
  per-channel scope, :mod:`wsc.scheme`), in order, their scales back to back (absent when
  no tensor has any): one per tensor or one per slice along dimension 0; such a tensor's
  entry records how many (``"scales"``) and its weights are ``fl32(codebook[i] * scale)``;
- ``stored.<dtype>``: 1-D, the other (unshared) tensors, flattened and concatenated by
  the dtype they are stored in, in state-dict order. Since version 5 a float tensor may be
  stored narrower than its own dtype (``"stored_as"``): as float16 / bfloat16 / float32
  (widened back on reading), or as uint8 codes c of 256 equal steps over its range
  (``"range": [lo, hi]``; the value is ``lo + c * (hi - lo) / 255`` in float64, then
  rounded to its dtype: :func:`dequantize8`); and a tensor whose elements are all the same
  (bit for bit) holds no data: its entry records the value (``"fill"``).

The metadata is one JSON text, deflated in the uint8 tensor ``meta`` (the safetensors
metadata says ``"wsc.meta": "zlib-dict2"``, zlib with the preset dictionary
:data:`META_DICT2` of the strings every metadata repeats, since version 7; ``"zlib-dict1"``
(:data:`META_DICT`) in version 6; ``"zlib"``, no dictionary, in versions 3 to 5; and holds
the text's CRC-32 under ``"wsc.crc32"``); files
written before version 3 hold the text itself under ``"wsc"``, which is still read.
The JSON: format, version (7), the coder (``"huffman"``, ``"rans"``, or ``"auto"`` when the
streams use both), codebook size and CRC-32, the chunk size of the
Huffman streams (when there are any), and the list of state-dict names in order, each with
shape, dtype (unless float32), and for a shared tensor the CRC-32 of its stream (what
makes an entry shared), or, for a name tied to another tensor, ``alias_of``; one CRC-32
of every unshared tensor in order, as stored (``stored_crc32``; a fill as its elements);
and free-form ``info``. A shared tensor also records, when coded with Huffman, its payload
bits (the code bits, padding excluded; a rANS stream's are its payload bytes times 8), its
coder (``"huffman"`` or ``"rans"``) in an ``"auto"`` file, and when coded with rANS its
chunk size (unless the stream is one chunk), its states per chunk (``"states"``: 1, 2, 4
or 8) and the size of its packed table; its CRC-32 covers its code lengths or table,
offsets (as the file holds them) and payload (and its scales). Its element count is its
shape's product. The range of a float32 (or narrower) tensor's uint8 codes is written as the
shortest decimals that give its float32 ends back, and read rounded to float32.
Version 6 files (each entry with its dtype, ``"shared"``, a shared one's ``"numel"``,
payload bits and chunk size; int64 offsets led by each stream's 0; ``zlib-dict1``), version 5 files (metadata deflated without a dictionary, a CRC-32 per unshared tensor),
version 4 files (no ``stored_as``, no ``fill``), version 3 files (every rANS stream with 8 states), version 2 files (rANS tables in encoding
1, no scales, metadata uncompressed) and version 1 files (Huffman only, written before rANS)
are still read.
The reader checks all of it and raises :class:`wsc.FormatError` on any inconsistency.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import zlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from wsc import _safetensors
from wsc._safetensors import is_int as _is_int
from wsc.errors import FormatError

FORMAT = "wsc"
VERSION = 7
READABLE = (1, 2, 3, 4, 5, 6, 7)
TABLE_ENCODING = {2: 1, 3: 2, 4: 2, 5: 2, 6: 2, 7: 2}  # the rANS table encoding (wsc.rans.unpack_freqs) of each version
OLD_RANS_STATES = 8  # the states per chunk of every rANS stream before version 4
CODERS = ("huffman", "rans")  # the coder of one stream
CODER_OPTIONS = CODERS + ("auto",)  # what a file is written with
DEFAULT_CODER = "auto"
DEFAULT_CHUNK = 16384  # Huffman; rANS picks its own (wsc.rans.auto_layout)
META_LIMIT = 100 * 2**20  # bytes of metadata JSON a reader inflates at most
_NATIVE = (torch.float32, torch.float16, torch.bfloat16)
_FLOATS = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
           "float64": torch.float64}
_NARROW = ("float32", "float16", "bfloat16", "uint8")  # what a float tensor may be stored as (version 5)
FILL_LIMIT = 1 << 24  # bytes of constant tensors a file may hold as fills, in all (larger ones are stored as data)
# The preset dictionary the metadata of a version 6 file is deflated with ("wsc.meta": "zlib-dict1"):
# the strings every metadata text repeats, so a small file does not pay for spelling them out
# once. Part of the format: never change it (a new dictionary is a new "wsc.meta" value).
META_DICT = (b'{"alias_of":"","bits":,"chunk_size":4194304,"crc32":,"dtype":"float32","name":"","numel":,"shape":[],'
             b'"shared":true,"states":1,"table_bytes":},{"crc32":,"dtype":"float32","name":".bias","shape":[],'
             b'"shared":false,"stored_as":"uint8","range":[,],"fill":0.0,"stored_as":"float16","name":'
             b'".running_mean","name":".running_var","name":".num_batches_tracked","dtype":"int64","fill":0,'
             b'".weight","coder":"rans","coder":"huffman","scales":{"codebook":{"crc32":,"size":},"coder":"auto",'
             b'"format":"wsc","info":{"hi":,"k":,"lo":,"merged":,"params":"weights","values":},"tensors":'
             b'[{"bits":,"chunk_size":16384,"version":6}')
# The dictionary of version 7 ("zlib-dict2"): the entries of version 7 leave out what they imply,
# so the strings they repeat changed. Part of the format as well: never change it.
META_DICT2 = (b'{"codebook":{"crc32":,"size":},"coder":"huffman","coder":"auto","coder":"rans","format":"wsc","info":'
              b'{"compensated":{"method":"gptq","rate":0.0},"hi":0.,"k":,"lo":-0.,"merged":false,"merged":true,'
              b'"params":"weights","scheme":{"clip":0,"placement":"kmeans","placement":"uniform","range_kept":1.0,'
              b'"scope":"tensor","scope":"channel","scope":"global","steps":[0,0,0,0,"values":},"stored_crc32":,'
              b'"tensors":[{"alias_of":"","chunk_size":16384,"bits":,"chunk_size":,"scales":1,"dtype":"float16",'
              b'"dtype":"bfloat16","dtype":"float64","fill":0,"fill":0.0,"name":".running_mean","shape":[]},'
              b'{"fill":1.0,"name":".weight","shape":[]},{"fill":0.9999899864196777,"name":".running_var","shape":[]},'
              b'{"dtype":"int64","fill":,"name":".num_batches_tracked","shape":[]},{"name":".bias","shape":[],'
              b'"stored_as":"float16"},{"name":".bias","range":[-0.,0.],"shape":[],"stored_as":"uint8"},'
              b'{"crc32":,"name":".weight","shape":[],"states":1,"table_bytes":}],"version":7}')
META_ENCODINGS = {"zlib": b"", "zlib-dict1": META_DICT, "zlib-dict2": META_DICT2}  # "wsc.meta" -> preset dictionary
META_SINCE = {"zlib": 3, "zlib-dict1": 6, "zlib-dict2": 7}  # the first version with each
META_ENCODING = "zlib-dict2"  # what this version writes


@dataclass
class SharedTensor:
    """A shared tensor: its codebook indices (flat uint8/uint16), shape and original dtype.

    ``source``: the indices, or a callable that makes them; then each read of
    :attr:`indices` calls it afresh (nothing is kept), so a writer that codes one tensor at a
    time holds one tensor's indices at a time.
    """

    name: str
    source: np.ndarray | Callable[[], np.ndarray]
    shape: tuple[int, ...]
    dtype: torch.dtype
    scale: torch.Tensor | None = None  # bfloat16, 1 or shape[0] values

    @property
    def indices(self) -> np.ndarray:
        return self.source() if callable(self.source) else self.source


@dataclass
class Payload:
    """Everything a .wsc file holds, before coding. ``order``: all names (aliases too).
    ``stored``: the unshared tensors as the file stores them; ``restore``: how to read back
    those stored narrower than their own dtype (:class:`Narrowed`)."""

    codebook: np.ndarray
    shared: list[SharedTensor]
    stored: dict[str, torch.Tensor]
    aliases: dict[str, str] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    info: dict = field(default_factory=dict)
    restore: dict[str, "Narrowed"] = field(default_factory=dict)

    def restored(self) -> dict[str, torch.Tensor]:
        """The unshared tensors as a reader gets them (in their own dtype)."""
        return restore_stored(self.stored, self.restore)


@dataclass(frozen=True)
class Narrowed:
    """A stored tensor kept narrower than its own ``dtype``: in a narrower float dtype, or
    (``span`` = (lo, hi)) as uint8 codes of 256 equal steps over [lo, hi]."""

    dtype: torch.dtype
    span: tuple[float, float] | None = None


def quantize8(t: torch.Tensor) -> tuple[torch.Tensor, tuple[float, float]]:
    """uint8 codes of a float tensor of two or more distinct finite values, 256 equal steps over its range."""
    x = t.detach().to(torch.float64)
    lo, hi = float(x.min()), float(x.max())
    codes = torch.round((x - lo) * (255 / (hi - lo))).clamp_(0, 255).to(torch.uint8)
    return codes, (lo, hi)


def dequantize8(codes: torch.Tensor, span: tuple[float, float], dtype: torch.dtype) -> torch.Tensor:
    """The values of uint8 codes over ``span`` in ``dtype`` (computed in float64, then rounded)."""
    lo, hi = span
    return (codes.to(torch.float64) * ((hi - lo) / 255) + lo).to(dtype)


def restore_stored(stored: dict[str, torch.Tensor], restore: dict[str, Narrowed]) -> dict[str, torch.Tensor]:
    """Stored tensors in their own dtype, as a reader restores them."""
    out = {}
    for n, t in stored.items():
        r = restore.get(n)
        out[n] = t if r is None else (dequantize8(t, r.span, r.dtype) if r.span else t.to(r.dtype))
    return out


def _alphabet(m: int) -> int:
    """Symbols of the Huffman code of a codebook of m values (the coder needs at least 2)."""
    return max(m, 2)


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _crc(*arrays, start: int = 0) -> int:
    """CRC-32 of the arrays' bytes back to back, continuing from ``start``."""
    c = start
    for a in arrays:
        if isinstance(a, torch.Tensor):
            a = a.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()
        c = zlib.crc32(np.ascontiguousarray(a).view(np.uint8).tobytes(), c)
    return c


def rescale(values: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Flat float32 shared values times their scale (one per tensor, or per slice along
    dimension 0): the product the search evaluates and a reader computes, bit for bit."""
    v = values.reshape(scale.numel(), -1)
    return (v * scale.float().reshape(-1, 1)).reshape(-1)


def scale_counts(shape) -> set[int]:
    """How many scales a shared tensor of ``shape`` may have: one, or one per slice along
    dimension 0 (tensors of two or more dimensions)."""
    return {1, shape[0] if len(shape) >= 2 else 1}


def _check_scale(s: SharedTensor) -> torch.Tensor:
    sc = s.scale
    if not isinstance(sc, torch.Tensor) or sc.dtype != torch.bfloat16 or sc.dim() != 1:
        raise ValueError(f"{s.name}: scale must be a 1-D bfloat16 tensor")
    if sc.numel() not in scale_counts(s.shape):
        raise ValueError(f"{s.name}: {sc.numel()} scales for shape {list(s.shape)} (1, or one per slice of dim 0)")
    if not bool((torch.isfinite(sc) & (sc > 0)).all()):
        raise ValueError(f"{s.name}: scales must be finite and positive")
    return sc.detach().cpu().contiguous()


# ---------------------------------------------------------------- writing
@dataclass
class Layout:
    """A .wsc file ready to write: its first bytes (length and safetensors header), its data
    buffers in file order (the per-tensor streams as they were coded, never concatenated),
    and its metadata."""

    head: bytes
    buffers: list[np.ndarray]
    meta: dict
    bits: int  # payload bits of the shared tensors (Huffman: padding excluded)
    coders: list[str]  # the coder of each shared tensor, in order

    @property
    def size(self) -> int:
        """The exact size of the file in bytes."""
        return len(self.head) + sum(int(b.size) for b in self.buffers)

    def tobytes(self) -> bytes:
        return b"".join([self.head, *self.buffers])


def check_coder(coder) -> str:
    """``coder`` after checking that it is one of CODER_OPTIONS."""
    if coder not in CODER_OPTIONS:
        raise ValueError(f"coder must be one of {CODER_OPTIONS}; got {coder!r}")
    return coder


@dataclass
class _Coded:
    """One shared tensor's stream as the file stores it."""

    coder: str
    chunk_size: int
    code: np.ndarray  # Huffman code lengths (one row of `lengths`) or the packed rANS table
    offsets: np.ndarray
    data: np.ndarray
    bits: int
    n: int  # symbols
    states: int = 0  # rANS: states per chunk

    @property
    def stored_bytes(self) -> int:
        """What the stream adds to the file: payload, chunk end offsets (uint32), code lengths or table."""
        return int(self.data.size + 4 * (self.offsets.size - 1) + self.code.size)


def _code_stream(idx: np.ndarray, counts: np.ndarray, coder: str, chunk_size: int | None) -> _Coded:
    from wsc import huffman, rans

    if coder == "huffman":
        s = huffman.encode(idx, counts, chunk_size=DEFAULT_CHUNK if chunk_size is None else chunk_size)
        ln = np.asarray(s.lengths, dtype=np.uint8)
        bits = int((counts * ln.astype(np.int64)).sum())
        return _Coded("huffman", s.chunk_size, ln, np.asarray(s.chunk_offsets, dtype=np.int64),
                      np.asarray(s.data, dtype=np.uint8), bits, int(idx.size))
    s = rans.encode(idx, counts, chunk_size=chunk_size)
    table = rans.pack_freqs(s.freqs, s.scale_bits)
    return _Coded("rans", s.chunk_size, table, np.asarray(s.chunk_offsets, dtype=np.int64),
                  np.asarray(s.data, dtype=np.uint8), s.nbits, int(idx.size), s.states)


def layout(p: Payload, *, coder: str = DEFAULT_CODER, chunk_size: int | None = None) -> Layout:
    """Code the payload, one shared tensor at a time, into the parts of its file.

    ``coder``: ``"huffman"``, ``"rans"`` or ``"auto"``: every shared tensor coded both ways,
    then the smallest of three files: all Huffman, all rANS, or each tensor with the coder
    that stores it in fewer bytes (ties: in that order). The metadata names the coder of
    the file: ``"auto"`` only for a file that mixes both. ``chunk_size``: symbols per chunk;
    None: 16384 for Huffman, rANS's own choice (:func:`wsc.rans.auto_layout`).
    """
    from wsc import huffman

    check_coder(coder)
    cb = np.ascontiguousarray(p.codebook, dtype=np.float32)
    m = cb.size
    if not 1 <= m <= 65536:
        raise ValueError(f"the codebook must hold 1 to 65536 values; got {m}")
    if not p.shared:
        raise ValueError("a .wsc file needs at least one shared tensor")
    coded: dict[str, list[_Coded]] = {c: [] for c in (CODERS if coder == "auto" else (coder,))}
    for s in p.shared:
        idx = np.ascontiguousarray(s.indices).reshape(-1)
        counts = huffman.histogram(idx, _alphabet(m))
        for c, streams in coded.items():
            streams.append(_code_stream(idx, counts, c, chunk_size))
        del idx  # one tensor's indices at a time
    if coder != "auto":
        return _assemble(p, cb, coded[coder], coder)
    h, r = coded["huffman"], coded["rans"]
    mixed = [b if b.stored_bytes < a.stored_bytes else a for a, b in zip(h, r)]
    files = [_assemble(p, cb, h, "huffman"), _assemble(p, cb, r, "rans")]
    if len({c.coder for c in mixed}) > 1:
        files.append(_assemble(p, cb, mixed, "auto"))
    return min(files, key=lambda f: f.size)


def _assemble(p: Payload, cb: np.ndarray, coded: list[_Coded], coder: str) -> Layout:
    """The file of the payload with the shared tensors' streams ``coded``."""
    m = cb.size
    order = list(p.order) or [s.name for s in p.shared] + list(p.stored)
    entries: dict[str, dict] = {}
    lengths, tables, scales = [], [], []
    huffman_chunk = None
    wide = max(int(c.offsets[-1]) for c in coded) >= 1 << 32  # a stream of 4 GiB or more
    ends = [c.offsets[1:].astype(np.int64 if wide else np.uint32) for c in coded]  # each starts at 0
    for s, c, end in zip(p.shared, coded, ends):
        sc = None if s.scale is None else _check_scale(s)
        parts = (c.code, end, c.data) if sc is None else (c.code, end, c.data, sc)
        e = _entry(s.name, s.shape, s.dtype)
        e["crc32"] = _crc(*parts)
        if sc is not None:
            e["scales"] = int(sc.numel())
            scales.append(sc)
        if coder == "auto":
            e["coder"] = c.coder
        if c.coder == "rans":
            if c.offsets.size > 2:  # one chunk: its size is the element count
                e["chunk_size"] = int(c.chunk_size)
            e["states"] = int(c.states)
            e["table_bytes"] = int(c.code.size)
            tables.append(c.code)
        else:
            e["bits"] = c.bits  # rANS: the payload bytes times 8, so not recorded
            huffman_chunk = int(c.chunk_size)
            lengths.append(c.code)
        entries[s.name] = e
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    filled = 0  # bytes of the fills so far
    stored_crc = 0  # of every unshared tensor as the file stores it, in order (fills expanded)
    for name, t in p.stored.items():
        t = t.detach().cpu().contiguous()
        r = p.restore.get(name)
        own = t.dtype if r is None else r.dtype
        e = entries[name] = _entry(name, t.shape, own)
        if r is not None:
            ok = _dtype_name(own) in _FLOATS and _dtype_name(t.dtype) in _NARROW
            if not ok or (t.dtype == torch.uint8) != (r.span is not None):
                raise ValueError(f"{name}: a {own} tensor cannot be stored as {t.dtype}"
                                 f"{' with a range' if r.span else ''} (floats only; uint8 codes with a range)")
            e["stored_as"] = _dtype_name(t.dtype)
            if r.span is not None:
                lo, hi = map(float, r.span)
                if _span_problem(lo, hi, own):
                    raise ValueError(f"{name}: the range of uint8 codes must be finite with lo < hi within "
                                     f"{own}; got {r.span}")
                e["range"] = _range_text(lo, hi, own, name)
        fill = _fill_value(t)
        if fill is not None and filled + t.numel() * t.element_size() <= FILL_LIMIT:
            e["fill"] = fill
            filled += t.numel() * t.element_size()
            stored_crc = _fill_crc(t, t.numel(), stored_crc)
        else:
            by_dtype.setdefault(t.dtype, []).append(t)
            stored_crc = _crc(t, start=stored_crc)
    tensors = {"codebook": (torch.float32, (m,), [cb]),
               "offsets": (torch.int64 if wide else torch.uint32, (sum(o.size for o in ends),), ends),
               "data": (torch.uint8, (sum(c.data.size for c in coded),), [c.data for c in coded])}
    if lengths:
        tensors["lengths"] = (torch.uint8, (len(lengths), _alphabet(m)), lengths)
    if tables:
        tensors["tables"] = (torch.uint8, (sum(t.size for t in tables),), tables)
    if scales:
        tensors["scales"] = (torch.bfloat16, (sum(int(t.numel()) for t in scales),), scales)
    for dt, ts in by_dtype.items():
        tensors[f"stored.{_dtype_name(dt)}"] = (dt, (sum(t.numel() for t in ts),), ts)
    for alias, target in p.aliases.items():
        if target not in entries:
            raise ValueError(f"alias {alias!r} points to {target!r}, which is not in the payload")
        entries[alias] = {"name": alias, "alias_of": target}
    if sorted(order) != sorted(entries):
        raise ValueError("order must list every tensor and alias exactly once")
    meta = {"format": FORMAT, "version": VERSION, "coder": coder,
            "codebook": {"size": int(m), "crc32": _crc(cb)}, "tensors": [entries[n] for n in order],
            "stored_crc32": stored_crc, "info": p.info}
    if huffman_chunk is not None:
        meta["chunk_size"] = huffman_chunk
    text = json.dumps(meta, sort_keys=True, separators=(",", ":"))
    crc = str(zlib.crc32(text.encode()))
    deflate = zlib.compressobj(9, zdict=META_ENCODINGS[META_ENCODING])
    packed = np.frombuffer(deflate.compress(text.encode()) + deflate.flush(), dtype=np.uint8)  # a fifth of the text
    tensors["meta"] = (torch.uint8, (packed.size,), [packed])
    head, buffers = _safetensors.serialize(tensors, {"wsc.meta": META_ENCODING, "wsc.crc32": crc})
    return Layout(head, buffers, meta, sum(c.bits for c in coded), [c.coder for c in coded])


def _entry(name: str, shape, dtype: torch.dtype) -> dict:
    """A tensor's metadata entry: its name, shape and, unless float32 (the default), dtype."""
    e = {"name": name, "shape": list(shape)}
    if dtype != torch.float32:
        e["dtype"] = _dtype_name(dtype)
    return e


def _range_text(lo: float, hi: float, dtype: torch.dtype, name: str) -> list[float]:
    """The range of uint8 codes as the metadata holds it: a float32 or narrower tensor's
    ends (float32 values, its own minimum and maximum) as the shortest decimals that give
    them back in float32; a float64 tensor's as they are."""
    if dtype == torch.float64:
        return [lo, hi]
    short = [float(str(np.float32(v))) for v in (lo, hi)]
    if [_as_float32(v) for v in short] != [lo, hi]:
        raise ValueError(f"{name}: the range of the uint8 codes of a {dtype} tensor must be float32 values; "
                         f"got {[lo, hi]}")
    return short


def _as_float32(v: float) -> float:
    """``v`` rounded to float32 (an overflow gives inf)."""
    with np.errstate(over="ignore"):
        return float(np.float32(v))


def _fill_value(t: torch.Tensor):
    """The one value of a tensor whose elements are all equal bit for bit (a finite float,
    an int or a bool, as JSON holds it exactly), else None."""
    if t.numel() == 0 or t.is_complex():
        return None
    flat = t.reshape(-1)
    bits = flat.view(torch.uint8).reshape(flat.numel(), -1)
    if not bool((bits == bits[0]).all()):
        return None
    v = flat[0].item()
    return v if not isinstance(v, float) or math.isfinite(v) else None


def _span_problem(lo: float, hi: float, dtype: torch.dtype) -> bool:
    """Whether [lo, hi] cannot be the range of uint8 codes of a ``dtype`` tensor."""
    top = torch.finfo(dtype).max
    return not (math.isfinite(hi - lo) and lo < hi and -top <= lo and hi <= top)


def _fill_crc(value: torch.Tensor, n: int, start: int = 0) -> int:
    """CRC-32 of ``n`` copies of the one element of ``value``, continuing from ``start``, a
    block at a time (no tensor of n made)."""
    one = value.reshape(-1)[:1].contiguous().view(torch.uint8).numpy().tobytes()
    per = max(1, min(n, (1 << 20) // len(one)))
    block, c = one * per, start
    for _ in range(n // per):
        c = zlib.crc32(block, c)
    return zlib.crc32(one * (n % per), c)


def _filled(e: dict, dtype: torch.dtype, shape: tuple[int, ...]) -> torch.Tensor:
    """The tensor of a ``fill`` entry, checked against its dtype."""
    v = e["fill"]
    kind = bool if dtype == torch.bool else (int if not dtype.is_floating_point else (int, float))
    _check(isinstance(v, kind) and (dtype == torch.bool or not isinstance(v, bool))
           and (not isinstance(v, float) or math.isfinite(v)),
           f"{_name(e)}: fill {_show(v, 40)} is not a {dtype} value")
    try:
        t = torch.full(shape, v, dtype=dtype)
    except (RuntimeError, OverflowError, TypeError):
        raise FormatError(f"{_name(e)}: fill {_show(v, 40)} is not a {dtype} value") from None
    _check(t.numel() == 0 or t.reshape(-1)[0].item() == v, f"{_name(e)}: fill {_show(v, 40)} is not a {dtype} value")
    return t


def shared_entries(meta: dict) -> list[dict]:
    """The entries of the shared tensors of a file's metadata (as written), in order: from
    version 7 those with a stream CRC-32, before those marked shared."""
    if meta.get("version", 1) >= 7:
        return [e for e in meta["tensors"] if "crc32" in e and "alias_of" not in e]
    return [e for e in meta["tensors"] if e.get("shared") is True and "alias_of" not in e]


def shared_coders(meta: dict) -> list[str]:
    """The coder of each shared tensor of a file's metadata, in order."""
    option = meta.get("coder", "huffman")
    return [e.get("coder", "huffman") if option == "auto" else option for e in shared_entries(meta)]


def encode(p: Payload, *, coder: str = DEFAULT_CODER, chunk_size: int | None = None) -> tuple[bytes, dict]:
    """(the exact bytes of the file, its metadata) for the payload (see :func:`layout`)."""
    lay = layout(p, coder=coder, chunk_size=chunk_size)
    return lay.tobytes(), lay.meta


def to_bytes(p: Payload, *, coder: str = DEFAULT_CODER, chunk_size: int | None = None) -> bytes:
    """The exact bytes of the .wsc file of the payload."""
    return encode(p, coder=coder, chunk_size=chunk_size)[0]


def write(path, p: Payload, *, coder: str = DEFAULT_CODER, chunk_size: int | None = None) -> int:
    """Write the payload to ``path`` atomically (temp file + rename), buffer by buffer; returns
    the file size."""
    lay = layout(p, coder=coder, chunk_size=chunk_size)
    return write_bytes(path, [lay.head, *lay.buffers])


def write_bytes(path, data) -> int:
    """Write ``data`` (bytes, or a list of buffers written back to back) to ``path`` atomically:
    a temp file in the same folder, flushed to disk, then os.replace. On any failure (an
    exception, Ctrl-C) the temp file is removed and ``path`` is left as it was."""
    path = os.fspath(path)
    parts = [data] if isinstance(data, (bytes, bytearray, memoryview)) else list(data)
    fd, tmp = tempfile.mkstemp(prefix=".wsc-", suffix=".tmp", dir=os.path.dirname(os.path.abspath(path)))
    size = 0
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
            for part in parts:
                f.write(part)
                size += memoryview(part).nbytes
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return size


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# ---------------------------------------------------------------- reading
def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise FormatError(msg)


def _read_bytes(source) -> tuple[bytearray, str]:
    """The bytes of a .wsc file (a path, or the bytes themselves) in a writable buffer."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytearray(source), "the data"
    where = os.fspath(source)
    with open(where, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        buf = bytearray(size)
        got = f.readinto(buf)
    _check(got == size, f"{where}: read {got} of {size} bytes (the file changed while reading)")
    return buf, where


def _inflate(packed: torch.Tensor, where: str, zdict: bytes = b"") -> str:
    """The metadata JSON from the zlib stream of the ``meta`` tensor (deflated with the preset
    dictionary ``zdict``): at most META_LIMIT bytes, the stream complete and nothing after it."""
    _check(packed.dtype == torch.uint8 and packed.dim() == 1, f"{where}: tensor 'meta' must be 1-D uint8")
    d = zlib.decompressobj(zdict=zdict)  # an empty dictionary: plain zlib
    try:
        raw = d.decompress(packed.numpy().tobytes(), META_LIMIT)
    except zlib.error as exc:
        raise FormatError(f"{where}: the compressed metadata is corrupt ({exc})") from None
    _check(not d.unconsumed_tail, f"{where}: the metadata inflates past {META_LIMIT} bytes")
    _check(d.eof and not d.unused_data, f"{where}: the compressed metadata is truncated or has trailing bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError(f"{where}: the metadata is not UTF-8 text") from None


def _read_raw(source) -> tuple[dict, dict[str, torch.Tensor], int, str | None]:
    """(metadata, tensors, file size, how the metadata was compressed) of a .wsc file (path or
    bytes): the safetensors layer and the metadata checksum checked, the .wsc structure not
    yet. Tensors view one buffer. The metadata JSON is either compressed in the ``meta``
    tensor (what wsc writes: ``"wsc.meta"`` names the compression, META_ENCODINGS) or inline
    under ``"wsc"`` (files written before version 3; then the compression is None)."""
    data, where = _read_bytes(source)
    header, tensors = _safetensors.parse(data, where)
    text, crc, packing = header.get("wsc"), header.get("wsc.crc32"), header.get("wsc.meta")
    if "wsc.meta" in header:
        _check(text is None and packing in META_ENCODINGS and "meta" in tensors,
               f"{where}: 'wsc.meta' must be one of {', '.join(META_ENCODINGS)}, with a 'meta' tensor and no "
               "inline 'wsc' metadata")
        text = _inflate(tensors.pop("meta"), where, META_ENCODINGS[packing])
    _check(isinstance(text, str), f"{where}: not a .wsc file (no 'wsc' metadata in the safetensors header)")
    _check(crc == str(zlib.crc32(text.encode("utf-8", "surrogatepass"))),
           f"{where}: checksum mismatch: the metadata is corrupt")
    meta = _safetensors.loads(text, f"{where}: the 'wsc' metadata")
    return meta, tensors, len(data), packing


def _tensor(tensors: dict, key: str, dtype: torch.dtype, dim: int = 1) -> torch.Tensor:
    _check(key in tensors, f"tensor {key!r} is missing")
    v = tensors[key]
    _check(v.dtype == dtype and v.dim() == dim, f"tensor {key!r} must be {dim}-D {_dtype_name(dtype)}; "
           f"got {_dtype_name(v.dtype)} of shape {tuple(v.shape)}")
    return v


def _shape(e: dict) -> tuple[int, ...]:
    shape = e.get("shape")
    _check(isinstance(shape, list) and len(shape) <= _safetensors.MAX_DIMS
           and all(_is_int(d) and 0 <= d < 2**62 for d in shape),
           f"{_name(e)}: bad shape {_show(shape, 100)} (a list of at most {_safetensors.MAX_DIMS} integers >= 0)")
    return tuple(shape)


def _name(e: dict) -> str:
    return _show(e.get("name"), 200)


def _show(v, n: int = 40) -> str:
    """repr(v), cut to about n characters (hostile files may hold huge values)."""
    r = repr(v)
    return r if len(r) <= n else r[:n] + "..."


@dataclass
class _Stream:
    entry: dict
    coder: str
    chunk_size: int
    code: np.ndarray  # Huffman code lengths, or the packed rANS table
    offsets: np.ndarray  # every chunk's start and the end, int64
    data: np.ndarray
    kept: np.ndarray  # the offsets as the file holds them (what the CRC-32 covers)
    scale: torch.Tensor | None = None  # bfloat16 scales, for a scoped scheme
    states: int = 0  # rANS: states per chunk

    @property
    def lengths(self) -> np.ndarray:  # the name in version 1
        return self.code


MAX_CHUNK = 2**40


class Archive:
    """A parsed and checked .wsc file; streams are decoded on demand.

    Construction checks the whole structure (every declared count, shape and offset against
    the bytes actually present) but decodes nothing; checksums are checked when a tensor is
    read (:meth:`state_dict`) or by :meth:`verify`. Any inconsistency raises FormatError.
    """

    def __init__(self, source):
        self.where = "the data" if isinstance(source, (bytes, bytearray, memoryview)) else os.fspath(source)
        with self._located():
            self._parse(source)

    @contextlib.contextmanager
    def _located(self):
        """Prefix the file's name to a FormatError's message (once)."""
        try:
            yield
        except FormatError as exc:
            if str(exc).startswith(self.where + ": "):
                raise
            raise FormatError(f"{self.where}: {exc}") from None

    def _parse(self, source) -> None:
        self.meta, self.tensors, self.file_bytes, packing = _read_raw(source)
        meta = self.meta
        _check(isinstance(meta, dict) and meta.get("format") == FORMAT, "not a .wsc file (format field)")
        version = meta.get("version")
        _check(_is_int(version) and version in READABLE,
               f"unsupported .wsc format version {_show(version, 40)} (this reader knows "
               f"{', '.join(map(str, READABLE))})")
        self.version = int(version)
        since = META_SINCE.get(packing, 0)
        _check(self.version >= since, f"metadata deflated as {packing} in a version {self.version} file (it came in "
                                      f"version {since})")
        if self.version >= 6:
            _check(_is_int(meta.get("stored_crc32")), "metadata field 'stored_crc32' is missing or not an int")
        coder = meta.get("coder")
        coders = ("huffman",) if self.version == 1 else CODER_OPTIONS
        _check(isinstance(coder, str) and coder in coders,
               f"unknown coder {_show(coder, 40)} (version {self.version} files use {', '.join(coders)})")
        for key, kind in (("codebook", dict), ("tensors", list)):
            _check(isinstance(meta.get(key), kind), f"metadata field {key!r} is missing or not a {kind.__name__}")
        if self.version == 1 or "chunk_size" in meta:  # the Huffman streams' chunk size
            cs = meta.get("chunk_size")
            _check(_is_int(cs), "metadata field 'chunk_size' is missing or not a int")
            _check(1 <= cs <= MAX_CHUNK, f"chunk_size must be in [1, 2^40]; got {_show(cs, 40)}")
        _check(all(isinstance(e, dict) and isinstance(e.get("name"), str) for e in meta["tensors"]),
               "every tensor entry needs a name")
        names = [e["name"] for e in meta["tensors"]]
        _check(len(set(names)) == len(names), "a tensor name appears twice")
        if self.version >= 7:
            self._implied(meta["tensors"])
        self.aliases = {e["name"]: e["alias_of"] for e in meta["tensors"] if "alias_of" in e}
        _check(all(isinstance(v, str) for v in self.aliases.values()), "an alias_of is not a tensor name")
        real = set(names) - set(self.aliases)
        _check(all(v in real for v in self.aliases.values()), "an alias points to no stored tensor")
        self.codebook = _tensor(self.tensors, "codebook", torch.float32)
        m, size = self.codebook.numel(), meta["codebook"].get("size")
        _check(_is_int(size) and m == size and 1 <= m <= 65536,
               f"the codebook holds {m} values, the metadata says {_show(size, 40)}")
        _check(bool(torch.isfinite(self.codebook).all()), "the codebook holds NaN or Inf")
        self.codebook_ok = _crc(self.codebook) == meta["codebook"].get("crc32")
        self.shared = [e for e in meta["tensors"] if e.get("shared") is True and "alias_of" not in e]
        self.stored = [e for e in meta["tensors"] if e.get("shared") is False and "alias_of" not in e]
        _check(len(self.shared) + len(self.stored) + len(self.aliases) == len(names),
               "every tensor entry needs shared: true/false (or alias_of)")
        _check(len(self.shared) >= 1, "the file holds no shared tensor")
        self.streams = self._split_streams()
        self._stored_views = self._split_stored()
        expected = {"codebook", "offsets", "data"} | self._stored_keys
        expected |= {"lengths"} if any(s.coder == "huffman" for s in self.streams) else set()
        expected |= {"tables"} if any(s.coder == "rans" for s in self.streams) else set()
        expected |= {"scales"} if any(s.scale is not None for s in self.streams) else set()
        extra = set(self.tensors) - expected
        _check(not extra, f"unexpected tensors in the file: {sorted(extra)[:10]}")

    @staticmethod
    def _implied(entries: list[dict]) -> None:
        """Fill in what a version 7 entry implies rather than records: dtype float32 unless
        named, shared when it has a stream CRC-32 (an unshared tensor has none since version 6),
        and a shared tensor's element count (its shape's product)."""
        for e in entries:
            _check("shared" not in e and "numel" not in e,
                   f"{_name(e)}: 'shared' or 'numel' in a version 7 entry (implied there)")
            if "alias_of" in e:
                continue
            e.setdefault("dtype", "float32")
            e["shared"] = "crc32" in e
            if e["shared"]:
                e["numel"] = math.prod(_shape(e))

    def _stream_coder(self, e: dict) -> tuple[str, int, int]:
        """(coder, chunk size, rANS states per chunk or 0) of a shared entry, checked. The
        coder is the file's unless the file was written with "auto"; a Huffman stream takes the
        file's chunk size, a rANS stream has its own, and its state count from version 4."""
        from wsc import rans

        name, option = _name(e), self.meta["coder"]
        if option == "auto":
            coder = e.get("coder")
            _check(isinstance(coder, str) and coder in CODERS,
                   f"{name}: unknown coder {_show(coder, 40)} (this reader knows {', '.join(CODERS)})")
        else:
            _check("coder" not in e or e["coder"] == option,
                   f"{name}: coder {_show(e.get('coder'), 40)} in a file written with {option!r}")
            coder = option
        if coder == "rans":
            cs = e.get("chunk_size")
            if "chunk_size" not in e and self.version >= 7:  # one chunk
                cs = max(1, e["numel"])  # implied by the shape (_implied)
            _check(_is_int(cs) and 1 <= cs <= rans.MAX_CHUNK,
                   f"{name}: chunk_size {_show(cs, 40)} missing or outside [1, {rans.MAX_CHUNK}]")
            states = e.get("states") if self.version >= 4 else OLD_RANS_STATES
            _check(_is_int(states) and states in rans.STATE_COUNTS,
                   f"{name}: states {_show(states, 40)} missing or not one of {sorted(rans.STATE_COUNTS)}")
            return coder, cs, states
        _check("chunk_size" in self.meta, "metadata field 'chunk_size' is missing (the file holds Huffman streams)")
        return coder, self.meta["chunk_size"], 0

    def _offsets(self) -> np.ndarray:
        """The ``offsets`` tensor: int64, or from version 7 uint32 (int64 when a stream is 4 GiB
        or more)."""
        v = self.tensors.get("offsets")
        if self.version >= 7 and v is not None and v.dtype == torch.uint32:
            return _tensor(self.tensors, "offsets", torch.uint32).numpy()
        return _tensor(self.tensors, "offsets", torch.int64).numpy()

    def _split_streams(self) -> list[_Stream]:
        m = self.codebook.numel()
        a = _alphabet(m)
        kinds = [self._stream_coder(e) for e in self.shared]
        n_huffman = sum(c == "huffman" for c, _, _ in kinds)
        if n_huffman:
            lengths = _tensor(self.tensors, "lengths", torch.uint8, 2)
            _check(tuple(lengths.shape) == (n_huffman, a), f"code lengths of shape {tuple(lengths.shape)}, "
                   f"expected ({n_huffman}, {a}) for {n_huffman} Huffman-coded tensors and {m} values")
            _check(int(lengths.max()) <= 32, f"a code length of {int(lengths.max())} bits (at most 32)")
            lengths = lengths.numpy()
        scaled = any("scales" in e for e in self.shared)
        _check(not scaled or self.version >= 3, f"scales in a version {self.version} file (they came in version 3)")
        tables = _tensor(self.tensors, "tables", torch.uint8).numpy() if n_huffman < len(kinds) else None
        offsets = self._offsets()
        data = _tensor(self.tensors, "data", torch.uint8).numpy()
        scales = _tensor(self.tensors, "scales", torch.bfloat16) if scaled else None
        streams, o, d, h, t, c = [], 0, 0, 0, 0, 0
        for e, (coder, cs, states) in zip(self.shared, kinds):
            name = _name(e)
            dtype = e.get("dtype")
            _check(isinstance(dtype, str) and dtype in _FLOATS,
                   f"{name}: unsupported dtype {_show(dtype, 40)} for a shared tensor")
            numel, shape = e.get("numel"), _shape(e)
            _check(_is_int(numel) and numel == math.prod(shape) and numel >= 1,
                   f"{name}: element count {_show(numel, 40)} does not match shape {list(shape)}")
            n_off = -(-numel // cs) + (1 if self.version < 7 else 0)  # before version 7, each stream's 0 too
            _check(n_off <= offsets.size - o, f"{name}: {numel} values in chunks of {cs} need {n_off} chunk "
                   f"offsets, {offsets.size - o} are left (file truncated or inconsistent)")
            kept = offsets[o:o + n_off]
            off = kept.astype(np.int64) if self.version < 7 else np.concatenate([[0], kept.astype(np.int64)])
            end = int(off[-1])
            _check(int(off[0]) == 0 and bool((off[1:] >= off[:-1]).all()) and end <= data.size - d,
                   f"{name}: chunk offsets do not match the {data.size - d} payload bytes left")
            bits = e.get("bits")
            if coder == "huffman":
                # every symbol takes at least one bit: the payload bounds the element count
                _check(numel <= 8 * end, f"{name}: {numel} values cannot fit in {end} payload bytes")
                _check(_is_int(bits) and numel <= bits <= 8 * end,
                       f"{name}: payload bits {_show(bits, 40)} impossible for {numel} values in {end} bytes")
                code, h = lengths[h], h + 1
            else:
                # every chunk starts with its states: the payload bounds the chunks, the chunk
                # size (at most rans.MAX_CHUNK) the element count
                _check(4 * states * (off.size - 1) <= end,
                       f"{name}: {off.size - 1} rANS chunks cannot fit in {end} payload bytes")
                if bits is None and self.version >= 7:  # implied
                    bits = e["bits"] = 8 * end
                _check(_is_int(bits) and bits == 8 * end,
                       f"{name}: payload bits {_show(bits, 40)}, but its payload holds {end} bytes")
                size = e.get("table_bytes")
                _check(_is_int(size) and 1 <= size <= tables.size - t,
                       f"{name}: table_bytes {_show(size, 40)} missing or past the {tables.size - t} bytes "
                       "left in 'tables'")
                code, t = tables[t:t + size], t + size
            scale = None
            if "scales" in e:
                count = e["scales"]
                _check(_is_int(count) and count in scale_counts(shape),
                       f"{name}: {_show(count, 40)} scales for shape {list(shape)} (1, or one per slice of dim 0)")
                _check(count <= scales.numel() - c, f"{name}: {count} scales, {scales.numel() - c} are left")
                scale, c = scales[c:c + count], c + count
                _check(bool((torch.isfinite(scale) & (scale > 0)).all()), f"{name}: a scale is not finite and positive")
            streams.append(_Stream(e, coder, cs, code, off, data[d:d + end], kept, scale, states))
            o, d = o + n_off, d + end
        _check(o == offsets.size, f"{offsets.size - o} chunk offsets left over")
        _check(d == data.size, f"{data.size - d} payload bytes left over")
        _check(scales is None or c == scales.numel(), f"{0 if scales is None else scales.numel() - c} scales left over")
        _check(tables is None or t == tables.size, f"{0 if tables is None else tables.size - t} table bytes left over")
        return streams

    def _stored_dtype(self, e: dict) -> tuple[str, str]:
        """(its own dtype, the dtype the file stores it in) of an unshared entry, checked."""
        dt, sa = e.get("dtype"), e.get("stored_as", e.get("dtype"))
        _check(isinstance(dt, str) and isinstance(getattr(torch, dt, None), torch.dtype),
               f"{_name(e)}: dtype {_show(dt, 40)} is not a dtype name")
        if "stored_as" in e:
            _check(self.version >= 5, f"{_name(e)}: stored_as in a version {self.version} file")
            _check(sa in _NARROW and dt in _FLOATS, f"{_name(e)}: a {dt} tensor stored as {_show(sa, 40)}")
        span = e.get("range")
        if sa == "uint8" and "stored_as" in e:
            ok = isinstance(span, list) and len(span) == 2 and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in span)
            try:
                ok = ok and not _span_problem(*self._span(e), getattr(torch, dt))
            except (TypeError, ValueError, OverflowError):
                ok = False
            _check(ok, f"{_name(e)}: uint8 codes need a range [lo, hi] of finite numbers, lo < hi, within "
                       f"{dt}; got {_show(span, 60)}")
        else:
            _check("range" not in e, f"{_name(e)}: a range for a tensor not stored as uint8 codes")
        return dt, sa

    def _span(self, e: dict) -> tuple[float, float]:
        """The range of an entry's uint8 codes: from version 7 a float32 or narrower tensor's is
        rounded to float32 (the file holds the shortest decimals of float32 values)."""
        lo, hi = map(float, e["range"])
        if self.version >= 7 and e["dtype"] != "float64":
            return _as_float32(lo), _as_float32(hi)
        return lo, hi

    def _split_stored(self) -> list[torch.Tensor | None]:
        """Views of the unshared tensors into the file (None for a fill, made when read)."""
        pos: dict[str, int] = {}
        views: list[torch.Tensor | None] = []
        filled = 0
        for e in self.stored:
            dt, sa = self._stored_dtype(e)
            shape = _shape(e)
            n = math.prod(shape)
            if "fill" in e:
                _check(self.version >= 5, f"{_name(e)}: fill in a version {self.version} file")
                filled += n * getattr(torch, sa).itemsize
                _check(filled <= FILL_LIMIT, f"constant tensors of more than {FILL_LIMIT} bytes in all")
                _filled(e, getattr(torch, sa), (1,))  # the value, checked; the tensor is made when read
                views.append(None)
                continue
            key = f"stored.{sa}"
            _check(key in self.tensors, f"{_name(e)}: tensor {key[:60]!r} is missing")
            flat = self.tensors[key]
            _check(flat.dim() == 1 and _dtype_name(flat.dtype) == sa, f"tensor {key!r} must be 1-D {sa}")
            start = pos.get(key, 0)
            _check(n <= flat.numel() - start, f"{_name(e)}: {key!r} is too short (file inconsistent)")
            views.append(flat[start:start + n].reshape(shape))
            pos[key] = start + n
        for key, end in pos.items():
            _check(end == self.tensors[key].numel(), f"{self.tensors[key].numel() - end} values left over in {key!r}")
        self._stored_keys = set(pos)
        self._stored_crc_ok: bool | None = None  # version 6: the one CRC-32 of them all, once checked
        return views

    def _stored_raw(self, j: int) -> torch.Tensor:
        """Unshared tensor j as the file stores it (a view, or its fill made)."""
        v = self._stored_views[j]
        if v is not None:
            return v
        e = self.stored[j]
        return _filled(e, getattr(torch, self._stored_dtype(e)[1]), _shape(e))

    def stream_ok(self, j: int) -> bool:
        """True when the CRC-32 of shared tensor j's stream matches the metadata."""
        s = self.streams[j]
        parts = (s.code, s.kept, s.data) if s.scale is None else (s.code, s.kept, s.data, s.scale)
        return _crc(*parts) == s.entry.get("crc32")

    def _stored_crc(self, j: int, start: int = 0) -> int:
        """CRC-32 of unshared tensor j as the file stores it, continuing from ``start`` (a
        fill's without making the tensor)."""
        e, v = self.stored[j], self._stored_views[j]
        if v is None:
            one = _filled(e, getattr(torch, self._stored_dtype(e)[1]), (1,))
            return _fill_crc(one, math.prod(_shape(e)), start)
        return _crc(v, start=start)

    def stored_ok(self, j: int) -> bool:
        """True when unshared tensor j's CRC-32 matches the metadata: from version 6, one CRC-32
        covers every unshared tensor in order (checked once), before each has its own."""
        if self.version < 6:
            return self._stored_crc(j) == self.stored[j].get("crc32")
        if self._stored_crc_ok is None:
            c = 0
            for i in range(len(self.stored)):
                c = self._stored_crc(i, c)
            self._stored_crc_ok = c == self.meta["stored_crc32"]
        return self._stored_crc_ok

    def coded_stream(self, j: int):
        """Shared tensor j's stream as a :class:`wsc.huffman.HuffmanStream` or
        :class:`wsc.rans.RansStream` (checksum checked; a bad rANS table raises FormatError)."""
        from wsc import huffman, rans

        s = self.streams[j]
        name, n = _name(s.entry), s.entry["numel"]
        _check(self.stream_ok(j), f"{name}: checksum mismatch: the stream is corrupt")
        if s.coder == "huffman":
            return huffman.HuffmanStream(data=s.data, lengths=s.code, chunk_offsets=s.offsets, n_symbols=n,
                                         chunk_size=s.chunk_size)
        try:
            freqs, scale = rans.unpack_freqs(s.code, _alphabet(self.codebook.numel()),
                                             TABLE_ENCODING[self.version])
        except ValueError as exc:
            raise FormatError(f"{name}: bad rANS frequency table ({exc})") from None
        return rans.RansStream(data=s.data, freqs=freqs, chunk_offsets=s.offsets, n_symbols=n,
                               chunk_size=s.chunk_size, scale_bits=scale, states=s.states)

    def _check_bits(self, j: int, bits: int) -> None:
        e = self.streams[j].entry
        _check(bits == e["bits"], f"{_name(e)}: {bits} payload bits, the metadata says {e['bits']}")

    def indices(self, j: int) -> np.ndarray:
        """Decoded codebook indices of shared tensor j (flat); checks CRC, payload bits and range."""
        from wsc import huffman, rans

        s = self.streams[j]
        name, n, m = _name(s.entry), s.entry["numel"], self.codebook.numel()
        stream = self.coded_stream(j)
        try:
            idx = (huffman if s.coder == "huffman" else rans).decode(stream)
        except ValueError as exc:
            raise FormatError(f"{name}: undecodable stream ({exc})") from None
        _check(idx.size == n, f"{name}: decoded {idx.size} values, expected {n}")
        _check(int(idx.max()) < m, f"{name}: index {int(idx.max())} is outside the codebook of {m} values")
        if s.coder == "huffman":
            self._check_bits(j, int((np.bincount(idx, minlength=s.code.size) * s.code.astype(np.int64)).sum()))
        else:
            self._check_bits(j, stream.nbits)
        return idx

    def shared_tensor(self, j: int) -> torch.Tensor:
        """Shared tensor j restored in its original dtype and shape, decoded and gathered in one
        fused pass (no full index array); the decoder checks every chunk and every index."""
        from wsc import huffman, rans

        s = self.streams[j]
        e = s.entry
        dtype = _FLOATS[e["dtype"]]
        stream = self.coded_stream(j)
        gather_dtype = dtype if dtype in _NATIVE and s.scale is None else torch.float32
        try:
            if s.coder == "huffman":
                out, bits = huffman.decode_gather(stream, self.codebook, dtype=gather_dtype, return_bits=True)
            else:
                out, bits = rans.decode_gather(stream, self.codebook, dtype=gather_dtype), stream.nbits
        except ValueError as exc:
            raise FormatError(f"{_name(e)}: undecodable stream ({exc})") from None
        self._check_bits(j, bits)
        if s.scale is not None:
            out = rescale(out, s.scale)
        return out.to(dtype).reshape(_shape(e))

    def stored_tensor(self, j: int) -> torch.Tensor:
        e = self.stored[j]
        _check(self.stored_ok(j), f"{e['name']!r}: checksum mismatch: the stored tensor is corrupt")
        raw = self._stored_raw(j)
        own = getattr(torch, e["dtype"])
        if "range" in e:
            return dequantize8(raw, self._span(e), own)
        return raw.to(own) if raw.dtype != own else raw.clone()

    def verify(self) -> list[str]:
        """Every problem of the file, one line each (empty: the file is sound): checks the
        codebook's, every stream's and every stored tensor's CRC-32, and decodes every stream
        (code, chunk layout, padding, index range and payload bits)."""
        problems = [] if self.codebook_ok else ["codebook: checksum mismatch: the codebook is corrupt"]
        for j in range(len(self.streams)):
            try:
                self.indices(j)
            except FormatError as exc:
                problems.append(str(exc))
        bad = [_name(e) for j, e in enumerate(self.stored) if not self.stored_ok(j)]
        if bad and self.version >= 6:  # one CRC-32 for all: which one is corrupt is unknown
            problems.append(f"stored tensors ({', '.join(bad[:5])}{', ...' if len(bad) > 5 else ''}): checksum "
                            "mismatch: the stored tensors are corrupt")
        else:
            problems += [f"{name}: checksum mismatch: the stored tensor is corrupt" for name in bad]
        return problems

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Every tensor, checksums checked and streams decoded; tied names share one tensor."""
        with self._located():
            _check(self.codebook_ok, "codebook: checksum mismatch: the codebook is corrupt")
            out = {e["name"]: self.shared_tensor(j) for j, e in enumerate(self.shared)}
            out.update({e["name"]: self.stored_tensor(j) for j, e in enumerate(self.stored)})
        return {e["name"]: out[self.aliases.get(e["name"], e["name"])] for e in self.meta["tensors"]}


def read(source) -> Archive:
    """Parse and check the structure of a .wsc file (a path or its bytes)."""
    return Archive(source)


def load_state_dict(source) -> dict[str, torch.Tensor]:
    """The model's state dict from a .wsc file: shared tensors rebuilt from the codebook in
    their original dtype, the others as stored, tied names mapping to the same tensor."""
    return read(source).state_dict()


def verify(source) -> list[str]:
    """Every problem of a .wsc file, one line each; an empty list means the file is sound.

    Unlike :func:`inspect` this decodes every stream; a file whose structure cannot be read
    gives that one problem."""
    try:
        a = read(source)
    except FormatError as exc:
        return [str(exc)]
    return [f"{a.where}: {p}" for p in a.verify()]


def inspect(source) -> dict:
    """Sizes, bits per weight, ratios and checksum status of a .wsc file, without decoding.

    Per shared tensor: its coder, chunk size, stored bytes (payload, offsets, code lengths or
    frequency table) and payload bits per weight; ``coders``: how many tensors each coder holds.
    """
    a = read(source)
    shared, stored = [], []
    for j, s in enumerate(a.streams):
        e = s.entry
        shared.append({"name": e["name"], "shape": e["shape"], "dtype": e["dtype"], "numel": e["numel"],
                       "coder": s.coder, "chunk_size": s.chunk_size,
                       "bytes": int(s.data.size + s.kept.nbytes + s.code.size
                                    + (0 if s.scale is None else 2 * s.scale.numel())),
                       "scales": 0 if s.scale is None else int(s.scale.numel()),
                       "bits_per_weight": e["bits"] / e["numel"],
                       "original_bytes": e["numel"] * _FLOATS[e["dtype"]].itemsize, "checksum_ok": a.stream_ok(j)})
    for j, e in enumerate(a.stored):
        v, n = a._stored_views[j], math.prod(e["shape"])
        stored.append({"name": e["name"], "shape": e["shape"], "dtype": e["dtype"],
                       "stored_as": e.get("stored_as", e["dtype"]), "fill": e.get("fill"),
                       "bytes": 0 if v is None else v.numel() * v.element_size(),
                       "original_bytes": n * getattr(torch, e["dtype"]).itemsize, "checksum_ok": a.stored_ok(j)})
    n_shared = sum(s["numel"] for s in shared)
    bpw = sum(s.entry["bits"] for s in a.streams) / n_shared
    original = sum(s["original_bytes"] for s in shared + stored)
    coders = {c: sum(s.coder == c for s in a.streams) for c in CODERS if any(s.coder == c for s in a.streams)}
    return {"format": FORMAT, "version": a.version, "coder": a.meta["coder"], "coders": coders,
            "file_bytes": a.file_bytes, "codebook_size": a.codebook.numel(), "codebook_checksum_ok": a.codebook_ok,
            "shared_weights": n_shared, "bits_per_weight": bpw, "original_bytes": original,
            "ratio": original / a.file_bytes, "paper_style_ratio": 32.0 / bpw if bpw else None,
            "checksums_ok": a.codebook_ok and all(s["checksum_ok"] for s in shared + stored),
            "shared": shared, "stored": stored, "aliases": a.aliases, "info": a.meta.get("info", {})}


__all__ = ["Payload", "SharedTensor", "Narrowed", "quantize8", "dequantize8", "restore_stored", "Layout", "layout", "encode", "to_bytes", "write", "write_bytes", "read", "Archive",
           "load_state_dict", "inspect", "verify", "check_coder", "shared_coders", "FormatError", "FORMAT", "VERSION",
           "READABLE", "CODERS", "CODER_OPTIONS", "DEFAULT_CODER"]
