"""Fuzz the .wsc reader and the Huffman and rANS decoders with hostile inputs.

Run: python bench/fuzz_container.py [--cases 100000] [--seed 0] [--jobs 2]
     python bench/fuzz_container.py --case 1234 --save bad.wsc   (rebuild one input)
     python bench/fuzz_container.py --atheris -runs=100000 -max_len=16384   (coverage-guided)

Case i is generated from ``numpy.random.default_rng([seed, i])`` alone, so any case can be
rebuilt from its number. A case takes one of a few small valid .wsc files (float32, float16,
bfloat16 and float64 shared tensors, many short chunks, uint16 indices, one shared value,
stored bool/int/empty/scalar tensors, tied names; Huffman, rANS and mixed files) and damages
it at one of four levels:

- bytes: bit flips, byte overwrites, truncation, garbage appended, ranges cut, copied or
  spliced from another file, a lying header length;
- the safetensors header (re-serialised, so it parses): lying dtypes, shapes and byte
  ranges, huge sizes, missing or extra tensors, garbage metadata;
- the .wsc JSON (checksum recomputed, so the reader believes it): unknown format version or
  coder, lying element counts, shapes, chunk sizes, bits, aliases, wrong types, garbage or
  deeply nested JSON;
- the tensors, with every checksum recomputed, so only the decoders can notice: corrupt code
  lengths or rANS frequency tables, chunk offsets, payload bits, codebook values, counts
  that disagree with them;

or feeds the decoders (``huffman.decode``/``decode_gather``, ``rans.decode``/
``decode_gather``) a damaged stream directly, or a pickle (which must be refused, never
run). Each file is read with
``load_state_dict``, ``verify`` and (one case in four) ``inspect``. The only acceptable
outcomes: success, or ``wsc.FormatError`` (ValueError from the bare decoders) with a
message. Anything else (another exception type, a crash, a hang, an allocation beyond a
ceiling far below what a lying size would ask for) is a failure, reported with the case
number. Address-space ceiling: ``--memory`` GiB above the worker's start (RLIMIT_AS).
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import math
import multiprocessing as mp
import os
import resource
import struct
import sys
import time
import traceback
import zlib
from pathlib import Path

import numpy as np
import safetensors.torch
import torch

import wsc
from wsc import container, huffman, rans
from wsc.errors import FormatError
from wsc.workbench import Workbench

# ---------------------------------------------------------------- seed files


class _Mixed(torch.nn.Module):
    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.emb = torch.nn.Parameter(torch.randn(20, 8, generator=g))
        self.conv = torch.nn.Parameter(torch.randn(8, 4, 3, generator=g) * 0.1)
        self.f16 = torch.nn.Parameter(torch.randn(6, 7, generator=g).half())
        self.b16 = torch.nn.Parameter(torch.randn(3, 9, generator=g).bfloat16())
        self.f64 = torch.nn.Parameter(torch.randn(2, 5, generator=g, dtype=torch.float64))
        self.bias = torch.nn.Parameter(torch.randn(8, generator=g))
        self.register_buffer("steps", torch.tensor(7))
        self.register_buffer("mask", torch.tensor([True, False, True]))
        self.register_buffer("codes", torch.arange(5, dtype=torch.int8))
        self.register_buffer("nothing", torch.zeros(0, 3))
        self.register_buffer("scale", torch.tensor(0.5))
        self.head = self.emb  # tied


def _seed_files() -> list[bytes]:
    """A few small valid .wsc files that between them use every feature of the format."""
    files = []
    bench = Workbench(_Mixed())
    for k, chunk in ((33, 16), (5, 7), (300, 64)):
        cb = bench.codebook(k)
        files.append(container.to_bytes(bench.payload(cb, {"k": k}), chunk_size=chunk, coder="huffman"))
    cb = bench.codebook(8)
    while cb.size > 1:
        cb = cb.merge(0)
    files.append(container.to_bytes(bench.payload(cb), chunk_size=32, coder="huffman"))
    g = torch.Generator().manual_seed(1)
    lin = torch.nn.Linear(40, 30)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(30, 40, generator=g))
    big = Workbench(lin)
    files.append(container.to_bytes(big.payload(big.codebook(64)), chunk_size=100, coder="huffman"))
    # rANS: short chunks, its own chunk size, one shared value, and a file mixing both coders
    for k, chunk in ((33, 16), (300, None)):
        files.append(container.to_bytes(bench.payload(bench.codebook(k), {"k": k}), chunk_size=chunk, coder="rans"))
    files.append(container.to_bytes(bench.payload(cb), coder="rans"))
    compact = Workbench(_Mixed(), stored="compact")  # float16-narrowed and constant (fill) stored tensors
    files.append(container.to_bytes(compact.payload(compact.codebook(20)), coder="auto"))
    coded = Workbench(torch.nn.Linear(40, 64), stored="compact")  # a bias of 64 values as uint8 codes
    files.append(container.to_bytes(coded.payload(coded.codebook(9)), coder="rans"))
    files.append(container.to_bytes(big.payload(big.codebook(64)), chunk_size=50, coder="rans"))
    files.append(_mixed_file())
    files.append(_level_table_file())
    # older versions: rANS tables in table encoding 1 (2), eight states per chunk and scales (3)
    for old in ("rans_v2.wsc", "rans_v3.wsc"):
        files.append((Path(__file__).resolve().parents[1] / "tests" / "data" / old).read_bytes())
    return files


def _level_table_file() -> bytes:
    """A rANS file whose tables pack in level mode: one value at 95%, a tail over 300 values."""
    rng = np.random.default_rng(5)
    p = np.exp(-np.abs(np.arange(300) - 100) / 20.0)
    p[100] = 0
    p = 0.05 * p / p.sum()
    p[100] = 0.95
    shared = [container.SharedTensor(f"t{i}", rng.choice(300, size=n, p=p).astype(np.uint16), (n,), torch.float32)
              for i, n in enumerate((60_000, 9_000))]
    raw = container.to_bytes(container.Payload(np.linspace(-1, 1, 300).astype(np.float32), shared, {}), coder="rans")
    assert all(s.code[0] & 0x04 for s in container.read(raw).streams)  # the mode bit: levels
    return raw


def _mixed_file() -> bytes:
    """An "auto" file holding a rANS stream (a large tensor, one of two values at 97%) and
    Huffman ones (tensors holding each value exactly half the time: one bit each)."""
    rng = np.random.default_rng(3)
    idx = [rng.choice(2, size=20_000, p=[0.97, 0.03])] + [rng.permutation(np.arange(64) % 2) for _ in range(30)]
    shared = [container.SharedTensor(f"t{i}", x.astype(np.uint8), (x.size,), torch.float32) for i, x in enumerate(idx)]
    raw = container.to_bytes(container.Payload(np.array([-1, 1], np.float32), shared, {}), coder="auto")
    assert container.inspect(raw)["coder"] == "auto"
    return raw


def _seed_streams() -> list:
    rng = np.random.default_rng(7)
    out = []
    for k, n, cs in ((2, 50, 8), (16, 400, 33), (300, 900, 128), (4, 3000, 2048), (65536, 200, 64)):
        dtype = np.uint8 if k <= 256 else np.uint16
        p = np.exp(-np.arange(min(k, 64)) / 4.0)
        x = rng.choice(min(k, 64), size=n, p=p / p.sum()).astype(dtype)
        out.append(huffman.encode(x, k, chunk_size=cs))
        out.append(rans.encode(x, k, chunk_size=cs))
    return out


# ---------------------------------------------------------------- helpers

INTERESTING = [0, 1, -1, 2, 7, 8, 255, 256, 65535, 65536, 2**31 - 1, 2**31, 2**32, 2**40, 2**53, 2**62,
               2**63 - 1, 2**63, 2**64, -(2**63)]
ODD_VALUES = [None, True, False, "", "x" * 300, [], {}, [[[[1]]]], 1.5, -0.0, 1e308, float("nan"),
              float("inf"), "float32", "huffman", "rans", {"a": 1}]


def _pick(rng, seq):
    return seq[int(rng.integers(len(seq)))]


def _odd(rng):
    return _pick(rng, INTERESTING) if rng.random() < 0.5 else copy.deepcopy(_pick(rng, ODD_VALUES))


def _split(raw: bytes) -> tuple[dict, bytes]:
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def _join(header: dict | str, body: bytes, pad: bool = True) -> bytes:
    text = header if isinstance(header, str) else json.dumps(header, separators=(",", ":"))
    b = text.encode("utf-8", "surrogatepass")
    if pad:
        b += b" " * (-len(b) % 8)
    return struct.pack("<Q", len(b)) + b + body


def _with_meta(header: dict, meta, *, fix_crc: bool = True) -> dict:
    header = dict(header)
    text = meta if isinstance(meta, str) else json.dumps(meta)
    md = dict(header.get("__metadata__", {}))
    md["wsc"] = text
    if fix_crc:
        md["wsc.crc32"] = str(zlib.crc32(text.encode("utf-8", "surrogatepass")))
    header["__metadata__"] = md
    return header


def _paths(obj, prefix=()):
    """Every (path, value) inside a JSON tree."""
    yield prefix, obj
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


def _set(obj, path, value):
    for p in path[:-1]:
        obj = obj[p]
    obj[path[-1]] = value


def _delete(obj, path):
    for p in path[:-1]:
        obj = obj[p]
    del obj[path[-1]]


# ---------------------------------------------------------------- mutators: bytes


def m_bytes(rng, raw: bytes, seeds) -> bytes:
    b = bytearray(raw)
    n = len(b)
    if n < 9:  # (an earlier mutation cut it short) start from a few random bytes
        return bytes(rng.integers(0, 256, size=int(rng.integers(0, 17)), dtype=np.uint8))
    what = int(rng.integers(9))
    if what == 0:  # bit flips
        for _ in range(int(rng.integers(1, 9))):
            pos = int(rng.integers(n))
            b[pos] ^= 1 << int(rng.integers(8))
    elif what == 1:  # byte overwrites with odd values
        for _ in range(int(rng.integers(1, 5))):
            b[int(rng.integers(n))] = _pick(rng, [0, 0xFF, 0x7F, 0x80, 0x01, ord("{"), ord('"'), ord("9")])
    elif what == 2:
        b = b[: int(rng.integers(n))]
    elif what == 3:
        b += bytes(rng.integers(0, 256, size=int(rng.integers(1, 200)), dtype=np.uint8))
    elif what == 4:  # cut a range
        i = int(rng.integers(n))
        del b[i:i + int(rng.integers(1, 64))]
    elif what == 5:  # duplicate a range
        i = int(rng.integers(n))
        b[i:i] = b[i:i + int(rng.integers(1, 64))]
    elif what == 6:  # splice with another seed
        other = _pick(rng, seeds)
        i = int(rng.integers(min(n, len(other))))
        b = b[:i] + bytearray(other[i:])
    elif what == 7:  # lying header length
        (h,) = struct.unpack("<Q", raw[:8])
        lie = _pick(rng, [0, 1, 7, h - 1, h + 1, h + 8, n, n - 8, 2**32, 2**63, 2**64 - 1, 100 * 2**20 + 8])
        b[:8] = struct.pack("<Q", lie % 2**64)
    else:  # random bytes in the body only
        (h,) = struct.unpack("<Q", raw[:8])
        body = 8 + h
        for _ in range(int(rng.integers(1, 17))):
            pos = int(rng.integers(body, n)) if n > body else int(rng.integers(n))
            b[pos] = int(rng.integers(256))
    return bytes(b)


# ---------------------------------------------------------------- mutators: safetensors header


def m_header(rng, raw: bytes, seeds) -> bytes:
    header, body = _split(raw)
    names = [k for k in header if k != "__metadata__"]
    name = _pick(rng, names)
    e = header[name]
    what = int(rng.integers(11))
    if what == 0:
        e["dtype"] = _pick(rng, ["F32", "F16", "BF16", "F64", "U8", "I64", "BOOL", "U16", "C64", "F8_E4M3",
                                 "Q4", "", "object", "pickle"])
    elif what == 1:
        dims = list(e["shape"])
        choice = int(rng.integers(5))
        if choice == 0 and dims:
            dims[int(rng.integers(len(dims)))] = _pick(rng, INTERESTING)
        elif choice == 1:
            dims.append(int(rng.integers(0, 4)))
        elif choice == 2 and dims:
            dims.pop()
        elif choice == 3:
            dims = [2**31, 2**31, 2**31]
        else:
            dims = _odd(rng)
        e["shape"] = dims
    elif what == 2:
        off = list(e["data_offsets"])
        off[int(rng.integers(2))] = _pick(rng, INTERESTING + [off[0] + 1, off[1] - 1, len(body), len(body) + 1])
        e["data_offsets"] = off
    elif what == 3:  # swap the byte ranges of two tensors
        other = header[_pick(rng, names)]
        e["data_offsets"], other["data_offsets"] = other["data_offsets"], e["data_offsets"]
    elif what == 4:
        del header[name]
    elif what == 5:
        header[name + "x"] = e
    elif what == 6:
        e[_pick(rng, ["extra", "dtype", "shape", "data_offsets"])] = _odd(rng)
    elif what == 7:
        header["__metadata__"] = _odd(rng)
    elif what == 8:
        md = header.get("__metadata__", {})
        md[_pick(rng, ["wsc", "wsc.crc32", "other"])] = _odd(rng) if rng.random() < 0.5 else "{}"
    elif what == 9:  # garbage header text of the right length
        text = json.dumps(header)
        cut = int(rng.integers(len(text)))
        return _join(text[:cut] + _pick(rng, ["", "}", "]", ",", "\x00", "\\", '"', "[" * 5000]), body)
    else:  # huge tensor claimed
        e["shape"] = [2**40]
        e["data_offsets"] = [0, 2**40 * 4]
    return _join(header, body, pad=rng.random() < 0.9)


# ---------------------------------------------------------------- mutators: .wsc metadata


def m_meta(rng, raw: bytes, seeds) -> bytes:
    if "wsc" not in _split(raw)[0].get("__metadata__", {}):  # compressed: edit its JSON inline
        meta, tensors, _, _ = container._read_raw(raw)
        raw = _resave(meta, tensors)
    header, body = _split(raw)
    meta = json.loads(header["__metadata__"]["wsc"])
    what = int(rng.integers(12))
    if what == 10 and not _stored_entries(meta):  # a lie about an entry the file has
        what = 3
    elif what in (3, 4) and not container.shared_entries(meta):
        what = 10
    if what == 0:
        meta["version"] = _pick(rng, [0, 2, 99, -1, True, "1", 1.0, None])
    elif what == 1:
        meta["coder"] = _pick(rng, ["rans", "ans", "", None, 1, "Huffman", ["huffman"]])
    elif what == 2:
        meta["chunk_size"] = _pick(rng, [0, -1, 1, 2, 3, 10**6, 2**40, 2**41, 2**63, True, 1.5, "16", None])
    elif what == 3:  # lie about one shared tensor's counts
        t = _pick(rng, container.shared_entries(meta))
        key = _pick(rng, ["numel", "bits", "shape", "dtype", "crc32"])
        old = t.get(key)
        if isinstance(old, int) and rng.random() < 0.6:
            t[key] = old + _pick(rng, [-1, 1, 8, -8, 1000, old, -old, 2**40])
        else:
            t[key] = _odd(rng)
    elif what == 4:  # consistent lie: numel (before version 7) and shape together
        t = _pick(rng, container.shared_entries(meta))
        n0 = _numel(t)
        n = _pick(rng, [1, 2, n0 + 1, 2 * n0, 2**40, 2**62])
        t["shape"] = [n]
        if "numel" in t:
            t["numel"] = n
    elif what == 5:
        t = _pick(rng, meta["tensors"])
        choice = int(rng.integers(5))
        if choice == 0:
            t["alias_of"] = _pick(rng, [t.get("name"), "nothing", None, 3, ["emb"], meta["tensors"][0]["name"]])
        elif choice == 1:
            t["shared"] = _odd(rng)
        elif choice == 2:
            t["name"] = _odd(rng)
        elif choice == 3:
            meta["tensors"].append(copy.deepcopy(t))
        else:
            meta["tensors"].remove(t)
    elif what == 6:
        meta["codebook"][_pick(rng, ["size", "crc32"])] = _odd(rng)
    elif what == 7:  # any value anywhere
        paths = [p for p, _ in _paths(meta) if p]
        _set(meta, _pick(rng, paths), _odd(rng))
    elif what == 8:
        paths = [p for p, _ in _paths(meta) if p]
        _delete(meta, _pick(rng, paths))
    elif what == 9:  # garbage or deeply nested JSON text
        text = _pick(rng, ["", "null", "[]", "{", '{"format": "wsc"}', "[" * 100000 + "]" * 100000,
                           '{"a":' * 5000 + "1" + "}" * 5000, "\udcff", "1" * 5000, json.dumps(meta)[:-1]])
        return _join(_with_meta(header, text), body)
    elif what == 10:  # stored tensors: lie about shape, dtype, fill, narrow dtype or range of codes
        t = _pick(rng, _stored_entries(meta))
        r = rng.random()
        if r < 0.3:
            t["shape"] = _pick(rng, [[], [0], [1], [2**40], [3, 2**31], [1] * 40, [-1]])
        elif r < 0.55:
            t["dtype"] = _pick(rng, ["float32", "int64", "bool", "complex64", "object", "../x", None])
        elif r < 0.7:
            t["fill"] = _pick(rng, [0, -0.0, 1.5, 2**70, -1, True, None, "x", [1], float("inf"), 1e300])
        elif r < 0.85:
            t["stored_as"] = _pick(rng, ["float16", "bfloat16", "float32", "float64", "uint8", "int8", "bool", None])
        else:
            t["range"] = _pick(rng, [[0, 1], [1, 0], [0], [0, 1e308], [-1e308, 1e308], ["a", 1], None, 5])
    else:
        meta["tensors"].reverse()
    return _join(_with_meta(header, meta, fix_crc=rng.random() < 0.9), body)


# ---------------------------------------------------------------- mutators: tensors, checksums fixed


def _numel(t: dict) -> int:
    """A shared entry's element count: recorded before version 7, its shape's product since."""
    return int(t["numel"]) if "numel" in t else math.prod(t["shape"])


def _stored_entries(meta: dict) -> list[dict]:
    """The unshared entries: those neither shared (container.shared_entries) nor aliases."""
    shared = {id(t) for t in container.shared_entries(meta)}
    return [t for t in meta["tensors"] if id(t) not in shared and "alias_of" not in t]


def _resave(meta: dict, tensors: dict) -> bytes:
    text = json.dumps(meta)
    return safetensors.torch.save({k: v.contiguous() for k, v in tensors.items()},
                                  metadata={"wsc": text, "wsc.crc32": str(zlib.crc32(text.encode()))})


def m_tensors(rng, raw: bytes, seeds) -> bytes:
    meta, tensors, _, _ = container._read_raw(raw)
    tensors = {k: v.clone() for k, v in tensors.items()}
    shared = container.shared_entries(meta)
    coders = container.shared_coders(meta)
    j = int(rng.integers(len(shared)))
    offsets, data = tensors["offsets"], tensors["data"]
    what = int(rng.integers(8))
    if what in (0, 1) and coders[j] == "rans":  # a rANS table: bits flipped, bytes cut or added
        tables = tensors["tables"]
        start = sum(int(t["table_bytes"]) for t, c in zip(shared[:j], coders[:j]) if c == "rans")
        size = int(shared[j]["table_bytes"])
        if what == 0:
            for _ in range(int(rng.integers(1, 4))):
                tables[start + int(rng.integers(size))] ^= 1 << int(rng.integers(8))
        else:
            cut = start + int(rng.integers(size))
            extra = torch.from_numpy(rng.integers(0, 256, size=int(rng.integers(0, 3)), dtype=np.uint8))
            tensors["tables"] = torch.cat([tables[:cut], extra, tables[cut + 1:]])
            shared[j]["table_bytes"] = size - 1 + extra.numel()
    elif what == 0:  # random code lengths
        row = tensors["lengths"][coders[:j].count("huffman")]
        for _ in range(int(rng.integers(1, 4))):
            row[int(rng.integers(row.numel()))] = int(_pick(rng, [0, 1, 2, 5, 11, 12, 16, 24, 31, 32, 33, 255]))
    elif what == 1:  # permute the lengths (still a complete code, different symbols)
        row = tensors["lengths"][coders[:j].count("huffman")]
        row.copy_(row[torch.from_numpy(rng.permutation(row.numel()))])
    elif what == 2:  # flip payload bits
        if data.numel():
            for _ in range(int(rng.integers(1, 6))):
                data[int(rng.integers(data.numel()))] ^= 1 << int(rng.integers(8))
    elif what == 3:  # chunk offsets off by a little or a lot
        i = int(rng.integers(offsets.numel()))
        v = int(offsets[i]) + _pick(rng, [-1, 1, -8, 8, 2**31, -(2**31), 2**62])
        offsets[i] = v % 2**32 if offsets.dtype == torch.uint32 else v
    elif what == 4:  # payload bytes appended or removed with offsets kept
        if rng.random() < 0.5 and data.numel():
            tensors["data"] = data[:-1]
        else:
            tensors["data"] = torch.cat([data, torch.zeros(3, dtype=torch.uint8)])
    elif what == 5:  # codebook values
        cbk = tensors["codebook"]
        cbk[int(rng.integers(cbk.numel()))] = _pick(rng, [float("nan"), float("inf"), -float("inf"), 1e38, 0.0])
    elif what == 6:  # more or fewer symbols than coded, offsets made to agree in count
        t = shared[j]
        n = max(1, _numel(t) + _pick(rng, [-1, 1, -3, 5, _numel(t)]))
        t["shape"] = [n]
        if "numel" in t:
            t["numel"] = n
    else:  # stored tensor bytes
        keys = [k for k in tensors if k.startswith("stored.") and tensors[k].numel()]
        if keys:
            t = tensors[_pick(rng, keys)]
            flat = t.view(torch.uint8) if t.dtype != torch.bool else t.view(torch.uint8)
            flat[int(rng.integers(flat.numel()))] ^= 0x41
    # recompute every checksum, so only the structure and the decoders can object
    meta = copy.deepcopy(meta)
    meta["codebook"]["crc32"] = container._crc(tensors["codebook"])
    o = d = h = tb = 0
    ends_only = meta["version"] >= 7  # no leading 0 per stream; a one-chunk rANS stream has no chunk_size
    for t, coder in zip(container.shared_entries(meta), coders):
        cs = meta["chunk_size"] if coder == "huffman" else t.get("chunk_size", max(1, _numel(t)))
        n_off = -(-_numel(t) // cs) + (0 if ends_only else 1)
        off = tensors["offsets"][o:o + n_off]
        end = int(off[-1]) if off.numel() else 0
        if coder == "huffman":
            code = tensors["lengths"][h] if h < tensors["lengths"].shape[0] else None
            h += 1
        else:
            size = int(t["table_bytes"])
            code = tensors["tables"][tb:tb + size]
            tb += size
        if 0 <= d and 0 <= end and d + end <= tensors["data"].numel() and code is not None:
            t["crc32"] = container._crc(code, off, tensors["data"][d:d + end])
        o, d = o + n_off, d + max(end, 0)
    return _resave(meta, tensors)


# ---------------------------------------------------------------- pickles


class _Boom:
    def __reduce__(self):
        return (os.system, ("touch /tmp/wsc-fuzz-pickle-ran",))


def m_pickle(rng, raw: bytes, seeds) -> bytes:
    import pickle

    what = int(rng.integers(3))
    if what == 0:
        return pickle.dumps(_Boom(), protocol=int(rng.integers(2, 6)))
    if what == 1:
        buf = io.BytesIO()
        torch.save({"weight": torch.zeros(2), "boom": _Boom()}, buf)
        return buf.getvalue()
    # a .wsc whose metadata string and payload hold a pickle: data, never code
    header, body = _split(raw)
    p = pickle.dumps(_Boom())
    return _join(_with_meta(header, p.decode("latin-1")), body)


# ---------------------------------------------------------------- the bare decoders


def m_stream(rng, streams):
    s = _pick(rng, streams)
    if isinstance(s, rans.RansStream):
        return _m_rans_stream(rng, s)
    data, lengths, offsets = s.data.copy(), s.lengths.copy(), s.chunk_offsets.copy()
    n, cs = s.n_symbols, s.chunk_size
    for _ in range(int(rng.integers(1, 4))):
        what = int(rng.integers(7))
        if what == 0 and data.size:
            data[int(rng.integers(data.size))] ^= 1 << int(rng.integers(8))
        elif what == 1:
            lengths[int(rng.integers(lengths.size))] = _pick(rng, [0, 1, 3, 9, 12, 17, 32, 33, 200])
        elif what == 2:
            lengths = lengths[rng.permutation(lengths.size)]
        elif what == 3:
            i = int(rng.integers(offsets.size))
            offsets[i] += _pick(rng, [-1, 1, 7, -7, 1000])
        elif what == 4:
            n = max(0, n + _pick(rng, [-1, 1, cs, -cs, 5 * n]))
            offsets = np.linspace(0, data.size, -(-n // cs) + 1).astype(np.int64)
        elif what == 5 and data.size:
            cut = int(rng.integers(data.size))
            data = data[:cut]
            offsets = np.minimum(offsets, cut)
        elif what == 6:
            data = np.concatenate([data, rng.integers(0, 256, size=int(rng.integers(1, 40)), dtype=np.uint8)])
            offsets[-1] = data.size
    return huffman.HuffmanStream(np.ascontiguousarray(data), np.ascontiguousarray(lengths), offsets, n, cs)


def _m_rans_stream(rng, s: rans.RansStream) -> rans.RansStream:
    data, freqs, offsets = s.data.copy(), s.freqs.copy(), s.chunk_offsets.copy()
    n, cs, scale, states = s.n_symbols, s.chunk_size, s.scale_bits, s.states
    for _ in range(int(rng.integers(1, 4))):
        what = int(rng.integers(9))
        if what == 0 and data.size:
            data[int(rng.integers(data.size))] ^= 1 << int(rng.integers(8))
        elif what == 1:  # move frequency between symbols (the sum stays), or break the sum
            a, b = rng.integers(freqs.size, size=2)
            dd = int(min(freqs[a], _pick(rng, [1, 2, 100, 2**20])))
            freqs[a] -= dd
            freqs[b] += dd + int(rng.random() < 0.2)
        elif what == 2:
            freqs = freqs[rng.permutation(freqs.size)]
        elif what == 3:
            i = int(rng.integers(offsets.size))
            offsets[i] += _pick(rng, [-1, 1, 7, -7, 32, 1000])
        elif what == 4:
            n = max(0, n + _pick(rng, [-1, 1, cs, -cs, 5 * n]))
            offsets = np.linspace(0, data.size, -(-n // cs) + 1).astype(np.int64)
        elif what == 5 and data.size:
            cut = int(rng.integers(data.size))
            data = data[:cut]
            offsets = np.minimum(offsets, cut)
        elif what == 6:
            data = np.concatenate([data, rng.integers(0, 256, size=int(rng.integers(1, 40)), dtype=np.uint8)])
            offsets[-1] = data.size
        elif what == 7:
            scale = int(np.clip(scale + _pick(rng, [-1, 1, 5]), 1, 20))
        else:  # another state count: the chunks' state words and bytes no longer line up
            states = _pick(rng, [1, 2, 4, 8])
    return rans.RansStream(np.ascontiguousarray(data), np.ascontiguousarray(freqs), offsets, n, cs, scale, states)


_BOMB: list[bytes] = []


def m_zmeta(rng, raw: bytes, seeds) -> bytes:
    """The compressed metadata: a flipped byte, cut short, trailing bytes, inflating past the
    reader's limit, JSON cut inside, or an inline "wsc" beside it."""
    meta, tensors, _, _ = container._read_raw(raw)
    text = json.dumps(meta).encode()
    z, md = zlib.compress(text), {"wsc.meta": "zlib", "wsc.crc32": str(zlib.crc32(text))}
    what = int(rng.integers(6))
    if what == 0:
        z = bytearray(z)
        z[int(rng.integers(len(z)))] ^= 1 << int(rng.integers(8))
    elif what == 1:
        z = z[:int(rng.integers(len(z)))]
    elif what == 2:
        z = z + bytes(int(rng.integers(1, 9)))
    elif what == 3:
        if not _BOMB:
            _BOMB.append(zlib.compress(b" " * (container.META_LIMIT + 1), 9))
        z = _BOMB[0]
    elif what == 4:
        z = zlib.compress(text[:int(rng.integers(len(text)))])
    else:
        md["wsc"] = text.decode()
    ts = {k: v.contiguous() for k, v in tensors.items()}
    ts["meta"] = torch.frombuffer(bytearray(z), dtype=torch.uint8) if len(z) else torch.zeros(0, dtype=torch.uint8)
    return safetensors.torch.save(ts, metadata=md)


