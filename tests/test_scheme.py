"""Schemes beyond the paper: clipping, per-tensor/per-channel scales, k-means on a histogram.

Every scheme must write a file whose weights equal, bit for bit, the ones the search scored,
and load into shared-weight modules with the same outputs."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from wsc import container, nn as wnn
from wsc.codebook import Codebook, SortedWeights, bin_rule
from wsc.errors import FormatError
from wsc.scheme import CLIP_MAX, STEP_GROUPS, STEP_MAX, Scheme, check_codebook, clip_range, lloyd_groups, step_groups
from wsc.workbench import Workbench

from conftest import weights_like

from pipeline_fixtures import resave, spelled_out

SCHEMES = [Scheme(), Scheme("uniform", "global", 6), Scheme("uniform", "tensor", 3), Scheme("uniform", "channel"),
           Scheme("kmeans", "global"), Scheme("kmeans", "channel", 4), Scheme("kmeans", "tensor", CLIP_MAX),
           Scheme("uniform", "global", 0, (2, 0, 1)), Scheme("uniform", "channel", 2, (0, STEP_MAX, 3)),
           Scheme("kmeans", "tensor", 0, (1, 1, 0))]


class Net(torch.nn.Module):
    """Layers on very different scales, as depthwise convolutions beside dense layers are."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv = torch.nn.Conv2d(1, 4, 3)
        self.dw = torch.nn.Conv2d(4, 4, 3, groups=4)
        self.fc = torch.nn.Linear(4 * 4 * 4, 5)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=g) * 0.3)
            self.dw.weight.copy_(torch.randn(self.dw.weight.shape, generator=g) * 3.0)
            self.fc.weight.copy_(torch.randn(self.fc.weight.shape, generator=g) * 0.02)

    def forward(self, x):
        return self.fc(torch.relu(self.dw(torch.relu(self.conv(x)))).flatten(1))


def _mse(x, cb):
    return float(((cb.table()[bin_rule(x, cb.lo, cb.hi, cb.k)] - x) ** 2).mean())


def test_scheme_checks_its_fields():
    with pytest.raises(ValueError, match="placement"):
        Scheme("median")
    with pytest.raises(ValueError, match="scope"):
        Scheme("uniform", "layer")
    with pytest.raises(ValueError, match="clip"):
        Scheme(clip=CLIP_MAX + 1)
    for bad in ((STEP_MAX + 1,), (-1,), (True,), [1], (0,) * (STEP_GROUPS + 1)):
        with pytest.raises(ValueError, match="steps must be"):
            Scheme(steps=bad)
    assert Scheme(steps=(0, 0)) == Scheme() and Scheme(steps=(0, 0)).key == Scheme().key
    assert Scheme(steps=(0, 2)).key == ("uniform", "global", 0, (0, 2))
    assert Scheme(steps=(0, 2)).describe()["steps"] == [0, 2]
    with pytest.raises(ValueError, match="codebook must be one of"):
        check_codebook("normalised", "tensor")
    with pytest.raises(ValueError, match="scale must be one of"):
        check_codebook("normalized", "row")
    assert check_codebook("normalized", "tensor") == [("uniform", "tensor")]
    assert len(check_codebook("auto", "channel")) == 6
    assert check_codebook(["uniform", "normalized", "uniform"], "channel") == [("uniform", "global"),
                                                                                ("uniform", "channel")]
    with pytest.raises(ValueError, match="at least one"):
        check_codebook([], "tensor")


def test_clip_range_shrinks_about_zero_or_the_middle():
    assert clip_range(-2.0, 4.0, 1.0) == (-2.0, 4.0)
    assert clip_range(-2.0, 4.0, 0.5) == (-1.0, 2.0)
    assert clip_range(2.0, 6.0, 0.5) == (3.0, 5.0)
    assert Scheme(clip=8).fraction == 0.25


def test_clipping_clamps_into_the_end_bins():
    x = weights_like(20000, seed=4)
    w = SortedWeights(x)
    lo, hi = clip_range(w.lo, w.hi, Scheme(clip=8).fraction)
    cb = Codebook.uniform(w, 16, lo, hi)
    assert cb.counts.sum() == x.size  # nothing lost: the tails join the end bins
    assert cb.counts[0] == np.count_nonzero(x < np.float32(lo) + (hi - lo) / 16)
    np.testing.assert_allclose(cb.sums.sum(), x.astype(np.float64).sum(), rtol=1e-9)


