"""Unshared tensors: compact storage (BatchNorm folded, float16, constant fills) in the file,
and BatchNorm statistics re-estimated on calibration inputs."""

import copy
import math
import os

import numpy as np
import pytest
import torch
from torch import nn

import wsc
from wsc import container, stored
from wsc.container import Narrowed
from wsc.errors import FormatError
from wsc.scheme import Scheme
from wsc.workbench import Workbench
from test_container import Mixed, _old_fixture, _rewrite
from test_zoo import needs_fmnist
from wsc import data, zoo
from wsc.evaluate import gather_data


def _file(stored_tensors: dict, restore: dict | None = None) -> bytes:
    shared = [container.SharedTensor("w", np.arange(64, dtype=np.uint8) % 4, (64,), torch.float32)]
    p = container.Payload(np.linspace(-1, 1, 4).astype(np.float32), shared, stored_tensors, restore=restore or {})
    return container.to_bytes(p, coder="rans")


def _values():
    return {"zeros": torch.zeros(5, 3), "negzero": torch.full((4,), -0.0), "ones16": torch.ones(7, dtype=torch.float16),
            "count": torch.tensor(12345678901, dtype=torch.int64), "mask": torch.ones(3, 2, dtype=torch.bool),
            "bytes": torch.full((9,), 200, dtype=torch.uint8), "mixed": torch.tensor([0.0, -0.0]),
            "plain": torch.randn(6, generator=torch.Generator().manual_seed(0)),
            "narrow": torch.randn(10, generator=torch.Generator().manual_seed(1)).half(),
            "narrow_const": torch.full((8,), 0.1).bfloat16(),
            "codes": torch.tensor([0, 7, 255, 128], dtype=torch.uint8)}


NARROWED = {"narrow": Narrowed(torch.float32), "narrow_const": Narrowed(torch.float64),
            "codes": Narrowed(torch.float32, (-1.5, 2.25))}


def test_fills_and_narrow_dtypes_round_trip():
    """Constant tensors hold no data (their value is in the metadata, bit for bit, -0.0
    included); tensors stored narrower come back widened to their own dtype, uint8 codes as
    lo + c * (hi - lo) / 255."""
    vals = _values()
    raw = _file(vals, NARROWED)
    a = container.read(raw)
    state = wsc.load_state_dict(raw)
    want = torch.tensor([c * (3.75 / 255) - 1.5 for c in (0, 7, 255, 128)], dtype=torch.float64).float()
    assert torch.equal(state["codes"], want) and state["codes"][2] == 2.25
    assert all(torch.equal(state[n], t) for n, t in container.restore_stored(vals, NARROWED).items())
    for name, t in vals.items():
        if name == "codes":
            continue
        want = t.to({"narrow": torch.float32, "narrow_const": torch.float64}.get(name, t.dtype))
        assert state[name].dtype == want.dtype and state[name].shape == want.shape, name
        assert torch.equal(state[name].view(-1).view(torch.uint8), want.reshape(-1).view(torch.uint8)), name
    entries = {e["name"]: e for e in a.stored}
    filled = {n for n, e in entries.items() if "fill" in e}
    assert filled == {"zeros", "negzero", "ones16", "count", "mask", "bytes", "narrow_const"}
    assert entries["narrow"]["stored_as"] == "float16" and entries["narrow"]["dtype"] == "float32"
    # only the non-constant tensors take bytes: "mixed" (+0 and -0 differ in bits), "plain", "narrow"
    assert sorted(k for k in a.tensors if k.startswith("stored.")) == ["stored.float16", "stored.float32",
                                                                        "stored.uint8"]
    assert a.tensors["stored.float32"].numel() == 2 + 6 and a.tensors["stored.float16"].numel() == 10
    info = wsc.inspect(raw)
    by = {s["name"]: s for s in info["stored"]}
    assert by["zeros"]["bytes"] == 0 and by["zeros"]["original_bytes"] == 60
    assert by["narrow"]["bytes"] == 20 and by["narrow"]["original_bytes"] == 40 and by["narrow"]["stored_as"] == "float16"