# ---------------------------------------------------------------- one case

FILE_MUTATORS = (m_bytes, m_bytes, m_header, m_meta, m_meta, m_tensors, m_tensors, m_zmeta)


class Failure(Exception):
    pass


def make_case(i: int, seed: int, seeds, streams):
    """("file", bytes) or ("stream", HuffmanStream or RansStream) of case i; deterministic in
    (seed, i)."""
    rng = np.random.default_rng([seed, i])
    if rng.random() < 0.12:
        return "stream", m_stream(rng, streams)
    if rng.random() < 0.01:
        return "file", m_pickle(rng, _pick(rng, seeds), seeds)
    raw = _pick(rng, seeds)
    for _ in range(1 if rng.random() < 0.8 else int(rng.integers(2, 4))):
        mut = _pick(rng, FILE_MUTATORS)
        try:
            raw = mut(rng, raw, seeds)
        except Exception:  # a stacked mutator may need a parseable input (tests/test_fuzz.py: every
            raw = m_bytes(rng, raw, seeds)  # mutator works on every seed): the bytes level instead
    return "file", raw


def check_case(kind: str, value, full: bool = True) -> str:
    """'ok' or 'rejected'; raises Failure on anything else."""
    if kind == "stream":
        coder = rans if isinstance(value, rans.RansStream) else huffman
        try:
            idx = coder.decode(value)
            out = coder.decode_gather(value, torch.linspace(-1, 1, max(2, value.k)))
            assert out.numel() == idx.size == value.n_symbols
            return "ok"
        except ValueError as exc:
            if not str(exc):
                raise Failure("ValueError without a message") from exc
            return "rejected"
        except Exception as exc:
            raise Failure(f"{type(exc).__name__}: {exc}") from exc
    outcome = "ok"
    try:
        problems = container.verify(value)
        if any(not p for p in problems):
            raise Failure("verify gave an empty problem")
        try:
            state = container.load_state_dict(value)
            if not all(isinstance(t, torch.Tensor) for t in state.values()):
                raise Failure("load_state_dict returned a non-tensor")
        except FormatError as exc:
            if not problems:
                raise Failure(f"verify found nothing but loading failed: {exc}") from exc
            raise
        if full:
            container.inspect(value)
    except FormatError as exc:
        if not str(exc):
            raise Failure("FormatError without a message") from exc
        outcome = "rejected"
    except Failure:
        raise
    except Exception as exc:
        raise Failure(f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=6)}") from exc
    if os.path.exists("/tmp/wsc-fuzz-pickle-ran"):
        raise Failure("a pickle ran")
    return outcome


