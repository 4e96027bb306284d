"""The .wsc file: a safetensors file (no pickle: reading never runs code) with JSON metadata.

Tensors in the file (few and flat, so the header stays small):

- ``codebook``: float32[m], the shared values;
- ``lengths``: uint8[H, max(m, 2)], the Huffman code lengths of each of the H shared tensors
  coded with Huffman, in order (absent when no tensor is);
- ``tables``: uint8, the packed rANS frequency tables (``wsc.rans.pack_freqs``) of the shared
  tensors coded with rANS, back to back (absent when no tensor is);
- ``offsets``: int64, for each shared tensor in turn its chunk byte offsets (0, ...,
  stream bytes): ceil(numel / chunk_size) + 1 values each;
- ``data``: uint8, the payloads of the shared tensors back to back;
- ``stored.<dtype>``: 1-D, the tensors stored unchanged, flattened and concatenated by
  dtype in state-dict order.

The safetensors metadata holds one JSON string under the key ``"wsc"`` and its CRC-32
under ``"wsc.crc32"``. The JSON: format, version (2), the coder (``"huffman"``, ``"rans"``,
or ``"auto"`` when the streams use both), codebook size and CRC-32, the chunk size of the Huffman streams (when there are any), and the list of
state-dict names in order, each with shape, dtype, whether it is shared, and a CRC-32, or,
for a name tied to another tensor, ``alias_of``; and free-form ``info``. A shared tensor
also records its element count and payload bits (Huffman: the code bits, padding excluded;
rANS: the payload bytes times 8), its coder (``"huffman"`` or ``"rans"``) in an ``"auto"``
file, and when coded with rANS its chunk size and the size of its packed
table; its CRC-32 covers its code lengths or table, offsets and payload. Version 1 files (Huffman only, one chunk size in the
header) are still read. The reader checks all of it and raises :class:`wsc.FormatError` on
any inconsistency.
"""

from __future__ import annotations

import json
import math
import os
import struct
import tempfile
import zlib
from dataclasses import dataclass, field

import numpy as np
import safetensors.torch
import torch

from wsc import ops
from wsc.errors import FormatError

FORMAT = "wsc"
VERSION = 2
READABLE = (1, 2)
CODERS = ("huffman", "rans")  # the coder of one stream
CODER_OPTIONS = CODERS + ("auto",)  # what a file is written with
DEFAULT_CODER = "auto"
DEFAULT_CHUNK = 16384  # Huffman; rANS picks its own (wsc.rans.auto_chunk_size)
_NATIVE = (torch.float32, torch.float16, torch.bfloat16)
_FLOATS = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
           "float64": torch.float64}


@dataclass
class SharedTensor:
    """A shared tensor: its codebook indices (flat uint8/uint16), shape and original dtype."""

    name: str
    indices: np.ndarray
    shape: tuple[int, ...]
    dtype: torch.dtype


@dataclass
class Payload:
    """Everything a .wsc file holds, before coding. ``order``: all names (aliases too)."""

    codebook: np.ndarray
    shared: list[SharedTensor]
    stored: dict[str, torch.Tensor]
    aliases: dict[str, str] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    info: dict = field(default_factory=dict)


def _alphabet(m: int) -> int:
    """Symbols of the Huffman code of a codebook of m values (the coder needs at least 2)."""
    return max(m, 2)


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _crc(*arrays) -> int:
    c = 0
    for a in arrays:
        if isinstance(a, torch.Tensor):
            a = a.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()
        c = zlib.crc32(np.ascontiguousarray(a).view(np.uint8).tobytes(), c)
    return c


# ---------------------------------------------------------------- writing
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

    @property
    def stored_bytes(self) -> int:
        """What the stream adds to the file: payload, offsets, code lengths or table."""
        return int(self.data.size + 8 * self.offsets.size + self.code.size)


def _code_stream(idx: np.ndarray, k: int, coder: str, chunk_size: int | None) -> _Coded:
    from wsc import huffman, rans

    if coder == "huffman":
        s = huffman.encode(idx, k, chunk_size=DEFAULT_CHUNK if chunk_size is None else chunk_size)
        ln = np.asarray(s.lengths, dtype=np.uint8)
        bits = int((np.bincount(idx, minlength=k) * ln).sum())
        return _Coded("huffman", s.chunk_size, ln, np.asarray(s.chunk_offsets), np.asarray(s.data), bits)
    s = rans.encode(idx, k, chunk_size=chunk_size)
    table = rans.pack_freqs(s.freqs, s.scale_bits)
    return _Coded("rans", s.chunk_size, table, np.asarray(s.chunk_offsets), np.asarray(s.data), s.nbits)