def test_version_4_files_still_read(tmp_path):
    """A file written before fills and narrow storage (format version 4) restores what it
    held; rewritten, its constant BatchNorm buffers become fills and it shrinks."""
    a = _old_fixture("mixed_v4", 4, {"rans": 5})
    assert all("fill" not in e and "stored_as" not in e for e in a.stored)
    bench = Workbench(Mixed())
    b = container.read(container.to_bytes(bench.payload(bench.codebook(40, Scheme("uniform", "tensor", 1))),
                                          coder="auto"))
    assert b.version == 7 and {e["name"] for e in b.stored if "fill" in e} == {"bn.bias", "bn.weight",
                                                                                "bn.running_var", "bn.num_batches_tracked"}
    assert b.file_bytes < a.file_bytes


def test_version_5_files_still_read():
    """A file written before one CRC-32 covered all unshared tensors and the metadata had a
    preset dictionary (format version 5, written by the wsc of that version from the Mixed
    model with compact storage) restores what it held; rewritten, the metadata shrinks."""
    a = _old_fixture("mixed_v5", 5, {"rans": 5})
    assert all("crc32" in e for e in a.stored) and "stored_crc32" not in a.meta
    assert {e.get("stored_as") for e in a.stored} >= {"float16", "uint8"} and any("fill" in e for e in a.stored)
    bench = Workbench(Mixed(), stored="compact")
    b = container.read(container.to_bytes(bench.payload(bench.codebook(40, Scheme("uniform", "tensor", 1))),
                                          coder="auto"))
    assert b.version == 7 and all("crc32" not in e for e in b.stored) and b.meta["stored_crc32"] >= 0
    assert b.tensors["data"].numel() == a.tensors["data"].numel() and b.file_bytes <= a.file_bytes - 100
    for j in range(len(a.streams)):
        np.testing.assert_array_equal(b.indices(j), a.indices(j))
    assert all(torch.equal(b.stored_tensor(j), a.stored_tensor(j)) for j in range(len(a.stored)))


def _mixed_bytes(coder: str = "auto", chunk_size: int | None = 100) -> bytes:
    """The Mixed model, compact, written now (as the version 6 fixture was)."""
    bench = Workbench(Mixed(), stored="compact")
    return container.to_bytes(bench.payload(bench.codebook(40, Scheme("uniform", "tensor", 1))), coder=coder,
                              chunk_size=chunk_size)


def _mixed_v7(chunk_size: int | None = 100) -> container.Archive:
    return container.read(_mixed_bytes(chunk_size=chunk_size))


def test_version_6_files_still_read():
    """A file written before the metadata left out what it implies and the chunk offsets
    became uint32 ends (format version 6, written by the wsc of that version from the Mixed
    model with compact storage, 100 symbols per chunk) restores what it held; rewritten, it
    holds the same streams and values in fewer bytes."""
    a = _old_fixture("mixed_v6", 6, {"rans": 5})
    assert a.tensors["offsets"].dtype == torch.int64 and all(s.kept[0] == 0 for s in a.streams)
    assert all("numel" in e and "shared" in e for e in a.shared)
    b = _mixed_v7()
    assert b.version == 7 and b.tensors["offsets"].dtype == torch.uint32
    assert b.tensors["offsets"].numel() == a.tensors["offsets"].numel() - len(a.streams)  # no leading 0s
    assert max(s.offsets.size for s in b.streams) > 2  # several chunks
    assert b.file_bytes <= a.file_bytes - 4 * a.tensors["offsets"].numel()
    for j in range(len(a.streams)):
        np.testing.assert_array_equal(b.indices(j), a.indices(j))
        np.testing.assert_array_equal(b.streams[j].offsets, a.streams[j].offsets)
    assert all(torch.equal(b.stored_tensor(j), a.stored_tensor(j)) for j in range(len(a.stored)))


