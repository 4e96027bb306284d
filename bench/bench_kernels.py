"""Microbenchmarks of the native kernels on 25M weight-like float32 values.

Run: python -m pytest bench/bench_kernels.py --benchmark-columns=median,iqr,rounds
Bandwidth counts bytes read + written; every ratio is against a baseline of this run.
The entropy coders alone: python -m pytest bench/bench_kernels.py -k "rans or huffman or
constriction or zstd" (constriction and zstandard are imported lazily; their benchmarks skip
with the reason when the packages are missing).
"""

from __future__ import annotations

import time

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


# ---------------------------------------------------------------- entropy coders side by side
# Three 25M-symbol index streams of the same weights: "k16", the k=16 stream above (the
# outliers stretch the range, so one bin holds 99.5% of the weights), "laplace16" (16 bins
# over [-0.35, 0.35]: a spread, Laplace-shaped histogram) and "dominant15" (15 bins over
# [-1.8, 1.8]: the middle bin holds 91%). Throughput is MB/s of symbols (one per weight);
# bits/symbol counts everything a decoder needs (rANS: payload + packed frequency table;
# Huffman: payload; constriction: its words; zstd: its frame) against the order-0 entropy.
STREAMS = {"k16": (16, None, None), "laplace16": (16, -0.35, 0.35), "dominant15": (15, -1.8, 1.8)}


@pytest.fixture(scope="module")
def streams(weights):
    out = {}
    for name, (k, lo, hi) in STREAMS.items():
        b = wsc.ops.bin_uniform(weights, k) if lo is None else wsc.ops.bin_uniform(weights, k, lo, hi)
        p = b.counts[b.counts > 0] / N_WEIGHTS
        out[name] = (b.indices, k, b.counts, float(-(p * np.log2(p)).sum()))
    return out


def _threads(n: int):
    wsc.set_num_threads(n)
    return n


def _coded(name: str, bits: float, entropy: float) -> dict:
    return {"bits_per_symbol": f"{bits / N_WEIGHTS:.4f}", "entropy": f"{entropy:.4f}",
            "vs_entropy": f"{bits / N_WEIGHTS / entropy - 1:+.2%}"}


def _mbps(benchmark) -> str:
    return f"{N_WEIGHTS / benchmark.stats.stats.median / 1e6:.0f}"


def _cpu_mbps(fn, *args, **kwargs) -> str:
    """MB of symbols per CPU-second of this process (all its threads), best of 3: what one
    core does, whatever else runs on the machine (the 2-core test machine is shared)."""
    best = float("inf")
    for _ in range(3):
        c0 = time.process_time()
        fn(*args, **kwargs)
        best = min(best, time.process_time() - c0)
    return f"{N_WEIGHTS / best / 1e6:.0f}"


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("name", list(STREAMS))
def test_rans_encode(benchmark, streams, name, threads):
    idx, k, _, entropy = streams[name]
    _threads(threads)
    try:
        stream = benchmark(wsc.rans.encode, idx, k)
        cpu = _cpu_mbps(wsc.rans.encode, idx, k)
    finally:
        wsc.set_num_threads(0)
    record(f"rans encode {name} t{threads}", benchmark, N_WEIGHTS, mb_s=_mbps(benchmark), cpu_mb_s=cpu,
           **_coded(name, stream.nbits + 8 * stream.table_bytes, entropy), scale_bits=stream.scale_bits,
           chunks=stream.n_chunks)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("name", list(STREAMS))
def test_rans_decode(benchmark, streams, name, threads):
    idx, k, _, _ = streams[name]
    stream = wsc.rans.encode(idx, k)
    out = np.empty(N_WEIGHTS, dtype=np.uint8)
    _threads(threads)
    try:
        benchmark(wsc.rans.decode, stream, out=out)
        cpu = _cpu_mbps(wsc.rans.decode, stream, out=out)
    finally:
        wsc.set_num_threads(0)
    assert np.array_equal(out, idx)
    record(f"rans decode {name} t{threads}", benchmark, N_WEIGHTS, mb_s=_mbps(benchmark), cpu_mb_s=cpu)


