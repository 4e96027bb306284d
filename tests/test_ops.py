"""Native range/binning/gather/share against wsc.reference, across dtypes, sizes, k, threads and
devices (CPU with 1-3 threads, CUDA where a GPU is usable)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import wsc
from wsc import reference as ref
from conftest import DEVICES, as_dtype, assert_sums_close, host, on, weights_like

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
SIZES = [0, 1, 7, 1001, 300_001]
KS = [2, 3, 255, 256, 257, 65536]


def ref_input(t: torch.Tensor) -> np.ndarray:
    """The float32 values the kernels see (exact for every supported dtype)."""
    return t.float().numpy()


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("n", SIZES[1:])
def test_range_matches_reference(dtype, n, backend):
    t = as_dtype(weights_like(n, seed=n), dtype)
    assert wsc.ops.range(t.to(backend)) == ref.range(ref_input(t))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("k", KS)
def test_bin_uniform_matches_reference(dtype, n, k, backend):
    t = as_dtype(weights_like(n, seed=k + n), dtype)
    lo, hi = (-0.3, 0.25) if n == 0 else wsc.ops.range(t)
    got = wsc.ops.bin_uniform(t.to(backend), k, lo, hi)
    idx, counts, _ = ref.bin_uniform(ref_input(t), k, lo, hi)
    assert got.indices.dtype == (torch.uint8 if k <= 256 else torch.uint16)
    assert got.indices.shape == t.shape
    assert got.indices.device.type == got.counts.device.type == got.sums.device.type == backend
    np.testing.assert_array_equal(host(got.indices).astype(np.int64), idx.astype(np.int64))
    np.testing.assert_array_equal(host(got.counts), counts)
    assert_sums_close(host(got.sums), ref_input(t), idx, k, backend)
    assert int(got.counts.sum()) == n


@pytest.mark.parametrize("device", DEVICES)
def test_bin_uniform_edges_exact(device):
    """Values exactly on bin edges, at lo/hi and outside [lo, hi] follow the rule bit for bit."""
    k, lo, hi = 10, -1.0, 1.0
    width = (hi - lo) / k
    edges = np.array([lo + i * width for i in range(k + 1)], dtype=np.float32)
    near = np.concatenate([edges, np.nextafter(edges, np.float32(-2)), np.nextafter(edges, np.float32(2)),
                           np.float32([-5, 5, lo, hi])]).astype(np.float32)
    got = wsc.ops.bin_uniform(on(near, device), k, lo, hi)
    idx, counts, _ = ref.bin_uniform(near, k, lo, hi)
    got_idx = host(got.indices)
    np.testing.assert_array_equal(got_idx, idx)
    np.testing.assert_array_equal(host(got.counts), counts)
    assert got_idx[near == np.float32(hi)].max() == k - 1
    assert got_idx[near == np.float32(-5)].max() == 0


@pytest.mark.parametrize("device", DEVICES)
def test_bin_uniform_near_edges_property(device):
    """Values within 4 ulps of the bin edges of random ranges (near and far from zero, k up to
    the fused kernel's 4096), and values far outside, get the rule's bin bit for bit: the
    float32 fast paths must recompute exactly every lane their rounding cannot decide."""
    @settings(max_examples=60 if device == "cpu" else 30, deadline=None)
    @given(st.floats(-1e4, 1e4, width=32), st.floats(2.0**-10, 1e4, width=32), st.integers(2, 4096),
           st.integers(0, 2**32 - 1))
    def check(lo, span, k, seed):
        hi = np.float32(lo + span)
        assume(np.isfinite(hi) and hi > np.float32(lo))
        lo = np.float32(lo)
        edges = (np.float64(lo) + (np.float64(hi) - np.float64(lo)) / k * np.arange(k + 1)).astype(np.float32)
        picked = np.random.default_rng(seed).choice(edges, size=min(k + 1, 64), replace=False)
        steps = np.arange(-4, 5, dtype=np.int32)
        near = (picked.view(np.int32)[:, None] + steps).ravel().view(np.float32)
        outside = [lo - span / 3, hi + span / 3, -3e38, 3e38]  # clamped to bins 0 and k - 1
        x = np.concatenate([near[np.isfinite(near)], [lo, hi], outside]).astype(np.float32)
        got = wsc.ops.bin_uniform(on(x, device), k, float(lo), float(hi))
        idx, counts, _ = ref.bin_uniform(x, k, float(lo), float(hi))
        np.testing.assert_array_equal(host(got.indices).astype(np.int64), idx.astype(np.int64))
        np.testing.assert_array_equal(host(got.counts), counts)

    check()


@pytest.mark.parametrize("device", DEVICES)
def test_bin_uniform_constant_input_goes_to_bin_zero(device):
    x = np.full(100, 0.5, dtype=np.float32)
    got = wsc.ops.bin_uniform(on(x, device), 4)
    assert (host(got.indices) == 0).all() and host(got.counts)[0] == 100 and host(got.sums)[0] == 50.0


@pytest.mark.parametrize("device", DEVICES)
def test_bin_uniform_property(device):
    @settings(max_examples=60 if device == "cpu" else 30, deadline=None)
    @given(st.lists(st.floats(-1e6, 1e6, width=32), min_size=1, max_size=200), st.integers(2, 300))
    def check(values, k):
        x = np.array(values, dtype=np.float32)
        got = wsc.ops.bin_uniform(on(x, device), k)
        idx, counts, _ = ref.bin_uniform(x, k, got.lo, got.hi)
        np.testing.assert_array_equal(host(got.indices), idx)
        np.testing.assert_array_equal(host(got.counts), counts)
        assert_sums_close(host(got.sums), x, idx, k, device)

    check()


def test_bin_uniform_sums_identical_across_thread_counts():
    x = weights_like(2_000_003, seed=5)
    results = []
    for t in (1, 2, 3):
        wsc.set_num_threads(t)
        results.append(wsc.ops.bin_uniform(x, 256).sums)
    wsc.set_num_threads(0)
    assert all(np.array_equal(results[0], r) for r in results[1:])


@pytest.mark.parametrize("out_dtype", DTYPES, ids=str)
@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("n", SIZES)
def test_gather_matches_reference(out_dtype, k, n, backend):
    rng = np.random.default_rng(n + k)
    codebook = rng.normal(size=k).astype(np.float32)
    idx = rng.integers(0, k, size=n).astype(np.uint8 if k <= 256 else np.uint16)
    got = wsc.ops.gather(on(idx, backend), on(codebook, backend), dtype=out_dtype)
    want = torch.from_numpy(ref.gather(idx, codebook)).to(out_dtype)
    assert got.dtype == out_dtype and got.device.type == backend
    assert torch.equal(got.cpu(), want)


def test_gather_into_caller_buffer_and_numpy_in_numpy_out():
    codebook = np.array([0.5, -1.0, 2.0], dtype=np.float32)
    idx = np.array([2, 0, 1, 1], dtype=np.uint8)
    out = np.empty(4, dtype=np.float32)
    assert wsc.ops.gather(idx, codebook, out=out) is out
    np.testing.assert_array_equal(out, [2.0, 0.5, -1.0, -1.0])
    assert isinstance(wsc.ops.gather(idx, codebook), np.ndarray)


@pytest.mark.parametrize("device", DEVICES)
def test_gather_rejects_index_beyond_codebook(device):
    with pytest.raises(ValueError, match=r"gather: 2 index value\(s\) >= codebook size 3"):
        wsc.ops.gather(on(np.array([0, 3, 1, 255], dtype=np.uint8), device),
                       on(np.zeros(3, dtype=np.float32), device))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("n", SIZES)
def test_share_matches_reference(dtype, k, n, backend):
    t = as_dtype(weights_like(n, seed=3 * k + n), dtype)
    lo, hi = (-0.3, 0.25) if n == 0 else wsc.ops.range(t)
    codebook = np.linspace(-1, 1, k, dtype=np.float32)
    got = wsc.ops.share(t.to(backend), lo, hi, on(codebook, backend))
    want = ref.share(ref_input(t), lo, hi, codebook)
    assert got.dtype == dtype and got.shape == t.shape and got.device.type == backend
    assert torch.equal(got.cpu(), torch.from_numpy(want).to(dtype))


def test_out_buffers_are_filled_in_place():
    x = weights_like(10_001, seed=4)
    idx = np.empty(x.shape, dtype=np.uint16)
    got = wsc.ops.bin_uniform(x, 1000, out=idx)
    assert got.indices is idx
    np.testing.assert_array_equal(idx, ref.bin_uniform(x, 1000, got.lo, got.hi)[0])
    codebook = np.linspace(-1, 1, 1000, dtype=np.float32)
    out = torch.empty(x.shape, dtype=torch.bfloat16)
    assert wsc.ops.share(x, got.lo, got.hi, codebook, out=out) is out
    assert torch.equal(out, torch.from_numpy(ref.share(x, got.lo, got.hi, codebook)).to(torch.bfloat16))
    with pytest.raises(TypeError, match="indices must have dtype uint16"):
        wsc.ops.bin_uniform(x, 1000, out=np.empty(x.shape, dtype=np.uint8))


@pytest.mark.parametrize("device", DEVICES)
def test_share_equals_bin_then_gather(device):
    x = on(weights_like(50_001, seed=9), device)
    b = wsc.ops.bin_uniform(x, 64)
    codebook = (b.sums / b.counts.clamp(min=1)).float()
    assert torch.equal(wsc.ops.share(x, b.lo, b.hi, codebook), wsc.ops.gather(b.indices, codebook))


def test_zero_copy_of_contiguous_input():
    x = weights_like(1000)
    t = torch.from_numpy(x)
    # the numpy wrapper views the caller's memory: the tensor handed to the op shares it
    from wsc._arrays import as_tensor

    view, was_numpy = as_tensor(x, "x")
    assert was_numpy and view.data_ptr() == t.data_ptr()
