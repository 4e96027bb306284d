"""Microbenchmarks of the native kernels on 25M weight-like float32 values.

Run: python -m pytest bench/bench_kernels.py --benchmark-columns=median,iqr,rounds
Bandwidth counts bytes read + written; every ratio is against a baseline of this run.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import wsc
from conftest import N_WEIGHTS, record


@pytest.fixture(scope="module")
def binned(weights):
    b = wsc.ops.bin_uniform(weights, 16)
    codebook = (b.sums / np.maximum(b.counts, 1)).astype(np.float32)
    return b, codebook


def test_copy(benchmark, weights):
    """float32 copy: the memory-bandwidth baseline (read + write)."""
    src, dst = torch.from_numpy(weights), torch.empty(N_WEIGHTS)
    benchmark(dst.copy_, src)
    record("copy", benchmark, 2 * weights.nbytes)


def test_range(benchmark, weights):
    benchmark(wsc.ops.range, weights)
    record("range", benchmark, weights.nbytes)


def numpy_bin_pipeline(x: np.ndarray, k: int):
    """The numpy way: min/max, subtract, floor-divide, clip, astype, bincount with weights."""
    lo, hi = x.min(), x.max()
    width = (hi - lo) / k
    idx = np.clip(np.floor_divide(x - lo, width), 0, k - 1).astype(np.uint8)
    return idx, np.bincount(idx, minlength=k), np.bincount(idx, weights=x, minlength=k)


def test_bin_numpy_k16(benchmark, weights):
    benchmark.pedantic(numpy_bin_pipeline, (weights, 16), rounds=3, iterations=1)
    record("bin numpy k=16", benchmark, weights.nbytes + N_WEIGHTS)


@pytest.mark.parametrize("k", [16, 256])
def test_bin_uniform(benchmark, weights, k):
    """Binning with counts and sums into a preallocated index buffer (range given)."""
    lo, hi = wsc.ops.range(weights)
    out = np.empty(N_WEIGHTS, dtype=np.uint8)
    benchmark(wsc.ops.bin_uniform, weights, k, lo, hi, out=out)
    record(f"bin_uniform k={k}", benchmark, weights.nbytes + N_WEIGHTS)


def test_gather(benchmark, binned):
    b, codebook = binned
    out = np.empty(N_WEIGHTS, dtype=np.float32)
    benchmark(wsc.ops.gather, b.indices, codebook, out=out)
    record("gather k=16", benchmark, N_WEIGHTS + out.nbytes)


def test_share(benchmark, weights, binned):
    b, codebook = binned
    out = np.empty_like(weights)
    benchmark(wsc.ops.share, weights, b.lo, b.hi, codebook, out=out)
    record("share k=16", benchmark, weights.nbytes + out.nbytes)


def quantization_mse(x: np.ndarray, centres: np.ndarray) -> float:
    """MSE of x against its nearest centre."""
    c = np.sort(centres.astype(np.float32))
    mid = (c[1:] + c[:-1]) / 2
    return float(np.mean((x - c[np.searchsorted(mid, x)]) ** 2, dtype=np.float64))


def test_uniform_codebook_mse(benchmark, weights):
    """Uniform binning k=16 with bin means: time of the whole codebook and its MSE."""
    def codebook():
        b = wsc.ops.bin_uniform(weights, 16)
        return wsc.ops.gather(b.indices, (b.sums / np.maximum(b.counts, 1)).astype(np.float32))

    shared = benchmark.pedantic(codebook, rounds=3, iterations=1)
    mse = float(np.mean((weights - shared) ** 2, dtype=np.float64))
    record("uniform codebook k=16", benchmark, None, mse=f"{mse:.3e}")


def test_kmeans_sklearn_full(benchmark, weights):
    """scikit-learn KMeans (k=16, one init) on all 25M values: the paper's costly baseline."""
    from sklearn.cluster import KMeans

    km = benchmark.pedantic(lambda: KMeans(16, n_init=1, random_state=0).fit(weights.reshape(-1, 1)),
                            rounds=1, iterations=1)
    record("kmeans sklearn full k=16", benchmark, None, mse=f"{quantization_mse(weights, km.cluster_centers_.ravel()):.3e}",
           iters=km.n_iter_)


def test_kmeans_sklearn_subsample(benchmark, weights):
    """KMeans (k=16) on a 250k subsample, then every value assigned to its nearest centre."""
    from sklearn.cluster import KMeans

    sub = np.random.default_rng(0).choice(weights, 250_000, replace=False).reshape(-1, 1)
    km = benchmark.pedantic(lambda: KMeans(16, n_init=1, random_state=0).fit(sub), rounds=3, iterations=1)
    record("kmeans sklearn 1% k=16", benchmark, None, mse=f"{quantization_mse(weights, km.cluster_centers_.ravel()):.3e}")


@pytest.fixture(scope="module")
def symbols(binned):
    """The k=16 index stream of the 25M weights and its order-0 entropy (bits/symbol)."""
    b, _ = binned
    p = b.counts[b.counts > 0] / N_WEIGHTS
    return b.indices, b.counts, float(-(p * np.log2(p)).sum())


def test_huffman_encode(benchmark, symbols):
    idx, counts, entropy = symbols
    stream = benchmark(wsc.huffman.encode, idx, 16)
    lengths = stream.lengths.astype(np.int64)
    optimal = float((counts * np.asarray(wsc.reference.huffman_code_lengths(counts, 24), dtype=np.int64)).sum()) / N_WEIGHTS
    record("huffman encode k=16", benchmark, N_WEIGHTS,
           bits_per_symbol=f"{stream.nbits / N_WEIGHTS:.4f}",
           code_average=f"{float((counts * lengths).sum()) / N_WEIGHTS:.4f}",
           optimal_huffman=f"{optimal:.4f}", entropy=f"{entropy:.4f}")


def test_huffman_decode(benchmark, symbols):
    idx, _, _ = symbols
    stream = wsc.huffman.encode(idx, 16)
    out = np.empty(N_WEIGHTS, dtype=np.uint8)
    benchmark(wsc.huffman.decode, stream, out=out)
    assert np.array_equal(out, idx)
    record("huffman decode k=16", benchmark, N_WEIGHTS)
