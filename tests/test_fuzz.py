"""Hostile .wsc files: a seeded subset of bench/fuzz_container.py, pickles, lying sizes.

Every malformed input must raise wsc.FormatError (a ValueError) with a message; the bare
Huffman decoders raise ValueError. The full run (100,000 cases) is
``python bench/fuzz_container.py``.
"""

from __future__ import annotations

import importlib.util
import io
import json
import math
import os
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import wsc
from wsc import container
from wsc.errors import FormatError

from pipeline_fixtures import resave

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("fuzz_container", ROOT / "bench" / "fuzz_container.py")
fuzz = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fuzz)


@pytest.fixture(scope="module")
def seeds():
    return fuzz._seed_files()


def test_the_seed_files_are_valid(seeds):
    for raw in seeds:
        assert container.verify(raw) == []
        assert fuzz.check_case("file", raw) == "ok"
    # rANS tables in both modes of table encoding 2, and in encoding 1 (a version 2 file)
    files = [container.read(raw) for raw in seeds]
    tables = [s.code for a in files if a.version == 3 for s in a.streams if s.coder == "rans"]
    assert any(t[0] & 0x04 for t in tables) and any(not t[0] & 0x04 for t in tables)
    assert any(a.version == 2 and any(s.coder == "rans" for s in a.streams) for a in files)


def test_every_mutator_works_on_every_seed(seeds):
    """A mutator falls back to byte mutations only where an earlier mutation left the file
    unparseable: on every valid seed file every mutator succeeds."""
    for i, raw in enumerate(seeds):
        for mut in sorted(set(fuzz.FILE_MUTATORS), key=lambda m: m.__name__):
            for r in range(30):
                out = mut(np.random.default_rng([i, r]), raw, seeds)
                assert isinstance(out, bytes), (i, mut.__name__)


def test_seeded_fuzz_subset():
    """600 mutated inputs (a few seconds): each loads or raises FormatError, nothing else."""
    r = fuzz.run_cases(0, 600, seed=12345)
    assert r["failures"] == {}
    c = r["counts"]
    assert c["rejected"] > 300 and c["ok"] > 0 and c["stream_rejected"] > 20, c


def test_format_error_is_a_value_error():
    assert issubclass(FormatError, ValueError) and wsc.FormatError is FormatError


class _Marker:
    path = ""

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_pickles_are_refused_and_never_run(tmp_path, seeds):
    _Marker.path = str(tmp_path / "ran")
    payloads = [pickle.dumps(_Marker(), protocol=p) for p in (2, 4, 5)]
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(2), "m": _Marker()}, buf)
    payloads.append(buf.getvalue())
    # a .wsc whose metadata string is a pickle (checksum right): JSON or nothing
    header, body = fuzz._split(seeds[0])
    payloads.append(fuzz._join(fuzz._with_meta(header, payloads[0].decode("latin-1")), body))
    for i, p in enumerate(payloads):
        f = tmp_path / f"p{i}.wsc"
        f.write_bytes(p)
        for source in (p, f):
            with pytest.raises(FormatError):
                wsc.load_state_dict(source)
            with pytest.raises(FormatError):
                wsc.inspect(source)
    assert not os.path.exists(_Marker.path)


def test_no_code_path_can_unpickle():
    """The reading modules never call anything that could run code from a file."""
    for name in ("container.py", "_safetensors.py", "huffman.py", "api.py", "nn.py"):
        text = (ROOT / "python" / "wsc" / name).read_text()
        for bad in ("import pickle", "torch.load", "allow_pickle", "eval(", "exec(", "marshal", "safe_open"):
            assert bad not in text, (name, bad)


def _file(meta_edit=None, tensors=None, header_edit=None, seeds=None):
    raw = seeds[0]
    meta, ts, _, _ = container._read_raw(raw)
    ts = {k: v.clone() for k, v in ts.items()}
    if tensors:
        tensors(ts)
    if meta_edit:
        meta_edit(meta)
    out = resave(meta, ts)
    if header_edit:
        header, body = fuzz._split(out)
        header_edit(header)
        out = fuzz._join(header, body)
    return out


def _first_shared(meta):
    return container.shared_entries(meta)[0]