def test_version_7_metadata_leaves_out_what_it_implies():
    """dtype float32, shared, a shared tensor's element count, a rANS stream's payload bits and
    a one-chunk stream's chunk size are implied; uint8 ranges are the shortest float32 decimals."""
    a = _mixed_v7(chunk_size=None)
    raw = container._read_raw(_mixed_bytes("rans", None))[0]["tensors"]
    assert all("shared" not in e and "numel" not in e and e.get("dtype") != "float32" for e in raw)
    shared = [e for e in raw if "crc32" in e]
    assert shared and all("bits" not in e and "chunk_size" not in e for e in shared)  # rANS, one chunk each
    assert {e["dtype"] for e in raw if "dtype" in e} >= {"float16", "bfloat16", "float64", "int64"}
    coded = [e for e in raw if "range" in e]
    assert coded and all(len(repr(v)) <= 16 for e in coded for v in e["range"])
    for j, e in enumerate(a.stored):  # the parsed entries hold what was left out
        assert e["shared"] is False and isinstance(e["dtype"], str)
        if "range" in e:
            lo, hi = a._span(e)
            assert np.float32(lo) == lo and a.stored_tensor(j).dtype == getattr(torch, e["dtype"])
    assert all(e["shared"] and e["numel"] == math.prod(e["shape"]) for e in a.shared)


def test_a_range_that_is_not_float32_is_refused_for_a_float32_tensor():
    p = container.Payload(np.zeros(2, np.float32), [container.SharedTensor("w", np.zeros(4, np.uint8), (4,),
                                                                           torch.float32)],
                          {"b": torch.zeros(40, dtype=torch.uint8)}, restore={"b": Narrowed(torch.float32, (0.1, 1.0))})
    with pytest.raises(ValueError, match="must be float32 values"):
        container.to_bytes(p)


def test_version_7_offsets_may_be_int64(tmp_path):
    """A stream of 4 GiB or more needs int64 offsets: a version 7 file holding them is read
    (its stream checksums over the int64 offsets); other dtypes are refused."""
    a = _mixed_v7()
    src = tmp_path / "a.wsc"
    src.write_bytes(_mixed_bytes())

    def widen(m):
        for e, st in zip(container.shared_entries(m), a.streams):
            parts = (st.code, st.kept.astype(np.int64), st.data) + (() if st.scale is None else (st.scale,))
            e["crc32"] = container._crc(*parts)

    wide = _rewrite(src, tmp_path / "wide.wsc", meta_fn=widen,
                    tensors_fn=lambda t: t.update(offsets=t["offsets"].to(torch.int64)))
    b = container.read(wide)
    assert b.tensors["offsets"].dtype == torch.int64 and not b.verify()
    for j in range(len(a.streams)):
        np.testing.assert_array_equal(b.indices(j), a.indices(j))
    bad = _rewrite(src, tmp_path / "bad.wsc", tensors_fn=lambda t: t.update(offsets=t["offsets"].to(torch.int32)))
    with pytest.raises(FormatError, match="'offsets' must be 1-D int64"):
        container.read(bad)


def _edited(tmp_path, edit):
    path = tmp_path / "f.wsc"
    path.write_bytes(_file(_values(), NARROWED))
    return _rewrite(path, tmp_path / "bad.wsc", meta_fn=lambda m: edit({e["name"]: e for e in m["tensors"]}, m))