@pytest.mark.parametrize("k", [2, 5, 16, 40])
def test_kmeans_on_the_histogram_matches_lloyd_on_the_values(k):
    """Its centres are a Lloyd fixed point (each bin goes to its nearest centre) and its error
    is that of k-means on the values themselves (scikit-learn, several restarts)."""
    from sklearn.cluster import KMeans

    x = weights_like(30000, seed=k)
    cb = Codebook.kmeans(SortedWeights(x), k)
    assert cb.size <= k and cb.target == k and not cb.merged
    centres = cb.values.astype(np.float64)
    means = cb.sums / cb.counts
    nearest = np.abs(means[:, None] - centres[None, :]).argmin(axis=1)
    assert np.array_equal(nearest, cb.group_of_bin)
    km = KMeans(k, n_init=4, random_state=0).fit(x[:, None].astype(np.float64))
    assert _mse(x, cb) <= 1.02 * km.inertia_ / x.size


def test_lloyd_groups_edge_cases():
    c = np.array([5, 1, 1, 5]), np.array([0.0, 1.0, 2.0, 15.0])
    assert lloyd_groups(*c, 4) == (0, 1, 2, 3)
    assert lloyd_groups(*c, 10) == (0, 1, 2, 3)
    g = lloyd_groups(*c, 2)
    assert g[0] == 0 and len(g) == 2


@pytest.mark.parametrize("scheme", SCHEMES, ids=lambda s: "-".join(map(str, s.key)))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_every_scheme_writes_the_weights_it_scored(scheme, dtype):
    model = Net().to(dtype)
    bench = Workbench(model)
    cb = bench.codebook(9, scheme)
    with bench.model(cb) as m:
        scored = {n: t.clone() for n, t in m.state_dict().items()}
    data = container.to_bytes(bench.payload(cb))
    loaded = container.load_state_dict(data)
    for n, t in scored.items():
        assert torch.equal(loaded[n], t), n
    assert container.verify(data) == []
    shared = wnn.share_(copy.deepcopy(model), data)
    x = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(1)).to(dtype)
    with bench.model(cb) as m:
        assert torch.equal(shared(x), m(x))


def test_scales_are_counted_and_inspected():
    bench = Workbench(Net())
    glob, chan = bench.codebook(8), bench.codebook(8, Scheme("uniform", "channel"))
    assert bench.scale_bytes(glob.scheme) == 0
    assert bench.scale_bytes(chan.scheme) == 2 * (4 + 4 + 5)  # one bfloat16 per output channel
    data = container.to_bytes(bench.payload(chan))
    info = container.inspect(data)
    assert [s["scales"] for s in info["shared"]] == [4, 4, 5]


def test_normalised_scope_rescues_layers_on_other_scales():
    """One global codebook spends its values on the widest layer; per-channel scales do not."""
    model = Net()
    bench = Workbench(model)
    errs = {}
    for scope in ("global", "channel"):
        cb = bench.codebook(8, Scheme("uniform", scope))
        with bench.model(cb) as m:
            a, b = m.fc.weight.detach(), model.fc.weight.detach()
            errs[scope] = float(((a - b) ** 2).mean() / (b ** 2).mean())
    assert errs["channel"] < 0.05 < errs["global"]


def test_step_groups_are_runs_of_consecutive_tensors():
    assert step_groups(3) == [0, 1, 2]
    g = step_groups(40)
    assert g == sorted(g) and set(g) == set(range(STEP_GROUPS))
    assert max(np.bincount(g)) - min(np.bincount(g)) <= 1


def test_a_step_level_widens_one_tensors_bins():
    """Level j divides a tensor by 2 ** (j / 2) (its own bfloat16 scale in the global scope),
    so the same codebook gives it fewer values; the others keep theirs and have no scale."""
    model = Net()
    bench = Workbench(model)
    assert bench.step_group_count == 3
    glob = Scheme(steps=(0, 0, STEP_MAX))
    assert bench.scale_bytes(glob) == 2
    scales = bench.scoped(glob)[0]
    assert list(scales) == ["fc.weight"] and float(scales["fc.weight"]) == 2.0 ** (STEP_MAX / 2)
    plain, wide = (bench.codebook(16, Scheme(scope="tensor", steps=s)) for s in ((), (0, 0, STEP_MAX)))
    base = bench.scoped(plain.scheme)[0]["fc.weight"]
    assert torch.equal(bench.scoped(wide.scheme)[0]["fc.weight"], (base.float() * 4).to(torch.bfloat16))
    used = {cb: [np.count_nonzero(c) for c in bench.tensor_counts(cb)] for cb in (plain, wide)}
    # fewer values for fc; the others keep theirs or gain (the joint range can only narrow)
    assert used[wide][2] < used[plain][2] and all(a >= b for a, b in zip(used[wide][:2], used[plain][:2]))
    for cb in (plain, wide):  # the counts the search sizes by are those of the file's indices
        for c, i in zip(bench.tensor_counts(cb), bench.indices(cb).values()):
            assert np.array_equal(c, np.bincount(i, minlength=cb.size))
    with pytest.raises(ValueError, match="one level per group"):
        bench.codebook(16, Scheme(steps=(1, 2)))