def run_cases(start: int, stop: int, seed: int, *, progress=None) -> dict:
    """Run cases [start, stop); returns counts and the failures (case -> message)."""
    seeds, streams = _seed_files(), _seed_streams()
    counts = {"ok": 0, "rejected": 0, "stream_ok": 0, "stream_rejected": 0}
    failures: dict[int, str] = {}
    slowest = (0.0, -1)
    for i in range(start, stop):
        if progress is not None:
            progress(i)
        kind, value = make_case(i, seed, seeds, streams)
        t0 = time.perf_counter()
        try:
            outcome = check_case(kind, value, full=(i % 4 == 0))
            counts[("stream_" if kind == "stream" else "") + outcome] += 1
        except Failure as exc:
            failures[i] = str(exc)
        dt = time.perf_counter() - t0
        slowest = max(slowest, (dt, i))
    return {"counts": counts, "failures": failures, "slowest_s": slowest[0], "slowest_case": slowest[1]}


# ---------------------------------------------------------------- driver


def _worker(start, stop, seed, memory_gib, current, queue):
    if memory_gib:
        with open("/proc/self/statm") as f:
            vm = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        limit = vm + int(memory_gib * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    torch.set_num_threads(1)

    def progress(i):
        current.value = i

    queue.put(run_cases(start, stop, seed, progress=progress))


def _instrument_wsc(atheris) -> int:
    """Coverage instrumentation of every function and method of the loaded wsc modules only
    (instrument_all would take minutes over torch)."""
    import inspect
    import types

    done = 0
    for name, mod in list(sys.modules.items()):
        if not (name == "wsc" or name.startswith("wsc.")) or mod is None:
            continue
        for obj in vars(mod).values():
            targets = [obj]
            if inspect.isclass(obj) and obj.__module__ == name:
                targets = [v.fget if isinstance(v, property) else getattr(v, "__func__", v)
                           for v in vars(obj).values()]
            for f in targets:
                if isinstance(f, types.FunctionType) and f.__module__ == name:
                    atheris.instrument_func(f)
                    done += 1
    return done


def run_atheris(libfuzzer_args: list[str]) -> int:
    """Coverage-guided fuzzing with atheris (pip install atheris): libFuzzer picks the inputs
    that reach new code, our mutators (half the time) or libFuzzer's byte mutations make new
    ones from them. The seed files are the starting corpus. Any outcome but success or
    FormatError stops the run with the input saved by libFuzzer (crash-*)."""
    import tempfile

    import atheris

    seeds, streams = _seed_files(), _seed_streams()
    corpus = tempfile.mkdtemp(prefix="wsc-fuzz-corpus-")
    for i, raw in enumerate(seeds):
        with open(os.path.join(corpus, f"seed{i}.wsc"), "wb") as f:
            f.write(raw)

    def one_input(data: bytes) -> None:
        check_case("file", data, full=True)  # raises Failure on anything but ok/FormatError

    def mutate(data: bytes, max_size: int, seed: int) -> bytes:
        rng = np.random.default_rng(seed)
        if rng.random() < 0.5 or len(data) < 9:
            return atheris.Mutate(data, max_size)
        mut = _pick(rng, FILE_MUTATORS)
        try:
            out = mut(rng, data, seeds)
        except Exception:
            out = m_bytes(rng, data, seeds)
        return out[:max_size]

    _instrument_wsc(atheris)
    atheris.Setup([sys.argv[0], *libfuzzer_args, corpus], one_input, custom_mutator=mutate)
    atheris.Fuzz()
    return 0


def main(argv=None) -> int:
    if "--atheris" in (argv if argv is not None else sys.argv[1:]):
        rest = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--atheris"]
        return run_atheris(rest)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--memory", type=float, default=1.0, help="GiB of address space above the start (0: no limit)")
    p.add_argument("--timeout", type=float, default=4 * 3600, help="seconds before a worker counts as hung")
    p.add_argument("--case", type=int, default=None, help="rebuild and run one case")
    p.add_argument("--save", default=None, help="with --case: write its input to this file")
    p.add_argument("--atheris", action="store_true", help="coverage-guided fuzzing with atheris instead; the "
                   "other arguments go to libFuzzer (e.g. -runs=100000 -max_len=16384)")
    args = p.parse_args(argv)

    if args.case is not None:
        kind, value = make_case(args.case, args.seed, _seed_files(), _seed_streams())
        if args.save and kind == "file":
            with open(args.save, "wb") as f:
                f.write(value)
        print(f"case {args.case}: {kind}, outcome {check_case(kind, value)}")
        return 0

    if os.path.exists("/tmp/wsc-fuzz-pickle-ran"):
        os.unlink("/tmp/wsc-fuzz-pickle-ran")
    t0 = time.perf_counter()
    ctx = mp.get_context("spawn")
    bounds = np.linspace(0, args.cases, args.jobs + 1).astype(int)
    queue = ctx.Queue()
    currents = [ctx.Value("q", -1) for _ in range(args.jobs)]
    procs = [ctx.Process(target=_worker, args=(int(a), int(b), args.seed, args.memory, c, queue))
             for a, b, c in zip(bounds[:-1], bounds[1:], currents)]
    for pr in procs:
        pr.start()
    results = []
    while len(results) < args.jobs:
        try:
            results.append(queue.get(timeout=5))
            continue
        except Exception:  # queue.Empty: check the workers are alive and on time
            pass
        dead = [j for j, pr in enumerate(procs) if not pr.is_alive() and pr.exitcode != 0]
        late = time.perf_counter() - t0 > args.timeout
        if dead or late:
            for j, pr in enumerate(procs):
                state = f"exit code {pr.exitcode}" if not pr.is_alive() else "still running"
                print(f"worker {j} ({state}) was on case {currents[j].value}")
                if pr.is_alive():
                    pr.kill()
            print("FAILED: a worker " + ("crashed" if dead else "hung") + "; rebuild the case with --case N")
            return 1
    for pr in procs:
        pr.join()
    wall = time.perf_counter() - t0
    counts = {k: sum(r["counts"][k] for r in results) for k in results[0]["counts"]}
    failures = {i: m for r in results for i, m in r["failures"].items()}
    slowest = max((r["slowest_s"], r["slowest_case"]) for r in results)
    total = sum(counts.values())
    print(f"{total} cases in {wall:.1f} s ({args.jobs} jobs, seed {args.seed}): "
          f"files {counts['ok']} loaded, {counts['rejected']} rejected with FormatError; "
          f"bare decoder streams {counts['stream_ok']} decoded, {counts['stream_rejected']} rejected with ValueError; "
          f"slowest case {slowest[1]} took {slowest[0] * 1000:.1f} ms; {len(failures)} failures")
    for i, msg in sorted(failures.items())[:20]:
        print(f"FAIL case {i}: {msg.splitlines()[0] if msg else msg}")
    print(f"wsc {wsc.__version__} from {os.path.dirname(wsc.__file__)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
