"""Native range/binning/gather/share against wsc.reference, across dtypes, sizes, k and threads."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import wsc
from wsc import reference as ref
from conftest import as_dtype, weights_like

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
SIZES = [0, 1, 7, 1001, 300_001]
KS = [2, 3, 255, 256, 257, 65536]


def ref_input(t: torch.Tensor) -> np.ndarray:
    """The float32 values the kernels see (exact for every supported dtype)."""
    return t.float().numpy()


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("n", SIZES[1:])
def test_range_matches_reference(dtype, n, threads):
    t = as_dtype(weights_like(n, seed=n), dtype)
    assert wsc.ops.range(t) == ref.range(ref_input(t))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("k", KS)
def test_bin_uniform_matches_reference(dtype, n, k, threads):
    t = as_dtype(weights_like(n, seed=k + n), dtype)
    lo, hi = (-0.3, 0.25) if n == 0 else wsc.ops.range(t)
    got = wsc.ops.bin_uniform(t, k, lo, hi)
    idx, counts, sums = ref.bin_uniform(ref_input(t), k, lo, hi)
    assert got.indices.dtype == (torch.uint8 if k <= 256 else torch.uint16)
    assert got.indices.shape == t.shape
    np.testing.assert_array_equal(got.indices.numpy().astype(np.int64), idx.astype(np.int64))
    np.testing.assert_array_equal(got.counts.numpy(), counts)
    np.testing.assert_allclose(got.sums.numpy(), sums, rtol=1e-12, atol=1e-9)
    assert int(got.counts.sum()) == n


def test_bin_uniform_edges_exact():
    """Values exactly on bin edges, at lo/hi and outside [lo, hi] follow the rule bit for bit."""
    k, lo, hi = 10, -1.0, 1.0
    width = (hi - lo) / k
    edges = np.array([lo + i * width for i in range(k + 1)], dtype=np.float32)
    near = np.concatenate([edges, np.nextafter(edges, np.float32(-2)), np.nextafter(edges, np.float32(2)),
                           np.float32([-5, 5, lo, hi])]).astype(np.float32)
    got = wsc.ops.bin_uniform(near, k, lo, hi)
    idx, counts, _ = ref.bin_uniform(near, k, lo, hi)
    np.testing.assert_array_equal(got.indices, idx)
    np.testing.assert_array_equal(got.counts, counts)
    assert got.indices[near == np.float32(hi)].max() == k - 1
    assert got.indices[near == np.float32(-5)].max() == 0


def test_bin_uniform_constant_input_goes_to_bin_zero():
    x = np.full(100, 0.5, dtype=np.float32)
    got = wsc.ops.bin_uniform(x, 4)
    assert (got.indices == 0).all() and got.counts[0] == 100 and got.sums[0] == 50.0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, width=32), min_size=1, max_size=200), st.integers(2, 300))
def test_bin_uniform_property(values, k):
    x = np.array(values, dtype=np.float32)
    got = wsc.ops.bin_uniform(x, k)
    idx, counts, sums = ref.bin_uniform(x, k, got.lo, got.hi)
    np.testing.assert_array_equal(got.indices, idx)
    np.testing.assert_array_equal(got.counts, counts)
    np.testing.assert_allclose(got.sums, sums, rtol=1e-12, atol=1e-6)


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
def test_gather_matches_reference(out_dtype, k, n, threads):
    rng = np.random.default_rng(n + k)
    codebook = rng.normal(size=k).astype(np.float32)
    idx = rng.integers(0, k, size=n).astype(np.uint8 if k <= 256 else np.uint16)
    got = wsc.ops.gather(torch.from_numpy(idx), torch.from_numpy(codebook), dtype=out_dtype)
    want = torch.from_numpy(ref.gather(idx, codebook)).to(out_dtype)
    assert got.dtype == out_dtype
    assert torch.equal(got, want)


def test_gather_into_caller_buffer_and_numpy_in_numpy_out():
    codebook = np.array([0.5, -1.0, 2.0], dtype=np.float32)
    idx = np.array([2, 0, 1, 1], dtype=np.uint8)
    out = np.empty(4, dtype=np.float32)
    assert wsc.ops.gather(idx, codebook, out=out) is out
    np.testing.assert_array_equal(out, [2.0, 0.5, -1.0, -1.0])
    assert isinstance(wsc.ops.gather(idx, codebook), np.ndarray)


def test_gather_rejects_index_beyond_codebook():
    with pytest.raises(ValueError, match="index value"):
        wsc.ops.gather(np.array([0, 3], dtype=np.uint8), np.zeros(3, dtype=np.float32))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("n", SIZES)
def test_share_matches_reference(dtype, k, n, threads):
    t = as_dtype(weights_like(n, seed=3 * k + n), dtype)
    lo, hi = (-0.3, 0.25) if n == 0 else wsc.ops.range(t)
    codebook = np.linspace(-1, 1, k, dtype=np.float32)
    got = wsc.ops.share(t, lo, hi, torch.from_numpy(codebook))
    want = ref.share(ref_input(t), lo, hi, codebook)
    assert got.dtype == dtype and got.shape == t.shape
    assert torch.equal(got, torch.from_numpy(want).to(dtype))


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


def test_share_equals_bin_then_gather():
    x = weights_like(50_001, seed=9)
    b = wsc.ops.bin_uniform(x, 64)
    codebook = (b.sums / np.maximum(b.counts, 1)).astype(np.float32)
    np.testing.assert_array_equal(wsc.ops.share(x, b.lo, b.hi, codebook), wsc.ops.gather(b.indices, codebook))


def test_zero_copy_of_contiguous_input():
    x = weights_like(1000)
    t = torch.from_numpy(x)
    # the numpy wrapper views the caller's memory: the tensor handed to the op shares it
    from wsc._arrays import as_tensor

    view, was_numpy = as_tensor(x, "x")
    assert was_numpy and view.data_ptr() == t.data_ptr()