@pytest.mark.parametrize("edit, message", [
    (lambda e, m: e["zeros"].update(fill="x"), "fill 'x' is not a torch.float32 value"),
    (lambda e, m: e["zeros"].update(fill=float("nan")), "fill nan is not a torch.float32 value"),
    (lambda e, m: e["zeros"].update(fill=True), "fill True is not"),
    (lambda e, m: e["count"].update(fill=1.5), "fill 1.5 is not a torch.int64 value"),
    (lambda e, m: e["count"].update(fill=2**70), "is not a torch.int64 value"),
    (lambda e, m: e["bytes"].update(fill=300), "fill 300 is not a torch.uint8 value"),
    (lambda e, m: e["bytes"].update(fill=-1), "fill -1 is not a torch.uint8 value"),
    (lambda e, m: e["mask"].update(fill=1), "fill 1 is not a torch.bool value"),
    (lambda e, m: e["ones16"].update(fill=0.1), "fill 0.1 is not a torch.float16 value"),
    (lambda e, m: e["zeros"].update(shape=[2**20, 2**12]), "constant tensors of more than"),
    (lambda e, m: e["narrow"].update(stored_as="int8"), "a float32 tensor stored as 'int8'"),
    (lambda e, m: e["count"].update(stored_as="float16"), "a int64 tensor stored as 'float16'"),
    (lambda e, m: e["narrow"].update(dtype="nonsense"), "dtype 'nonsense' is not a dtype name"),
    (lambda e, m: e["narrow"].pop("stored_as"), "'stored.float32' is too short|left over"),
    (lambda e, m: e["codes"].pop("range"), "uint8 codes need a range"),
    (lambda e, m: e["codes"].update(range=[2, 1]), "uint8 codes need a range"),
    (lambda e, m: e["codes"].update(range=[0, float("inf")]), "uint8 codes need a range"),
    (lambda e, m: e["codes"].update(range=[0, "1"]), "uint8 codes need a range"),
    (lambda e, m: e["codes"].update(range=[0]), "uint8 codes need a range"),
    (lambda e, m: e["codes"].update(range=[0, 10**400]), "uint8 codes need a range"),
    (lambda e, m: e["codes"].update(range=[-1e308, 1e308]), "uint8 codes need a range"),
    (lambda e, m: e["codes"].update(range=[0, 1e39]), "uint8 codes need a range"),  # beyond float32
    (lambda e, m: e["codes"].update(range=[0, True]), "uint8 codes need a range"),
    (lambda e, m: e["count"].update(shape=[2**24], dtype="float64", stored_as="float16", fill=0.5),
     "constant tensors of more than"),
    (lambda e, m: e["narrow"].update(range=[0, 1]), "a range for a tensor not stored as uint8 codes"),
    (lambda e, m: e["codes"].pop("stored_as"), "a range for a tensor not stored as uint8 codes"),
])
def test_malformed_fills_and_narrow_entries(tmp_path, edit, message):
    with pytest.raises(FormatError, match=message):
        wsc.load_state_dict(_edited(tmp_path, edit))


@pytest.mark.parametrize("field, value", [("fill", 0.0), ("stored_as", "float16")])
def test_fills_and_narrow_storage_in_a_version_4_file_are_refused(tmp_path, field, value):
    """Version 4 had neither: an unshared entry of a version 4 file that holds one is refused."""
    src = os.path.join(os.path.dirname(__file__), "data", "mixed_v4.wsc")
    bad = _rewrite(src, tmp_path / "bad.wsc", meta_fn=lambda m: next(
        e for e in m["tensors"] if e.get("shared") is False and e["dtype"] == "float32").update({field: value}))
    with pytest.raises(FormatError, match=f"{field} in a version 4 file"):
        wsc.load_state_dict(bad)


@pytest.mark.parametrize("edit", [lambda e, m: e["zeros"].update(shape=[5, 4]),
                                  lambda e, m: e["negzero"].update(fill=0.0)])
def test_a_changed_fill_is_a_checksum_error(tmp_path, edit):
    with pytest.raises(FormatError, match="checksum mismatch"):
        wsc.load_state_dict(_edited(tmp_path, edit))