def encode(p: Payload, *, coder: str = DEFAULT_CODER, chunk_size: int | None = None) -> tuple[bytes, dict]:
    """(the exact bytes of the file, its metadata) for the payload.

    ``coder``: ``"huffman"``, ``"rans"`` or ``"auto"``: every shared tensor coded both ways,
    then the smallest of three files: all Huffman, all rANS, or each tensor with the coder
    that stores it in fewer bytes (ties: in that order). The metadata names the coder of
    the file: ``"auto"`` only for a file that mixes both. ``chunk_size``: symbols per chunk;
    None: 16384 for Huffman, rANS's own choice (:func:`wsc.rans.auto_chunk_size`).
    """
    check_coder(coder)
    cb = np.ascontiguousarray(p.codebook, dtype=np.float32)
    m = cb.size
    if not 1 <= m <= 65536:
        raise ValueError(f"the codebook must hold 1 to 65536 values; got {m}")
    if not p.shared:
        raise ValueError("a .wsc file needs at least one shared tensor")
    idx = [np.ascontiguousarray(s.indices).reshape(-1) for s in p.shared]
    if coder != "auto":
        return _assemble(p, cb, [_code_stream(i, _alphabet(m), coder, chunk_size) for i in idx], coder)
    h = [_code_stream(i, _alphabet(m), "huffman", chunk_size) for i in idx]
    r = [_code_stream(i, _alphabet(m), "rans", chunk_size) for i in idx]
    mixed = [b if b.stored_bytes < a.stored_bytes else a for a, b in zip(h, r)]
    files = [_assemble(p, cb, h, "huffman"), _assemble(p, cb, r, "rans")]
    if len({c.coder for c in mixed}) > 1:
        files.append(_assemble(p, cb, mixed, "auto"))
    return min(files, key=lambda f: len(f[0]))


def _assemble(p: Payload, cb: np.ndarray, coded: list[_Coded], coder: str) -> tuple[bytes, dict]:
    """The file of the payload with the shared tensors' streams ``coded``."""
    order = list(p.order) or [s.name for s in p.shared] + list(p.stored)
    entries: dict[str, dict] = {}
    lengths, tables = [], []
    huffman_chunk = None
    for s, c in zip(p.shared, coded):
        e = {"name": s.name, "shape": list(s.shape), "dtype": _dtype_name(s.dtype), "shared": True,
             "numel": int(np.asarray(s.indices).size), "bits": c.bits, "crc32": _crc(c.code, c.offsets, c.data)}
        if coder == "auto":
            e["coder"] = c.coder
        if c.coder == "rans":
            e["chunk_size"] = int(c.chunk_size)
            e["table_bytes"] = int(c.code.size)
            tables.append(c.code)
        else:
            huffman_chunk = int(c.chunk_size)
            lengths.append(c.code)
        entries[s.name] = e
    by_dtype: dict[str, list[torch.Tensor]] = {}
    for name, t in p.stored.items():
        t = t.detach().cpu().contiguous()
        entries[name] = {"name": name, "shape": list(t.shape), "dtype": _dtype_name(t.dtype), "shared": False,
                         "crc32": _crc(t)}
        by_dtype.setdefault(_dtype_name(t.dtype), []).append(t.reshape(-1))
    tensors = {"codebook": torch.from_numpy(cb.copy()),
               "offsets": torch.from_numpy(np.concatenate([c.offsets for c in coded]).astype(np.int64)),
               "data": torch.from_numpy(np.concatenate([c.data for c in coded]).astype(np.uint8))}
    if lengths:
        tensors["lengths"] = torch.from_numpy(np.stack(lengths))
    if tables:
        tensors["tables"] = torch.from_numpy(np.concatenate(tables))
    for dt, ts in by_dtype.items():
        tensors[f"stored.{dt}"] = torch.cat(ts)
    for alias, target in p.aliases.items():
        if target not in entries:
            raise ValueError(f"alias {alias!r} points to {target!r}, which is not in the payload")
        entries[alias] = {"name": alias, "alias_of": target}
    if sorted(order) != sorted(entries):
        raise ValueError("order must list every tensor and alias exactly once")
    meta = {"format": FORMAT, "version": VERSION, "coder": coder,
            "codebook": {"size": int(cb.size), "crc32": _crc(cb)}, "tensors": [entries[n] for n in order],
            "info": p.info}
    if huffman_chunk is not None:
        meta["chunk_size"] = huffman_chunk
    text = json.dumps(meta, sort_keys=True, separators=(",", ":"))
    crc = str(zlib.crc32(text.encode()))
    return safetensors.torch.save(tensors, metadata={"wsc": text, "wsc.crc32": crc}), meta


