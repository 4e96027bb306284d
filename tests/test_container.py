"""The .wsc container: exact round trip, exact size, and a clear FormatError for any damage."""

from __future__ import annotations

import json
import os
import zlib

import numpy as np
import pytest
import safetensors.torch
import torch

import wsc
from wsc import container
from wsc.errors import FormatError
from wsc.scheme import Scheme
from wsc.workbench import Workbench

from pipeline_fixtures import resave


class Mixed(torch.nn.Module):
    """Every kind of tensor a file must carry: float32/16/bf16/64 weights, BN buffers, ties."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.emb = torch.nn.Embedding(50, 16)
        self.conv = torch.nn.Conv1d(16, 16, 3)
        self.bn = torch.nn.BatchNorm1d(16)
        self.f16 = torch.nn.Parameter(torch.randn(8, 8).half())
        self.brain = torch.nn.Parameter(torch.randn(4, 40).bfloat16())
        self.f64 = torch.nn.Parameter(torch.randn(3, 5, dtype=torch.float64))
        self.head = torch.nn.Linear(16, 50)
        self.head.weight = self.emb.weight
        self.bn.running_mean.normal_()
        self.bn.num_batches_tracked += 7


@pytest.fixture(params=container.CODER_OPTIONS)
def coded_file(tmp_path, request):
    """The Mixed model written with each coder option."""
    bench = Workbench(Mixed())
    cb = bench.codebook(33)
    path = tmp_path / "m.wsc"
    size = container.write(path, bench.payload(cb, {"note": "test"}), coder=request.param)
    return bench, cb, path, size, request.param


@pytest.fixture
def mixed_file(coded_file):
    """The Mixed model written with each coder option (bench, codebook, path, size)."""
    return coded_file[:4]


def huffman_file(tmp_path, coder="huffman"):
    bench = Workbench(Mixed())
    cb = bench.codebook(33)
    path = tmp_path / f"{coder}.wsc"
    size = container.write(path, bench.payload(cb, {"note": "test"}), coder=coder)
    return bench, cb, path, size


def test_round_trip_restores_the_shared_model_exactly(coded_file):
    bench, cb, path, size, coder = coded_file
    assert size == os.path.getsize(path) == len(container.to_bytes(bench.payload(cb, {"note": "test"}), coder=coder))
    assert not [p for p in os.listdir(path.parent) if p.endswith(".tmp")]
    state = wsc.load_state_dict(path)
    with bench.model(cb) as m:
        expect = m.state_dict()
    assert list(state) == list(expect)
    for name, t in expect.items():
        assert state[name].dtype == t.dtype and state[name].shape == t.shape, name
        assert torch.equal(state[name], t), name
    assert state["head.weight"] is state["emb.weight"]
    assert int(state["bn.num_batches_tracked"]) == 7


def test_load_into_a_fresh_model(mixed_file):
    bench, cb, path, _ = mixed_file
    model = Mixed()
    wsc.load_into(model, path)
    with bench.model(cb) as m:
        for (n, a), b in zip(model.state_dict().items(), m.state_dict().values()):
            assert torch.equal(a, b), n
    with pytest.raises(ValueError, match="does not match the model"):
        wsc.load_into(torch.nn.Linear(3, 3), path)
    wrong = Mixed()
    wrong.f16 = torch.nn.Parameter(torch.zeros(8, 8))
    with pytest.raises(ValueError, match="f16: dtype"):
        wsc.load_into(wrong, path)


def test_inspect_reports_sizes_and_checksums(mixed_file):
    bench, cb, path, size = mixed_file
    info = wsc.inspect(path)
    assert info["file_bytes"] == size and info["codebook_size"] == cb.size and info["checksums_ok"]
    assert {s["name"] for s in info["shared"]} == {"f16", "brain", "f64", "emb.weight", "conv.weight"}
    assert info["original_bytes"] == bench.original_bytes
    assert info["ratio"] == pytest.approx(bench.original_bytes / size)
    assert info["paper_style_ratio"] == pytest.approx(32 / info["bits_per_weight"])
    assert info["info"] == {"note": "test"} and info["aliases"] == {"head.weight": "emb.weight"}


def test_metadata_is_checksummed(mixed_file, tmp_path):
    _, _, path, _ = mixed_file
    meta, tensors, _, _ = container._read_raw(path)
    crc = str(zlib.crc32(json.dumps(meta).encode()))  # of the text before the rename
    renamed = json.dumps(meta).replace("conv.weight", "conv.weighs")
    ts = {k: v.clone() for k, v in tensors.items()}
    bad = tmp_path / "renamed.wsc"
    for md, extra in (({"wsc": renamed}, {}),  # inline, as before version 3
                      ({"wsc.meta": "zlib"}, {"meta": torch.frombuffer(bytearray(zlib.compress(renamed.encode())),
                                                                      dtype=torch.uint8)})):
        bad.write_bytes(safetensors.torch.save({**ts, **extra}, metadata={**md, "wsc.crc32": crc}))
        with pytest.raises(FormatError, match="metadata is corrupt"):
            wsc.load_state_dict(bad)


def test_writing_replaces_atomically(tmp_path, coded_file):
    bench, cb, path, size, coder = coded_file
    path.write_bytes(b"old")
    assert container.write(path, bench.payload(cb, {"note": "test"}), coder=coder) == size == os.path.getsize(path)


# ---------------------------------------------------------------- damage
def _rewrite(src, dst, meta_fn=None, tensors_fn=None):
    meta, tensors, _, _ = container._read_raw(src)
    if meta_fn:
        meta_fn(meta)
    if tensors_fn:
        tensors_fn(tensors)
    dst.write_bytes(resave(meta, tensors))
    return dst


def test_flipped_payload_byte_is_a_checksum_error(mixed_file, tmp_path):
    _, _, path, _ = mixed_file
    meta, tensors, _, _ = container._read_raw(path)
    data = tensors["data"].clone()
    data[len(data) // 2] ^= 0x10
    bad = _rewrite(path, tmp_path / "bad.wsc", tensors_fn=lambda t: t.update(data=data))
    with pytest.raises(FormatError, match="checksum"):
        wsc.load_state_dict(bad)
    assert wsc.inspect(bad)["checksums_ok"] is False


def test_flipped_byte_anywhere_in_the_file_never_passes_silently(mixed_file, tmp_path):
    _, _, path, size = mixed_file
    raw = path.read_bytes()
    good = wsc.load_state_dict(path)
    rng = np.random.default_rng(0)
    for pos in rng.choice(size, 40, replace=False):
        b = bytearray(raw)
        b[pos] ^= 1 << int(rng.integers(8))
        try:
            state = wsc.load_state_dict(bytes(b))
        except FormatError:
            continue
        # only a flip that changes nothing read (e.g. safetensors header padding) may pass
        assert list(state) == list(good), pos
        assert all(torch.equal(state[n], good[n]) for n in good), pos


@pytest.mark.parametrize("keep", [0, 5, 8, 100, -1, -100])
def test_truncated_files(mixed_file, keep):
    _, _, path, size = mixed_file
    raw = path.read_bytes()
    with pytest.raises(FormatError):
        wsc.load_state_dict(raw[:keep if keep >= 0 else size + keep])


def test_not_a_wsc_file(tmp_path):
    other = tmp_path / "plain.safetensors"
    safetensors.torch.save_file({"w": torch.zeros(3)}, other)
    with pytest.raises(FormatError, match="no 'wsc' metadata"):
        wsc.load_state_dict(other)
    with pytest.raises(FormatError):
        wsc.inspect(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")


@pytest.mark.parametrize("coder", ["huffman", "rans"])
@pytest.mark.parametrize("edit, message", [
    (lambda m: m.update(version=8), "unsupported .wsc format version 8"),
    (lambda m: m.update(coder="zstd"), "unknown coder 'zstd'"),
    (lambda m: m.update(format="other"), "format field"),
    (lambda m: m.pop("tensors"), "'tensors' is missing"),
    (lambda m: m["tensors"][0].update(numel=1), "'numel' in a version 7 entry"),  # implied by the shape
    (lambda m: m["tensors"][0].update(shape=[2, 2]), "undecodable"),
    (lambda m: m["tensors"][0].update(coder="zstd"), "coder 'zstd' in a file written with"),
    (lambda m: m["tensors"][0].update(chunk_size=None) if m["coder"] == "rans" else m.pop("chunk_size"),
     "chunk_size' is missing|chunk_size None missing"),
    (lambda m: (m["tensors"][0].update(chunk_size=7) if m["coder"] == "rans" else m.update(chunk_size=7)), "offsets"),
    (lambda m: m["codebook"].update(size=3), "codebook holds"),
    (lambda m: m["tensors"].append({"name": "x", "alias_of": "nothing"}), "alias"),
    (lambda m: m["tensors"].append(dict(m["tensors"][0])), "appears twice"),
    (lambda m: m["tensors"][1].update(shared="yes"), "'shared' or 'numel' in a version 7 entry"),
    (lambda m: m["tensors"].pop(0), "left over|missing|code lengths of shape|runs past|payload bits"),
    (lambda m: next(e for e in m["tensors"] if "crc32" not in e).update(shape=[1000]), "too short|left over"),
    (lambda m: next(e for e in m["tensors"] if "crc32" in e).update(bits=5), "payload bits"),
])
def test_inconsistent_metadata(tmp_path, edit, message, coder):
    _, _, path, _ = huffman_file(tmp_path, coder)
    bad = _rewrite(path, tmp_path / "bad.wsc", meta_fn=edit)
    with pytest.raises(FormatError, match=message):
        wsc.load_state_dict(bad)


def test_a_coder_that_contradicts_the_file_option(tmp_path):
    path = tmp_path / "mixed.wsc"
    container.write_bytes(path, container.to_bytes(_two_value_payload(20_000, *[64] * 40), coder="auto"))
    meta, _, _, _ = container._read_raw(path)
    assert meta["coder"] == "auto" and [e["coder"] for e in meta["tensors"]] == ["rans"] + ["huffman"] * 40
    bad = _rewrite(path, tmp_path / "bad.wsc", meta_fn=lambda m: m.update(coder="rans"))
    with pytest.raises(FormatError, match="coder 'rans' in a file written with 'rans'|coder 'huffman' in a file "
                       "written with 'rans'"):
        wsc.load_state_dict(bad)
    bad = _rewrite(path, tmp_path / "bad0.wsc", meta_fn=lambda m: m["tensors"][0].update(coder="zstd"))
    with pytest.raises(FormatError, match="unknown coder 'zstd'"):
        wsc.load_state_dict(bad)
    _, _, path, _ = huffman_file(tmp_path, "rans")
    bad = _rewrite(path, tmp_path / "bad1.wsc", meta_fn=lambda m: m.update(version=1, chunk_size=16384))
    with pytest.raises(FormatError, match="unknown coder 'rans' .version 1 files use huffman"):
        wsc.load_state_dict(bad)


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.pop("lengths"), "'lengths' is missing"),
    (lambda t: t.update(extra=torch.zeros(2)), "unexpected tensors"),
    (lambda t: t.update(tables=torch.zeros(2, dtype=torch.uint8)), "unexpected tensors"),
    (lambda t: t.update(lengths=t["lengths"][:, :-1].clone()), "code lengths of shape"),
    (lambda t: t.update(offsets=t["offsets"][:-1].clone()), "offsets"),
    (lambda t: t.update(data=torch.cat([t["data"], torch.zeros(3, dtype=torch.uint8)])), "left over"),
    (lambda t: t.update(codebook=t["codebook"].double()), "float32"),
    (lambda t: t.update(codebook=torch.full_like(t["codebook"], float("nan"))), "NaN"),
])
def test_inconsistent_tensors(tmp_path, edit, message):
    _, _, path, _ = huffman_file(tmp_path)
    bad = _rewrite(path, tmp_path / "bad.wsc", tensors_fn=edit)
    with pytest.raises(FormatError, match=message):
        wsc.load_state_dict(bad)


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.pop("tables"), "'tables' is missing"),
    (lambda t: t.update(lengths=torch.zeros(5, 33, dtype=torch.uint8)), "unexpected tensors"),
    (lambda t: t.update(tables=t["tables"][:-1].clone()), "past the .* bytes left in 'tables'"),
    (lambda t: t.update(tables=torch.cat([t["tables"], torch.zeros(2, dtype=torch.uint8)])), "table bytes left over"),
    (lambda t: t.update(tables=t["tables"].to(torch.int16)), "'tables' must be 1-D uint8"),
])
def test_inconsistent_rans_tensors(tmp_path, edit, message):
    _, _, path, _ = huffman_file(tmp_path, "rans")
    bad = _rewrite(path, tmp_path / "bad.wsc", tensors_fn=edit)
    with pytest.raises(FormatError, match=message):
        wsc.load_state_dict(bad)


def test_a_rans_table_that_passes_its_checksum_but_not_the_decoder(tmp_path):
    """A table rewritten together with its checksum: rejected by the table and stream checks."""
    _, _, path, _ = huffman_file(tmp_path, "rans")
    meta, tensors, _, _ = container._read_raw(path)
    e = meta["tensors"][0]
    a = container.read(path)
    s = a.streams[0]
    for mutate, message in ((lambda t: t.__setitem__(0, t[0] ^ 0x08), "bad rANS frequency table|undecodable"),
                            (lambda t: t.__setitem__(-1, t[-1] ^ 0x40), "bad rANS frequency table|undecodable")):
        table = s.code.copy()
        mutate(table)
        tables = tensors["tables"].clone()
        tables[:table.size] = torch.from_numpy(table)

        def fix(m, table=table):
            m["tensors"][0]["crc32"] = container._crc(table, s.kept, s.data)

        bad = _rewrite(path, tmp_path / "bad.wsc", meta_fn=fix, tensors_fn=lambda t, v=tables: t.update(tables=v))
        with pytest.raises(FormatError, match=message):
            wsc.load_state_dict(bad)
    assert meta["coder"] == "rans" and "coder" not in e and e["table_bytes"] == s.code.size


@pytest.mark.parametrize("coder", ["huffman", "rans"])
def test_index_outside_the_codebook(tmp_path, coder):
    """A stream whose symbols reach past a (shrunk) codebook is rejected, never gathered."""
    _, cb, path, _ = huffman_file(tmp_path, coder)

    def shrink(t):
        t["codebook"] = t["codebook"][:-1].clone()
        if "lengths" in t:
            t["lengths"] = t["lengths"][:, :-1].clone()

    def meta(m):
        m["codebook"]["size"] -= 1

    bad = _rewrite(path, tmp_path / "bad.wsc", meta_fn=meta, tensors_fn=shrink)
    with pytest.raises(FormatError):
        wsc.load_state_dict(bad)


def test_a_single_shared_value(tmp_path):
    model = torch.nn.Linear(6, 4)
    bench = Workbench(model)
    cb = bench.codebook(8)
    while cb.size > 1:
        cb = cb.merge(0)
    for coder, bpw in (("huffman", 1.0), ("rans", 4 * 8 / 24)):  # rANS: only the one flushed state
        container.write(tmp_path / "one.wsc", bench.payload(cb), coder=coder)
        state = wsc.load_state_dict(tmp_path / "one.wsc")
        assert torch.allclose(state["weight"], model.weight.detach().double().mean().float().expand(4, 6))
        assert len(torch.unique(state["weight"])) == 1
        assert wsc.inspect(tmp_path / "one.wsc")["bits_per_weight"] == bpw


def _old_fixture(stem: str, version: int, coders: dict) -> container.Archive:
    """Check a file written by an earlier wsc (tests/data/<stem>.wsc) against the state dict
    it held (<stem>_expected.safetensors); returns it parsed."""
    data = os.path.join(os.path.dirname(__file__), "data")
    path = os.path.join(data, f"{stem}.wsc")
    info = wsc.inspect(path)
    assert info["version"] == version and info["coders"] == coders and info["checksums_ok"]
    state = wsc.load_state_dict(path)
    expect = safetensors.torch.load_file(os.path.join(data, f"{stem}_expected.safetensors"))
    assert list(state) == list(Mixed().state_dict())
    for name, t in expect.items():
        assert state[name].dtype == t.dtype and torch.equal(state[name], t), name
    assert state["head.weight"] is state["emb.weight"]
    return container.read(path)


def test_version_1_files_still_read():
    """A file written by wsc 0.1.0 (format version 1, Huffman only) restores what it held."""
    a = _old_fixture("mixed_v1", 1, {"huffman": 5})
    assert a.meta["coder"] == "huffman" and {s.chunk_size for s in a.streams} == {16384}
    assert all(np.array_equal(a.indices(j), a.indices(j)) for j in range(len(a.streams)))


def test_version_2_rans_files_still_read():
    """A file written before table encoding 2 (format version 2, rANS tables in encoding 1)
    restores what it held; rewritten, it becomes version 3 and decodes to the same tensors."""
    a = _old_fixture("rans_v2", 2, {"rans": 5})
    assert a.meta["coder"] == "rans"
    streams = [a.coded_stream(j) for j in range(len(a.streams))]
    p = container.Payload(a.codebook.numpy(), [container.SharedTensor(f"t{j}", a.indices(j), (a.indices(j).size,),
                                                                     torch.float32) for j in range(len(a.streams))], {})
    b = container.read(container.to_bytes(p, coder="rans"))
    assert b.version == container.VERSION == 7
    for j, s in enumerate(streams):
        np.testing.assert_array_equal(b.indices(j), a.indices(j))
        assert s.n_symbols == a.indices(j).size


def test_version_3_files_still_read():
    """A file written before the state count became a choice (format version 3: eight states
    in every rANS chunk, per-channel scales, compressed metadata) restores what it held;
    rewritten, its small streams take one state and shrink by 20-28 bytes each."""
    a = _old_fixture("rans_v3", 3, {"rans": 5})
    assert all(s.states == 8 for s in map(a.coded_stream, range(len(a.streams))))
    assert all(s.scale is not None for s in a.streams)
    bench = Workbench(Mixed())
    p = bench.payload(bench.codebook(33, Scheme("uniform", "channel", 2)))
    b = container.read(container.to_bytes(p, coder="rans"))
    assert b.version == 7 and [b.coded_stream(j).states for j in range(5)] == [1] * 5
    assert a.tensors["data"].numel() - b.tensors["data"].numel() >= 5 * 20 and b.file_bytes < a.file_bytes - 100
    for j in range(5):
        np.testing.assert_array_equal(b.indices(j), a.indices(j))


def _payload(*sizes: int, seed: int = 0) -> container.Payload:
    """Shared tensors of the given sizes: Laplace-like indices over 16 values, one value dominant."""
    rng = np.random.default_rng(seed)
    p = np.exp(-np.abs(np.arange(16) - 7) / 0.35)
    shared = [container.SharedTensor(f"t{i}", rng.choice(16, size=n, p=p / p.sum()).astype(np.uint8), (n,),
                                      torch.float32) for i, n in enumerate(sizes)]
    return container.Payload(np.linspace(-1, 1, 16).astype(np.float32), shared, {})


def _two_value_payload(skewed: int, *halves: int) -> container.Payload:
    """Over two values: a tensor of `skewed` indices at 97% / 3% (rANS's case), then tensors
    that hold each value exactly half the time (Huffman's: one bit each, no table to send)."""
    rng = np.random.default_rng(0)
    idx = [rng.choice(2, size=skewed, p=[0.97, 0.03])] * (skewed > 0) + [rng.permutation(np.arange(n) % 2) for n in halves]
    shared = [container.SharedTensor(f"t{i}", x.astype(np.uint8), (x.size,), torch.float32) for i, x in enumerate(idx)]
    return container.Payload(np.array([-1, 1], np.float32), shared, {})


@pytest.mark.parametrize("p, coders", [(_payload(20_000), {"rans": 1}), (_payload(5, 7, 3), {"rans": 3}),
                                       (_two_value_payload(0, 64, 40, 8), {"huffman": 3}),
                                       (_two_value_payload(20_000, *[64] * 40), {"huffman": 40, "rans": 1})],
                         ids=["rans", "small", "huffman", "mixed"])
def test_auto_writes_the_smallest_file(p, coders):
    files = {c: container.to_bytes(p, coder=c) for c in container.CODER_OPTIONS}
    assert len(files["auto"]) <= min(len(files["huffman"]), len(files["rans"]))
    info = wsc.inspect(files["auto"])
    assert info["coders"] == coders and info["coder"] == (list(coders)[0] if len(coders) == 1 else "auto")
    if len(coders) == 1:  # the same file (byte order of safetensors' metadata map aside)
        assert len(files["auto"]) == len(files[info["coder"]])
    for c in container.CODER_OPTIONS:
        state = wsc.load_state_dict(files[c])
        for t in p.shared:
            assert torch.equal(state[t.name], torch.from_numpy(p.codebook[t.indices.astype(np.int64)])), (c, t.name)


def test_rans_streams_are_smaller_where_one_value_dominates():
    p = _payload(100_000)
    h, r = (wsc.inspect(container.to_bytes(p, coder=c)) for c in ("huffman", "rans"))
    assert r["bits_per_weight"] < 0.7 * h["bits_per_weight"]
    assert r["shared"][0]["coder"] == "rans" and r["shared"][0]["chunk_size"] >= 1 << 16


def test_bad_coder_option():
    with pytest.raises(ValueError, match=r"coder must be one of \('huffman', 'rans', 'auto'\); got 'zip'"):
        container.to_bytes(_payload(10), coder="zip")


def test_payload_checks():
    p = container.Payload(np.zeros(0, np.float32), [], {})
    with pytest.raises(ValueError, match="1 to 65536"):
        container.to_bytes(p)
    with pytest.raises(ValueError, match="at least one shared"):
        container.to_bytes(container.Payload(np.zeros(2, np.float32), [], {}))