def test_a_huge_constant_tensor_is_stored_as_data_and_a_huge_fill_is_refused(tmp_path):
    """Fills hold no bytes, so a file may declare at most FILL_LIMIT bytes of them: the
    writer stores a larger constant tensor as data; a reader refuses a file declaring more."""
    big = torch.zeros(container.FILL_LIMIT // 4 + 1)
    a = container.read(_file({"big": big, "small": torch.zeros(3)}))
    assert [("fill" in e) for e in a.stored] == [False, True]
    assert a.stored_ok(0) and a.stored_ok(1) and torch.equal(a.stored_tensor(0), big)
    hostile = _rewrite_entry(tmp_path, "small", shape=[container.FILL_LIMIT // 4 + 1])
    with pytest.raises(FormatError, match="constant tensors of more than"):
        wsc.inspect(hostile)


def _rewrite_entry(tmp_path, name, **fields):
    path = tmp_path / "f.wsc"
    path.write_bytes(_file({"small": torch.zeros(3)}))
    return _rewrite(path, tmp_path / "bad.wsc",
                    meta_fn=lambda m: next(e for e in m["tensors"] if e["name"] == name).update(fields))


def test_a_fill_checksum_is_computed_without_making_the_tensor():
    n = 3_000_001
    raw = _file({"ones": torch.ones(n, dtype=torch.float16)})
    a = container.read(raw)
    assert a._stored_views[0] is None and a.stored_ok(0)
    assert container._fill_crc(torch.ones(1, dtype=torch.float16), n) == container._crc(torch.ones(n).half())


@pytest.mark.parametrize("t, how, message", [
    (torch.arange(4), Narrowed(torch.float32), "cannot be stored as"),
    (torch.arange(4, dtype=torch.uint8), Narrowed(torch.float32), "cannot be stored as"),
    (torch.arange(4).half(), Narrowed(torch.float32, (0.0, 1.0)), "cannot be stored as"),
    (torch.arange(4, dtype=torch.uint8), Narrowed(torch.float32, (1.0, 1.0)), "finite with lo < hi"),
    (torch.arange(4, dtype=torch.uint8), Narrowed(torch.float64, (-1e308, 1e308)), "finite with lo < hi"),
    (torch.arange(4, dtype=torch.uint8), Narrowed(torch.float32, (0.0, 1e39)), "finite with lo < hi"),
])
def test_payload_refuses_what_cannot_be_read_back(t, how, message):
    with pytest.raises(ValueError, match=message):
        _file({"t": t}, {"t": how})


def test_quantize8_codes_the_range_in_256_steps():
    t = torch.tensor([-2.0, -1.0, 0.0, 0.5, 6.0])
    codes, span = container.quantize8(t)
    assert span == (-2.0, 6.0) and codes.tolist() == [0, 32, 64, 80, 255]
    back = container.dequantize8(codes, span, torch.float32)
    assert back[0] == -2.0 and back[-1] == 6.0 and float((back - t).abs().max()) <= 8 / 255 / 2 + 1e-6


class ConvBN(nn.Module):
    """Depthwise and pointwise convolutions with BatchNorm, trained statistics and affine
    parameters far from the defaults."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.Conv2d(8, 16, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.head = nn.Linear(16, 4)
        self.train()
        with torch.no_grad():
            for _ in range(20):
                self(torch.randn(32, 1, 8, 8) * 2 + 0.5)
            for m in self.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.weight.uniform_(0.5, 2.0)
                    m.bias.normal_()
        self.eval()

    def forward(self, x):
        return self.head(self.body(x).mean((2, 3)))


def test_compact_folds_batchnorm_and_keeps_the_outputs():
    model = ConvBN()
    tensors = {n: t for n, t in model.state_dict().items() if t.dim() <= 1}  # the unshared ones
    norms = {p: m.eps for p, m in stored.batchnorms(model, tensors, ("weight", "bias", *stored.STATS)).items()}
    assert sorted(norms) == ["body.1", "body.4", "body.7"]
    x = torch.randn(16, 1, 8, 8)
    for codes in (False, True):
        out, restore = stored.compact(tensors, norms, codes=codes)
        assert all(out[f"{p}.running_mean"].abs().max() == 0 for p in norms)
        assert all(out[f"{p}.running_var"].dtype == torch.float32 and bool((out[f"{p}.running_var"] == 1 - 1e-5).all())
                   for p in norms)  # constant: kept in its dtype (the file holds one value)
        assert all(r.dtype == torch.float32 for r in restore.values()) and "body.1.num_batches_tracked" not in restore
        kinds = {out[n].dtype for n in restore}
        assert kinds == {torch.float16}  # 4 to 16 values: below CODES_FROM
        folded = copy.deepcopy(model)
        folded.load_state_dict(container.restore_stored(out, restore), strict=False)
        with torch.no_grad():
            torch.testing.assert_close(folded(x), model(x), rtol=3e-3, atol=3e-3)
    wide = {"v": torch.linspace(-1, 3, 100), "short": torch.linspace(-1, 3, 32)}
    out, restore = stored.compact(wide, {})
    assert out["v"].dtype == torch.uint8 and restore["v"].span == (-1.0, 3.0)
    assert out["short"].dtype == torch.float16 and restore["short"].span is None


def test_compact_codes_only_where_the_steps_are_fine_for_the_bulk():
    """One outlier (the folded scale of a nearly dead BatchNorm channel) would leave the
    other values a few codes: such a tensor stays float16."""
    g = torch.Generator().manual_seed(0)
    bulk = torch.rand(128, generator=g) * 0.4 + 0.6
    outlier = bulk.clone()
    outlier[5] = 301.0
    out, restore = stored.compact({"bulk": bulk, "outlier": outlier, "f64": torch.tensor([-1e308, 1e308] * 20,
                                                                                          dtype=torch.float64)}, {})
    assert out["bulk"].dtype == torch.uint8 and out["outlier"].dtype == torch.float16
    assert "f64" not in restore  # a range float64 cannot subtract, beyond float16: kept as it is
    back = container.restore_stored(out, restore)
    assert float((back["outlier"] - outlier).abs()[outlier < 2].max()) < 1e-3


def test_compact_leaves_what_float16_cannot_hold():
    tensors = {"big": torch.tensor([1e6, 1.0]), "nan": torch.tensor([float("nan"), 1.0]),
               "f64": torch.tensor([0.5, 2.0], dtype=torch.float64), "bf16": torch.tensor([1.0, 3.0]).bfloat16()}
    out, restore = stored.compact(tensors, {})
    assert restore == {"f64": Narrowed(torch.float64)} and out["f64"].dtype == torch.float16
    assert out["big"] is tensors["big"] and out["nan"] is tensors["nan"] and out["bf16"] is tensors["bf16"]


def _calibration(n=256, seed=1):
    g = torch.Generator().manual_seed(seed)
    return list((torch.randn(n, 1, 8, 8, generator=g) * 2 + 0.5).split(64))


def _reference_statistics(model, batches):
    """Per BatchNorm, the average over the batches of its inputs' batch mean and unbiased
    batch variance, with every BatchNorm normalising by batch statistics."""
    probe = copy.deepcopy(model)
    seen = {}
    hooks = []
    for p, m in probe.named_modules():
        if isinstance(m, nn.BatchNorm2d):
            m.train()
            hooks.append(m.register_forward_hook(lambda m, a, o, p=p: seen.setdefault(p, []).append(a[0].double())))
    with torch.no_grad():
        for b in batches:
            probe(b)
    for h in hooks:
        h.remove()
    out = {}
    for p, xs in seen.items():
        assert len(xs) == len(batches)
        out[f"{p}.running_mean"] = torch.stack([x.mean((0, 2, 3)) for x in xs]).mean(0)
        out[f"{p}.running_var"] = torch.stack([x.var((0, 2, 3), unbiased=True) for x in xs]).mean(0)
    return out


def test_recalibrate_matches_the_batch_statistics_and_restores_the_model():
    model = ConvBN()
    model.body[0].weight.data.mul_(1.7)  # moved weights: new statistics
    norms = stored.batchnorms(model, model.state_dict())
    before = {n: t.clone() for n, t in model.state_dict().items()}
    model.body[2].train()  # a module left in train mode stays so
    batches = _calibration()
    got = stored.recalibrate(model, norms, batches)
    want = _reference_statistics(model, batches)
    assert sorted(got) == sorted(want)
    for n in want:
        torch.testing.assert_close(got[n].double(), want[n], rtol=1e-4, atol=1e-5)
    after = model.state_dict()
    assert all(torch.equal(after[n], before[n]) for n in before)  # statistics returned, not kept
    assert model.body[2].training and not model.body[1].training and model.body[1].momentum == 0.1


@pytest.mark.parametrize("policy", stored.STORED)
def test_workbench_scores_the_model_its_file_restores(policy):
    """With calibration, every codebook's BatchNorm statistics are re-estimated; the working
    copy scored equals the model loaded from the codebook's file, bit for bit."""
    model = ConvBN()
    bench = Workbench(model, stored=policy)
    bench.calibrate(_calibration())
    assert bench.recalibrating and bench.calibration_digest() is not None
    x = torch.randn(8, 1, 8, 8)
    for cb in (bench.codebook(6), bench.codebook(6).compensate(2)):
        with bench.model(cb) as m:
            scored = m(x)
            stats = m.body[4].running_var.clone()
        loaded = wsc.load_into(ConvBN(), container.to_bytes(bench.payload(cb), coder="auto"))
        assert torch.equal(loaded(x), scored)
        if policy == "exact":  # re-estimated: not the trained statistics
            assert torch.equal(loaded.body[4].running_var, stats)
            assert not torch.allclose(stats, model.body[4].running_var)
    with bench.model(None) as m:  # the baseline: the original model
        assert torch.equal(m(x), model(x))
    cb = bench.codebook(6)
    files = {p: len(container.to_bytes(Workbench(model, stored=p).payload(cb), coder="auto")) for p in stored.STORED}
    assert files["compact"] < files["exact"] - 4 * 32 * 2  # 32 channels: 4 float32 -> 2 float16 each, at least


def test_recalibrated_statistics_do_not_depend_on_what_a_copy_held_before():
    """The statistics of a codebook are the same whichever codebooks a working copy scored
    before (its biases before the BatchNorms are compact, not the originals, after one)."""
    model = ConvBN()
    with torch.no_grad():
        model.body[0].bias = nn.Parameter(torch.randn(8) * 0.3 + 0.0123)  # rounded in float16
    first, second = Workbench(model, stored="compact"), Workbench(model, stored="compact")
    for bench in (first, second):
        bench.calibrate(_calibration())
    cb = first.codebook(6)
    with second.model(second.codebook(9)):  # the copy now holds compact biases
        pass
    a, b = first.stored_file(cb)[2], second.stored_file(second.codebook(6))[2]
    assert all(torch.equal(a[n], b[n]) for n in a)


def test_new_working_copies_have_the_models_modes_and_momenta():
    """A copy made while the first one is in the middle of a re-estimation (BatchNorms in
    train mode, momentum None) still gets the model's modes and momenta."""
    model = ConvBN()
    bench = Workbench(model)
    base = bench._base
    base.body[1].train()
    base.body[1].momentum = None
    copy_model, _ = bench._new_copy()
    assert not copy_model.body[1].training and copy_model.body[1].momentum == 0.1
    assert not copy_model.training


def test_calibration_digest_sees_how_inputs_are_batched():
    x = torch.randn(8, 1, 8, 8)
    digests = []
    for batches in ([x[:2], x[2:]], [x[:6], x[6:]], [(x[:2], 0), (x[2:], 0)], [{"x": x[:2]}, {"x": x[2:]}]):
        bench = Workbench(ConvBN())
        bench.calibrate(batches if not isinstance(batches[0], dict) else [b["x"] for b in batches])
        digests.append(bench.calibration_digest())
    assert len(set(digests[:3])) == 3
    from wsc.workbench import _digest
    assert _digest([{"x": x[:2]}]) != _digest([{"y": x[:2]}]) and _digest([((x, x),)]) != _digest([((x,),)])


def test_batches_of_one_example_are_skipped_by_the_reestimation():
    model = ConvBN()
    batches = _calibration()
    bench = Workbench(model)
    bench.calibrate(batches + [batches[0][:1]])
    one = Workbench(model)
    one.calibrate(batches)
    cb = bench.codebook(6)
    a, b = bench.stored_file(cb)[2], one.stored_file(one.codebook(6))[2]
    assert all(torch.equal(a[n], b[n]) for n in a)
    with pytest.raises(ValueError, match="one example"):
        Workbench(model).calibrate([t[:1] for t in batches])


def test_a_failed_calibration_leaves_no_reestimated_statistics_behind():
    """After a second calibrate() that fails, every working copy scores the original
    statistics again (they are written back, not assumed)."""
    model = ConvBN()
    bench = Workbench(model)
    bench.calibrate(_calibration())
    cb = bench.codebook(6)
    with bench.model(cb), bench.model(cb):  # two copies, both with re-estimated statistics
        pass
    with pytest.raises(ValueError):
        bench.calibrate([])
    x = torch.randn(4, 1, 8, 8)
    with bench.model(None) as m1, bench.model(None) as m2:
        assert torch.equal(m1(x), model(x)) and torch.equal(m2(x), model(x))


class TiedBN(nn.Module):
    """Two BatchNorms sharing their affine parameters, each with its own statistics."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(1, 4, 3, bias=False)
        self.a, self.b = nn.BatchNorm2d(4), nn.BatchNorm2d(4)
        self.b.weight, self.b.bias = self.a.weight, self.a.bias
        with torch.no_grad():
            self.a.weight.uniform_(0.5, 2)
            self.a.running_var.uniform_(0.5, 2)
            self.b.running_var.uniform_(3, 4)
        self.eval()

    def forward(self, x):
        y = self.conv(x)
        return self.a(y) + self.b(y * 2)


def test_batchnorms_with_tied_parameters_are_not_folded():
    model = TiedBN()
    bench = Workbench(model, stored="compact")
    assert bench._folded == {}
    x = torch.randn(2, 1, 6, 6)
    cb = bench.codebook(16)
    with bench.model(cb) as m:
        scored = m(x)
    loaded = wsc.load_into(TiedBN(), container.to_bytes(bench.payload(cb), coder="auto"))
    assert torch.equal(loaded(x), scored)


@needs_fmnist
def test_recalibrated_statistics_rescue_the_depthwise_cnn():
    """On the built-in depthwise-separable CNN (Fashion-MNIST), 12 shared values cost about
    half the accuracy; BatchNorm statistics re-estimated on 256 training images bring most
    of it back, and the compact file is a third smaller at the same accuracy."""
    model = zoo.load_model("dwcnn-fmnist")
    x, y = gather_data(data.load("fashion-mnist", split="test"))
    x, y = x[:1000], y[:1000]
    train, _ = gather_data(data.load("fashion-mnist", split="train"))
    calibration = list(train[::len(train) // 256][:256].split(128))

    def accuracy(m):
        with torch.no_grad():
            return float((m(x).argmax(1) == y).float().mean())

    base = accuracy(model)
    drop, size = {}, {}
    for policy, calibrate in (("exact", False), ("exact", True), ("compact", True)):
        bench = Workbench(model, stored=policy)
        if calibrate:
            bench.calibrate(calibration)
        cb = bench.codebook(12)
        with bench.model(cb) as m:
            drop[policy, calibrate] = base - accuracy(m)
        size[policy, calibrate] = len(container.to_bytes(bench.payload(cb), coder="auto"))
    assert drop["exact", False] > 0.25 and drop["exact", True] < drop["exact", False] / 3
    assert abs(drop["compact", True] - drop["exact", True]) <= 0.005
    assert size["compact", True] < 0.7 * size["exact", True]


def test_compress_default_is_compact_and_paper_is_exact():
    model = ConvBN()
    x = torch.randn(64, 1, 8, 8)
    with torch.no_grad():
        labels = model(x).argmax(1)

    def score(m):
        with torch.no_grad():
            return float((m(x).argmax(1) == labels).float().mean())

    for name, opts in (("compact", {}), ("exact", {"stored": "exact"})):
        r = wsc.compress(model, score, k_range=(8, 16), pop_size=4, generations=2, progress=False, **opts)
        assert r.settings["stored"] == name and not r.settings["batchnorm_recalibrated"]
        s = r.choose()
        a = container.read(container.to_bytes(r.payload(s), coder="auto"))
        folded = any("fill" in e for e in a.stored if e["name"].endswith("running_mean"))
        assert folded == (name == "compact")
    assert wsc.PAPER["stored"] == "exact"
    with pytest.raises(ValueError, match="stored must be one of"):
        wsc.compress(model, score, stored="int4", progress=False)