@pytest.mark.parametrize("name", list(STREAMS))
def test_huffman_encode_streams(benchmark, streams, name):
    """Our Huffman on the same streams, 2 threads (bits: payload + one byte of code length per symbol)."""
    idx, k, _, entropy = streams[name]
    _threads(2)
    try:
        stream = benchmark(wsc.huffman.encode, idx, k)
    finally:
        wsc.set_num_threads(0)
    record(f"huffman encode {name} t2", benchmark, N_WEIGHTS, mb_s=_mbps(benchmark),
           **_coded(name, stream.nbits + 8 * stream.k, entropy))


@pytest.mark.parametrize("name", list(STREAMS))
def test_huffman_decode_streams(benchmark, streams, name):
    idx, k, _, _ = streams[name]
    stream = wsc.huffman.encode(idx, k)
    out = np.empty(N_WEIGHTS, dtype=np.uint8)
    _threads(2)
    try:
        benchmark(wsc.huffman.decode, stream, out=out)
    finally:
        wsc.set_num_threads(0)
    assert np.array_equal(out, idx)
    record(f"huffman decode {name} t2", benchmark, N_WEIGHTS, mb_s=_mbps(benchmark))


def _constriction():
    return pytest.importorskip("constriction", reason="constriction is not installed (pip install constriction): "
                               "no side-by-side with its rANS")


@pytest.mark.parametrize("name", list(STREAMS))
def test_constriction_rans_encode(benchmark, streams, name):
    """constriction's rANS (stack.AnsCoder, 32-bit words, Categorical model, one thread)."""
    constriction = _constriction()
    idx, k, counts, entropy = streams[name]
    model = constriction.stream.model.Categorical(counts / counts.sum(), perfect=False)
    sym = idx.astype(np.int32)

    def encode():
        coder = constriction.stream.stack.AnsCoder()
        coder.encode_reverse(sym, model)
        return coder.get_compressed()

    words = benchmark.pedantic(encode, rounds=3, iterations=1)
    record(f"constriction encode {name}", benchmark, N_WEIGHTS, mb_s=_mbps(benchmark),
           **_coded(name, 32 * words.size, entropy))


@pytest.mark.parametrize("name", list(STREAMS))
def test_constriction_rans_decode(benchmark, streams, name):
    constriction = _constriction()
    idx, k, counts, _ = streams[name]
    model = constriction.stream.model.Categorical(counts / counts.sum(), perfect=False)
    coder = constriction.stream.stack.AnsCoder()
    coder.encode_reverse(idx.astype(np.int32), model)
    words = coder.get_compressed()
    out = benchmark.pedantic(lambda: constriction.stream.stack.AnsCoder(words).decode(model, N_WEIGHTS),
                             rounds=3, iterations=1)
    assert np.array_equal(out, idx)
    record(f"constriction decode {name}", benchmark, N_WEIGHTS, mb_s=_mbps(benchmark))


def _pack4(idx: np.ndarray) -> np.ndarray:
    """Two 4-bit indices per byte (k <= 16)."""
    return (idx[0::2] << 4) | idx[1::2]


@pytest.mark.parametrize("packed", [False, True], ids=["raw", "packed4"])
@pytest.mark.parametrize("name, level", [(name, 3) for name in STREAMS] + [("k16", 19)])
def test_zstd(benchmark, streams, name, packed, level):
    """zstd (one thread) on the raw uint8 stream and on the 4-bit packed one; level 19 (slow:
    seconds to a minute per stream) only on k16, timed once."""
    zstandard = pytest.importorskip("zstandard", reason="zstandard is not installed (pip install zstandard)")
    idx, _, _, entropy = streams[name]
    src = (_pack4(idx) if packed else idx).tobytes()
    cctx = zstandard.ZstdCompressor(level=level)
    frame = benchmark.pedantic(cctx.compress, (src,), rounds=1 if level > 9 else 3, iterations=1)
    t_enc = benchmark.stats.stats.median
    dctx = zstandard.ZstdDecompressor()
    t0 = time.perf_counter()
    assert dctx.decompress(frame) == src
    t_dec = time.perf_counter() - t0
    record(f"zstd-{level} {'packed4' if packed else 'raw'} {name}", benchmark, N_WEIGHTS,
           mb_s=f"{N_WEIGHTS / t_enc / 1e6:.0f}", dec_mb_s=f"{N_WEIGHTS / t_dec / 1e6:.0f}",
           **_coded(name, 8 * len(frame), entropy))