def test_step_copies_are_bounded_and_rebuilt_alike(monkeypatch):
    from wsc import workbench

    monkeypatch.setattr(workbench, "STEPPED_WEIGHTS", 1)
    bench = Workbench(Net())
    first = {}
    for rnd in range(2):  # the second round finds most copies evicted and makes them again
        for steps in [(1, 0, 0), (0, 2, 3), (4, 4, 4), (1, 2, 3), (0, 0, 1)]:
            cb = bench.codebook(12, Scheme(scope="tensor", steps=steps))
            held = sum(e[1].numel() for e in bench._stepped.values())
            assert held <= bench.n_shared or len(bench._stepped) == 1
            got = (cb.key, cb.counts.tolist(), [i.tolist() for i in bench.indices(cb).values()])
            assert first.setdefault(steps, got) == got


def _scaled_file():
    bench = Workbench(Net())
    return container.to_bytes(bench.payload(bench.codebook(8, Scheme("uniform", "channel"))))


def test_bad_scales_are_format_errors():
    meta, tensors, _, _ = container._read_raw(_scaled_file())
    assert meta["tensors"][0]["scales"] == 4
    negative = dict(tensors, scales=tensors["scales"].clone())
    negative["scales"][0] = -negative["scales"][0]
    with pytest.raises(FormatError, match="scale is not finite and positive"):
        container.read(resave(meta, negative))
    meta["tensors"][0]["scales"] = 3
    with pytest.raises(FormatError, match="scales"):
        container.read(resave(meta, tensors))
    meta["tensors"][0]["scales"] = 4
    meta = spelled_out(meta)
    meta["version"] = 2
    with pytest.raises(FormatError, match="scales in a version 2 file"):
        container.read(resave(meta, tensors))


def test_metadata_is_compressed_and_checked():
    data = _scaled_file()
    header_len = int.from_bytes(data[:8], "little")
    assert b'"wsc.meta":"zlib-dict2"' in data[8:8 + header_len] and b'"wsc":' not in data[8:8 + header_len]
    meta, tensors, _, _ = container._read_raw(data)
    import json
    import zlib

    import safetensors.torch

    text = json.dumps(meta).encode()
    for z, message in ((zlib.compress(text)[:-3], "truncated"), (zlib.compress(text) + b"x", "trailing"),
                       (b"not zlib", "corrupt"), (zlib.compress(b" " * (container.META_LIMIT + 1)), "inflates past")):
        ts = dict(tensors, meta=torch.frombuffer(bytearray(z), dtype=torch.uint8))
        bad = safetensors.torch.save(ts, metadata={"wsc.meta": "zlib", "wsc.crc32": str(zlib.crc32(text))})
        with pytest.raises(FormatError, match=message):
            container.read(bad)
    deflate = zlib.compressobj(9, zdict=container.META_DICT2)
    z = deflate.compress(text) + deflate.flush()
    ts = dict(tensors, meta=torch.frombuffer(bytearray(z), dtype=torch.uint8))
    crc = str(zlib.crc32(text))
    for packing, message in (("zlib", "corrupt"), ("zlib-dict1", "corrupt"),
                             ("zlib-dict9", "'wsc.meta' must be one of zlib, zlib-dict1, zlib-dict2")):
        bad = safetensors.torch.save(ts, metadata={"wsc.meta": packing, "wsc.crc32": crc})
        with pytest.raises(FormatError, match=message):  # the dictionary is part of the encoding
            container.read(bad)
    for packing, version in (("zlib-dict1", 5), ("zlib-dict2", 6)):  # a dictionary before its version
        old = json.dumps({**meta, "version": version}).encode()
        deflate = zlib.compressobj(9, zdict=container.META_ENCODINGS[packing])
        ts = dict(tensors, meta=torch.frombuffer(bytearray(deflate.compress(old) + deflate.flush()), dtype=torch.uint8))
        bad = safetensors.torch.save(ts, metadata={"wsc.meta": packing, "wsc.crc32": str(zlib.crc32(old))})
        with pytest.raises(FormatError, match=f"deflated as {packing} in a version {version} file"):
            container.read(bad)
