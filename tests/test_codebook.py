"""The O(k log N) codebook against the native binning kernel: equal counts, equal means."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import wsc
from wsc.codebook import Codebook, SortedWeights, bin_rule, bin_thresholds, entropy_bits, huffman_bits
from wsc.reference import bin_index

from conftest import assert_sums_close, weights_like

KS = [2, 3, 7, 64, 255, 256, 257, 1000, 1024, 4099]


def _native_bins(x: np.ndarray, k: int):
    b = wsc.ops.bin_uniform(x, k)
    return b.counts, b.sums, b.indices


@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("kind", ["laplace", "rounded", "tiny", "zeros-and-denormals"])
def test_counts_equal_native_binning(k, kind):
    x = weights_like(20000, seed=k)
    if kind == "rounded":  # many values exactly on bin edges
        x = (np.round(x * 64) / 64).astype(np.float32)
    elif kind == "tiny":
        x = (x * 1e-6).astype(np.float32)
    elif kind == "zeros-and-denormals":
        x = np.concatenate([x, [0.0, -0.0, 1e-42, -1e-41, 1e-45]]).astype(np.float32)
    counts, sums, idx = _native_bins(x, k)
    c, s = SortedWeights(x).bins(k)
    np.testing.assert_array_equal(c, counts)
    exact = assert_sums_close(sums, x, idx, k)
    np.testing.assert_allclose(s, exact, rtol=1e-9, atol=1e-12)


@settings(max_examples=150, deadline=None)
@given(arrays(np.float32, st.integers(1, 300),
              elements=st.floats(-4, 4, width=32, allow_subnormal=True)),
       st.integers(2, 3000))
def test_counts_equal_native_binning_property(x, k):
    counts, _, _ = _native_bins(x, k)
    np.testing.assert_array_equal(SortedWeights(x).bins(k)[0], counts)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_values_bin_like_the_kernel(dtype):
    t = torch.from_numpy(weights_like(5000, seed=3)).to(dtype)
    for k in (5, 300):
        counts = wsc.ops.bin_uniform(t, k).counts.numpy()
        np.testing.assert_array_equal(SortedWeights(t.float().numpy()).bins(k)[0], counts)


@pytest.mark.parametrize("k", [2, 17, 256, 1024])
def test_thresholds_are_the_exact_bin_edges(k):
    x = weights_like(3000, seed=1)
    lo, hi = float(x.min()), float(x.max())
    t = bin_thresholds(lo, hi, k)
    np.testing.assert_array_equal(bin_rule(t, lo, hi, k), bin_index(t, lo, hi, k))
    native = wsc.ops.bin_uniform(t, k, lo, hi).indices.astype(np.int64)
    np.testing.assert_array_equal(bin_rule(t, lo, hi, k), native)
    assert (bin_rule(t, lo, hi, k) >= np.arange(1, k)).all()
    below = np.nextafter(t, np.float32(-np.inf))
    assert (bin_rule(below, lo, hi, k) < np.arange(1, k)).all()


def test_constant_weights_fall_into_bin_zero():
    x = np.full(100, 0.25, dtype=np.float32)
    c, s = SortedWeights(x).bins(8)
    np.testing.assert_array_equal(c, wsc.ops.bin_uniform(x, 8).counts)
    cb = Codebook.uniform(SortedWeights(x), 8)
    assert cb.size == 1 and cb.values[0] == np.float32(0.25)


@pytest.mark.parametrize("k", [2, 9, 300])
def test_codebook_means_equal_kernel_means_and_share_uses_them(k):
    x = weights_like(10000, seed=k)
    counts, sums, idx = _native_bins(x, k)
    cb = Codebook.uniform(SortedWeights(x), k)
    used = counts > 0
    np.testing.assert_array_equal(cb.bins, np.flatnonzero(used))
    exact = assert_sums_close(sums, x, idx, k)
    np.testing.assert_allclose(cb.values, (exact[used] / counts[used]).astype(np.float32), rtol=1e-6)
    assert cb.size == used.sum() and not cb.merged
    shared = wsc.ops.share(x, cb.lo, cb.hi, cb.table())
    np.testing.assert_array_equal(shared, cb.values[cb.index_map[idx.astype(np.int64)]])


def test_merge_gives_the_weighted_mean_of_the_groups():
    x = weights_like(5000, seed=7)
    cb = Codebook.uniform(SortedWeights(x), 6)
    merged = cb.merge(1)
    assert merged.size == cb.size - 1 and merged.merged
    c = cb.counts[1] + cb.counts[2]
    expect = (cb.sums[1] + cb.sums[2]) / c
    assert merged.values[1] == pytest.approx(expect, rel=1e-6)
    np.testing.assert_array_equal(merged.group_counts, np.r_[cb.counts[0], c, cb.counts[3:]])
    assert merged.key != cb.key and merged.merge(0).size == cb.size - 2
    with pytest.raises(IndexError):
        cb.merge(cb.size - 1)


def test_empty_bins_are_dropped_and_map_to_a_neighbour():
    x = np.array([-1.0, -0.99, 0.98, 1.0], dtype=np.float32)
    cb = Codebook.uniform(SortedWeights(x), 10)
    assert cb.size == 2
    assert set(cb.index_map.tolist()) == {0, 1}
    np.testing.assert_allclose(cb.values, [-0.995, 0.99], rtol=1e-6)


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="empty"):
        SortedWeights(np.zeros(0, dtype=np.float32))
    with pytest.raises(ValueError, match="NaN"):
        SortedWeights(np.array([1.0, np.nan], dtype=np.float32))
    with pytest.raises(ValueError, match="k must be"):
        SortedWeights(np.ones(3, dtype=np.float32)).bins(1)


def test_entropy_and_huffman_bits():
    assert entropy_bits(np.array([5, 5])) == pytest.approx(1.0)
    assert entropy_bits(np.array([7, 0])) == 0.0
    assert huffman_bits(np.array([7, 0])) == 7  # one symbol still costs a bit
    assert huffman_bits(np.array([1, 1, 2])) == 6  # lengths 2, 2, 1
    counts = np.array([50, 20, 20, 5, 5])
    assert huffman_bits(counts) >= entropy_bits(counts) * counts.sum()