@pytest.mark.parametrize("edit, message", [
    # huge element counts are refused before anything is allocated
    (lambda m: (m.update(chunk_size=2**40), _first_shared(m).update(shape=[2**40])), "chunk offsets|cannot fit"),
    (lambda m: _first_shared(m).update(shape=[2**31, 2**31]), "chunk offsets|cannot fit"),
    (lambda m: _first_shared(m).update(bits=2**60), "payload bits"),
    (lambda m: _first_shared(m).update(numel=True), "'numel' in a version 7 entry"),
    (lambda m: m.update(version=True), "format version True"),
    (lambda m: m.update(chunk_size=0), "chunk_size"),
    (lambda m: m.update(chunk_size=2**50), "chunk_size"),
    (lambda m: _first_shared(m).update(dtype=["float32"]), "unsupported dtype"),
    (lambda m: _first_shared(m).update(shape=[1] * 100), "bad shape"),
    (lambda m: m["tensors"].append({"name": "x", "alias_of": ["emb"]}), "alias_of"),
    (lambda m: next(t for t in m["tensors"] if "crc32" not in t).update(shape=[2**61]), "too short"),
])
def test_lying_metadata(seeds, edit, message):
    with pytest.raises(FormatError, match=message):
        wsc.load_state_dict(_file(meta_edit=edit, seeds=seeds))


@pytest.mark.parametrize("edit, message", [
    (lambda h: h["data"].update(data_offsets=[0, 2**62]), "not a range"),
    (lambda h: h["data"].update(shape=[2**40], data_offsets=[0, 2**40]), "not a range|bytes for shape"),
    (lambda h: h["codebook"].update(shape=[2**31, 2**31, 2**31]), "bytes for shape|bad shape"),
    (lambda h: h["codebook"].update(dtype="PICKLE"), "unknown dtype"),
    (lambda h: h["codebook"].update(shape=[-1]), "bad shape"),
    (lambda h: h["data"].update(data_offsets=h["codebook"]["data_offsets"]), "overlaps|bytes for shape|gap"),
    (lambda h: h.update(__metadata__=["wsc"]), "__metadata__"),
    (lambda h: h["codebook"].update(extra=1), "exactly dtype, shape, data_offsets"),
])
def test_lying_safetensors_header(seeds, edit, message):
    with pytest.raises(FormatError, match=message):
        wsc.load_state_dict(_file(header_edit=edit, seeds=seeds))


@pytest.mark.parametrize("raw, message", [
    (b"", "only 0 bytes"),
    (struct.pack("<Q", 2**63) + b"{}", "truncated"),
    (struct.pack("<Q", 2) + b"{}", "no 'wsc' metadata"),
    (struct.pack("<Q", 10) + b'{"a":1,"a":2}'[:10], "not valid JSON"),
    (struct.pack("<Q", 13) + b'{"a":1,"a":2}', "appears twice"),
    (struct.pack("<Q", 20000) + b"[" * 10000 + b"]" * 10000, "nested too deeply|not a JSON object"),
])
def test_garbage(raw, message):
    with pytest.raises(FormatError, match=message):
        wsc.load_state_dict(raw)


def test_decoder_bound_checks_run_past_a_corrupt_stream(seeds):
    """Payload damage with every checksum recomputed: only the decoder can notice."""
    def damage(ts):
        ts["data"][: ts["data"].numel() // 2] = 0xFF

    raw = _file(tensors=damage, seeds=seeds)
    meta, ts, _, _ = container._read_raw(raw)
    # recompute the stream checksums, as a careful attacker would
    o = d = 0
    for j, t in enumerate(container.shared_entries(meta)):
        n_off = -(-math.prod(t["shape"]) // meta["chunk_size"])  # each chunk's end (version 7)
        off = ts["offsets"][o:o + n_off]
        t["crc32"] = container._crc(ts["lengths"][j], off, ts["data"][d:d + int(off[-1])])
        o, d = o + n_off, d + int(off[-1])
    text = json.dumps(meta)
    raw = safetensors.torch.save(ts, metadata={"wsc": text, "wsc.crc32": str(zlib.crc32(text.encode()))})
    with pytest.raises(FormatError, match="undecodable stream"):
        wsc.load_state_dict(raw)
    assert any("undecodable" in p for p in container.verify(raw))


# ---------------------------------------------------------------- hypothesis, byte level
_SEED = fuzz._seed_files()[1]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600))
def test_arbitrary_bytes(raw):
    assert fuzz.check_case("file", raw) in ("ok", "rejected")


@settings(max_examples=150, deadline=None)
@given(st.integers(0, len(_SEED)), st.binary(max_size=64), st.integers(0, len(_SEED)))
def test_a_valid_file_cut_and_patched(cut, junk, at):
    raw = bytearray(_SEED[:cut] + junk + _SEED[cut + len(junk):])
    assert fuzz.check_case("file", bytes(raw)) in ("ok", "rejected")
    raw = bytearray(_SEED)
    raw[at:at + len(junk)] = junk
    assert fuzz.check_case("file", bytes(raw[:len(_SEED)])) in ("ok", "rejected")