def shared_coders(meta: dict) -> list[str]:
    """The coder of each shared tensor of a file's metadata, in order."""
    option = meta.get("coder", "huffman")
    return [e.get("coder", "huffman") if option == "auto" else option for e in meta["tensors"] if e.get("shared")]


def to_bytes(p: Payload, *, coder: str = DEFAULT_CODER, chunk_size: int | None = None) -> bytes:
    """The exact bytes of the .wsc file of the payload."""
    return encode(p, coder=coder, chunk_size=chunk_size)[0]


def write(path, p: Payload, *, coder: str = DEFAULT_CODER, chunk_size: int | None = None) -> int:
    """Write the payload to ``path`` atomically (temp file + rename); returns the file size."""
    return write_bytes(path, to_bytes(p, coder=coder, chunk_size=chunk_size))


def write_bytes(path, data: bytes) -> int:
    """Write ``data`` to ``path`` atomically: a temp file in the same folder, then os.replace."""
    path = os.fspath(path)
    fd, tmp = tempfile.mkstemp(prefix=".wsc-", suffix=".tmp", dir=os.path.dirname(os.path.abspath(path)))
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return len(data)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# ---------------------------------------------------------------- reading
def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise FormatError(msg)


def _read_raw(source) -> tuple[dict, dict[str, torch.Tensor], int]:
    """(metadata, tensors, file size) of a .wsc file (path or bytes), structure unchecked."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, where = bytes(source), "the data"
    else:
        where = os.fspath(source)
        with open(where, "rb") as f:
            data = f.read()
    _check(len(data) >= 8, f"{where}: not a .wsc file (only {len(data)} bytes)")
    (n,) = struct.unpack("<Q", data[:8])
    _check(n <= len(data) - 8, f"{where}: truncated (a header of {n} bytes in a file of {len(data)})")
    try:
        header = json.loads(data[8:8 + n]).get("__metadata__", {})
        text, crc = header.get("wsc"), header.get("wsc.crc32")
    except (ValueError, AttributeError) as exc:
        raise FormatError(f"{where}: unreadable safetensors header ({exc})") from None
    _check(isinstance(text, str), f"{where}: not a .wsc file (no 'wsc' metadata in the safetensors header)")
    _check(crc == str(zlib.crc32(text.encode())), f"{where}: checksum mismatch: the metadata is corrupt")
    try:
        meta = json.loads(text)
    except ValueError as exc:
        raise FormatError(f"{where}: the 'wsc' metadata is not valid JSON ({exc})") from None
    try:
        tensors = safetensors.torch.load(data)
    except Exception as exc:  # safetensors raises its own SafetensorError
        raise FormatError(f"{where}: corrupt or truncated safetensors data ({exc})") from None
    return meta, tensors, len(data)


def _tensor(tensors: dict, key: str, dtype: torch.dtype, dim: int = 1) -> torch.Tensor:
    _check(key in tensors, f"tensor {key!r} is missing")
    v = tensors[key]
    _check(v.dtype == dtype and v.dim() == dim, f"tensor {key!r} must be {dim}-D {_dtype_name(dtype)}; "
           f"got {_dtype_name(v.dtype)} of shape {tuple(v.shape)}")
    return v


def _shape(e: dict) -> tuple[int, ...]:
    shape = e.get("shape")
    _check(isinstance(shape, list) and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                           for d in shape), f"bad shape for {e.get('name')!r}: {shape!r}")
    return tuple(shape)


@dataclass
class _Stream:
    entry: dict
    coder: str
    chunk_size: int
    code: np.ndarray  # Huffman code lengths, or the packed rANS table
    offsets: np.ndarray
    data: np.ndarray

    @property
    def lengths(self) -> np.ndarray:  # the name of version 1
        return self.code


def _int_field(e: dict, key: str, lo: int = 0) -> bool:
    v = e.get(key)
    return isinstance(v, int) and not isinstance(v, bool) and v >= lo


class Archive:
    """A parsed and checked .wsc file; streams are decoded on demand."""

    def __init__(self, source):
        self.meta, self.tensors, self.file_bytes = _read_raw(source)
        meta = self.meta
        _check(isinstance(meta, dict) and meta.get("format") == FORMAT, "not a .wsc file (format field)")
        self.version = meta.get("version")
        _check(self.version in READABLE,
               f"unsupported .wsc format version {self.version!r} (this reader knows {', '.join(map(str, READABLE))})")
        coders = ("huffman",) if self.version == 1 else CODER_OPTIONS
        _check(meta.get("coder") in coders,
               f"unknown coder {meta.get('coder')!r} (version {self.version} files use {', '.join(coders)})")
        fields = (("codebook", dict), ("tensors", list)) + ((("chunk_size", int),) if self.version == 1 else ())
        for key, kind in fields:
            _check(isinstance(meta.get(key), kind), f"metadata field {key!r} is missing or not a {kind.__name__}")
        _check(self.version != 1 or meta["chunk_size"] >= 1, "chunk_size must be >= 1")
        _check(all(isinstance(e, dict) and isinstance(e.get("name"), str) for e in meta["tensors"]),
               "every tensor entry needs a name")
        names = [e["name"] for e in meta["tensors"]]
        _check(len(set(names)) == len(names), "a tensor name appears twice")
        self.aliases = {e["name"]: e["alias_of"] for e in meta["tensors"] if "alias_of" in e}
        real = set(names) - set(self.aliases)
        _check(all(v in real for v in self.aliases.values()), "an alias points to no stored tensor")
        self.codebook = _tensor(self.tensors, "codebook", torch.float32)
        m = self.codebook.numel()
        _check(m == meta["codebook"].get("size") and 1 <= m <= 65536,
               f"the codebook holds {m} values, the metadata says {meta['codebook'].get('size')}")
        _check(bool(torch.isfinite(self.codebook).all()), "the codebook holds NaN or Inf")
        self.codebook_ok = _crc(self.codebook) == meta["codebook"].get("crc32")
        self.shared = [e for e in meta["tensors"] if e.get("shared") is True]
        self.stored = [e for e in meta["tensors"] if e.get("shared") is False]
        _check(len(self.shared) + len(self.stored) + len(self.aliases) == len(names),
               "every tensor entry needs shared: true/false (or alias_of)")
        _check(len(self.shared) >= 1, "the file holds no shared tensor")
        self.streams = self._split_streams()
        self._stored_views = self._split_stored()
        expected = {"codebook", "offsets", "data"} | {f"stored.{e['dtype']}" for e in self.stored}
        expected |= {"lengths"} if any(s.coder == "huffman" for s in self.streams) else set()
        expected |= {"tables"} if any(s.coder == "rans" for s in self.streams) else set()
        extra = set(self.tensors) - expected
        _check(not extra, f"unexpected tensors in the file: {sorted(extra)}")

    def _stream_coder(self, e: dict) -> tuple[str, int]:
        """(coder, chunk size) of a shared entry, checked. The coder is the file's unless the
        file was written with "auto"; a Huffman stream takes the file's chunk size, a rANS
        stream has its own."""
        if self.version == 1:
            return "huffman", self.meta["chunk_size"]
        name, option = e["name"], self.meta["coder"]
        if option == "auto":
            coder = e.get("coder")
            _check(coder in CODERS, f"{name!r}: unknown coder {coder!r} (this reader knows {', '.join(CODERS)})")
        else:
            _check("coder" not in e or e["coder"] == option, f"{name!r}: coder {e.get('coder')!r} in a file "
                   f"written with {option!r}")
            coder = option
        if coder == "rans":
            _check(_int_field(e, "chunk_size", 1), f"{name!r}: chunk_size missing or < 1")
            return coder, e["chunk_size"]
        _check(_int_field(self.meta, "chunk_size", 1), "metadata field 'chunk_size' is missing or < 1 "
               "(the file holds Huffman streams)")
        return coder, self.meta["chunk_size"]

    def _split_streams(self) -> list[_Stream]:
        m = self.codebook.numel()
        a = _alphabet(m)
        kinds = [self._stream_coder(e) for e in self.shared]
        n_huffman = sum(c == "huffman" for c, _ in kinds)
        if n_huffman:
            lengths = _tensor(self.tensors, "lengths", torch.uint8, 2)
            _check(tuple(lengths.shape) == (n_huffman, a), f"code lengths of shape {tuple(lengths.shape)}, "
                   f"expected ({n_huffman}, {a}) for {n_huffman} Huffman-coded tensors and {m} values")
            lengths = lengths.numpy()
        tables = _tensor(self.tensors, "tables", torch.uint8).numpy() if n_huffman < len(kinds) else None
        offsets = _tensor(self.tensors, "offsets", torch.int64).numpy()
        data = _tensor(self.tensors, "data", torch.uint8).numpy()
        streams, o, d, h, t = [], 0, 0, 0, 0
        for e, (coder, cs) in zip(self.shared, kinds):
            name = e["name"]
            _check(e.get("dtype") in _FLOATS, f"{name!r}: unsupported dtype {e.get('dtype')!r} for a shared tensor")
            numel = e.get("numel")
            _check(isinstance(numel, int) and numel == math.prod(_shape(e)) and numel >= 1,
                   f"{name!r}: element count {numel!r} does not match shape {e.get('shape')}")
            _check(_int_field(e, "bits"), f"{name!r}: payload bits missing")
            if coder == "huffman":
                code, h = lengths[h], h + 1
            else:
                _check(_int_field(e, "table_bytes", 1), f"{name!r}: table_bytes missing")
                _check(t + e["table_bytes"] <= tables.size, f"{name!r}: its frequency table runs past 'tables'")
                code, t = tables[t:t + e["table_bytes"]], t + e["table_bytes"]
            n_off = -(-numel // cs) + 1
            _check(o + n_off <= offsets.size, f"{name!r}: chunk offsets missing (file truncated or inconsistent)")
            off = offsets[o:o + n_off]
            _check(off[0] == 0 and bool((off[1:] >= off[:-1]).all()) and d + off[-1] <= data.size,
                   f"{name!r}: chunk offsets do not match the payload")
            streams.append(_Stream(e, coder, cs, code, off, data[d:d + int(off[-1])]))
            o, d = o + n_off, d + int(off[-1])
        _check(o == offsets.size, f"{offsets.size - o} chunk offsets left over")
        _check(d == data.size, f"{data.size - d} payload bytes left over")
        _check(tables is None or t == tables.size, f"{0 if tables is None else tables.size - t} table bytes left over")
        return streams

    def _split_stored(self) -> list[torch.Tensor]:
        pos: dict[str, int] = {}
        views = []
        for e in self.stored:
            dt, shape = e.get("dtype"), _shape(e)
            key = f"stored.{dt}"
            _check(key in self.tensors, f"{e['name']!r}: tensor {key!r} is missing")
            flat = self.tensors[key]
            _check(flat.dim() == 1 and _dtype_name(flat.dtype) == dt, f"tensor {key!r} must be 1-D {dt}")
            start, n = pos.get(key, 0), math.prod(shape)
            _check(start + n <= flat.numel(), f"{e['name']!r}: {key!r} is too short (file inconsistent)")
            views.append(flat[start:start + n].reshape(shape))
            pos[key] = start + n
        for key, end in pos.items():
            _check(end == self.tensors[key].numel(), f"{self.tensors[key].numel() - end} values left over in {key!r}")
        return views

    def stream_ok(self, j: int) -> bool:
        """True when the CRC-32 of shared tensor j's stream matches the metadata."""
        s = self.streams[j]
        return _crc(s.code, s.offsets, s.data) == s.entry.get("crc32")

    def stored_ok(self, j: int) -> bool:
        return _crc(self._stored_views[j]) == self.stored[j].get("crc32")

    def coded_stream(self, j: int):
        """Shared tensor j's stream as a :class:`wsc.huffman.HuffmanStream` or :class:`wsc.rans.RansStream`
        (checksum checked; a bad rANS table raises FormatError)."""
        from wsc import huffman, rans

        s = self.streams[j]
        name, n = s.entry["name"], s.entry["numel"]
        _check(self.stream_ok(j), f"{name!r}: checksum mismatch: the stream is corrupt")
        if s.coder == "huffman":
            return huffman.HuffmanStream(data=s.data, lengths=s.code, chunk_offsets=s.offsets, n_symbols=n,
                                         chunk_size=s.chunk_size)
        try:
            freqs, scale = rans.unpack_freqs(s.code, _alphabet(self.codebook.numel()))
        except ValueError as exc:
            raise FormatError(f"{name!r}: bad rANS frequency table ({exc})") from None
        return rans.RansStream(data=s.data, freqs=freqs, chunk_offsets=s.offsets, n_symbols=n, chunk_size=s.chunk_size,
                               scale_bits=scale)

    def _check_bits(self, j: int, bits: int) -> None:
        e = self.streams[j].entry
        _check(bits == e["bits"], f"{e['name']!r}: {bits} payload bits, the metadata says {e['bits']}")

    def indices(self, j: int) -> np.ndarray:
        """Decoded codebook indices of shared tensor j (flat); checks CRC, payload bits and range."""
        from wsc import huffman, rans

        s = self.streams[j]
        name, n, m = s.entry["name"], s.entry["numel"], self.codebook.numel()
        stream = self.coded_stream(j)
        try:
            idx = (huffman if s.coder == "huffman" else rans).decode(stream)
        except ValueError as exc:
            raise FormatError(f"{name!r}: undecodable stream ({exc})") from None
        _check(idx.size == n, f"{name!r}: decoded {idx.size} values, expected {n}")
        _check(int(idx.max()) < m, f"{name!r}: index {int(idx.max())} is outside the codebook of {m} values")
        if s.coder == "huffman":
            self._check_bits(j, int((np.bincount(idx, minlength=s.code.size) * s.code).sum()))
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
        gather_dtype = dtype if dtype in _NATIVE else torch.float32
        try:
            if s.coder == "huffman":
                out, bits = huffman.decode_gather(stream, self.codebook, dtype=gather_dtype, return_bits=True)
            else:
                out, bits = rans.decode_gather(stream, self.codebook, dtype=gather_dtype), stream.nbits
        except ValueError as exc:
            raise FormatError(f"{e['name']!r}: undecodable stream ({exc})") from None
        self._check_bits(j, bits)
        return out.to(dtype).reshape(_shape(e))

    def stored_tensor(self, j: int) -> torch.Tensor:
        _check(self.stored_ok(j), f"{self.stored[j]['name']!r}: checksum mismatch: the stored tensor is corrupt")
        return self._stored_views[j].clone()

    def state_dict(self) -> dict[str, torch.Tensor]:
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
                       "bytes": int(s.data.size + s.offsets.size * 8 + s.code.size),
                       "bits_per_weight": e["bits"] / e["numel"],
                       "original_bytes": e["numel"] * _FLOATS[e["dtype"]].itemsize, "checksum_ok": a.stream_ok(j)})
    for j, e in enumerate(a.stored):
        v = a._stored_views[j]
        stored.append({"name": e["name"], "shape": e["shape"], "dtype": e["dtype"],
                       "bytes": v.numel() * v.element_size(), "checksum_ok": a.stored_ok(j)})
    n_shared = sum(s["numel"] for s in shared)
    bpw = sum(s.entry["bits"] for s in a.streams) / n_shared
    original = sum(s["original_bytes"] for s in shared) + sum(s["bytes"] for s in stored)
    coders = {c: sum(s.coder == c for s in a.streams) for c in CODERS if any(s.coder == c for s in a.streams)}
    return {"format": FORMAT, "version": a.version, "coder": a.meta["coder"], "coders": coders,
            "file_bytes": a.file_bytes, "codebook_size": a.codebook.numel(), "codebook_checksum_ok": a.codebook_ok,
            "shared_weights": n_shared, "bits_per_weight": bpw, "original_bytes": original,
            "ratio": original / a.file_bytes, "paper_style_ratio": 32.0 / bpw if bpw else None,
            "checksums_ok": a.codebook_ok and all(s["checksum_ok"] for s in shared + stored),
            "shared": shared, "stored": stored, "aliases": a.aliases, "info": a.meta.get("info", {})}


__all__ = ["Payload", "SharedTensor", "encode", "to_bytes", "write", "write_bytes", "read", "Archive",
           "load_state_dict", "inspect", "check_coder", "shared_coders", "FORMAT", "VERSION", "READABLE", "CODERS", "CODER_OPTIONS",
           "DEFAULT_CODER"]
