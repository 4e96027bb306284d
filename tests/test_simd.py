"""Every SIMD level of the CPU kernels (AVX2, AVX-512, where this CPU has them) against the
portable scalar code, forced with the private wsc._C._set_simd_level: binning indices, counts
and sums, gather (uint8, uint16, 4-bit packed) and share outputs must be equal bit for bit,
across sizes around the vector widths, k around the register-table sizes, dtypes and threads.
The scalar level itself is checked against wsc.reference by test_ops.py (and here)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import wsc
from wsc import _C
from wsc import reference as ref
from conftest import assert_sums_close, weights_like

SCALAR, AVX2, AVX512 = 0, 1, 2
LEVELS = [pytest.param(level, id=name, marks=pytest.mark.skipif(
    _C._simd_supported() < level, reason=f"this CPU or build has no {name}")) for level, name in
    [(AVX2, "avx2"), (AVX512, "avx512")]]
DTYPES = [torch.float32, torch.float16, torch.bfloat16]
SIZES = [0, 1, 7, 15, 16, 17, 63, 1001, 4099, 70_001]
# 4096: the largest k of the fused AVX-512 binning kernel
KS = [2, 3, 15, 16, 17, 32, 33, 64, 65, 255, 256, 257, 4096, 4097, 65536]


def at_level(level: int, fn, *args, **kwargs):
    """fn(*args) with the kernels capped at ``level``; restores the widest level after."""
    assert _C._set_simd_level(level) == level
    try:
        return fn(*args, **kwargs)
    finally:
        _C._set_simd_level(AVX512)


def test_level_can_be_forced_and_restored():
    best = _C._simd_supported()
    assert _C._simd_level() == best
    assert at_level(SCALAR, _C._simd_level) == SCALAR
    assert _C._simd_level() == best
    assert _C._set_simd_level(99) == best


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("n", SIZES[1:])
def test_range_levels_equal_scalar(level, n, threads):
    """min/max (signed zeros and subnormals at the ends included) and the NaN/Inf report are the
    scalar level's at every SIMD level."""
    x = weights_like(n, seed=n)
    x[n // 2] = -0.0
    x[0] = np.float32(1e-45) if n % 2 else np.float32(-1e-45)
    want = at_level(SCALAR, wsc.ops.range, x)
    assert at_level(level, wsc.ops.range, x) == want == ref.range(x)
    x[n - 1 - n // 3] = np.nan
    x[n // 3] = -np.inf
    first = min(n // 3, n - 1 - n // 3)
    for lv in (SCALAR, level):
        with pytest.raises(ValueError, match=rf"contains {1 + (n > 1 and n // 3 != n - 1 - n // 3)} "
                           rf"NaN/Inf value\(s\); the first is at flat index {first}"):
            at_level(lv, wsc.ops.range, x)


def weights_with_edges(n: int, k: int, seed: int) -> np.ndarray:
    """Weight-like values, a run of one repeated value (whole 16-groups in one bin) and, for
    n > 64, values on the bin edges of [-0.3, 0.25] (the exact-division fallback)."""
    x = weights_like(n, seed=seed)
    if n > 64:
        x[17:49] = x[17]
        width = (0.25 - (-0.3)) / k
        edges = np.float32(-0.3 + width * np.arange(min(k, n // 4)))
        x[-len(edges):] = edges
    return x


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("n", SIZES)
def test_bin_uniform_levels_equal_scalar(level, dtype, k, n, threads):
    t = torch.from_numpy(weights_with_edges(n, k, seed=n + k)).to(dtype)
    lo, hi = (-0.3, 0.25)
    want = at_level(SCALAR, wsc.ops.bin_uniform, t, k, lo, hi)
    got = at_level(level, wsc.ops.bin_uniform, t, k, lo, hi)
    assert torch.equal(got.indices, want.indices)
    assert torch.equal(got.counts, want.counts)
    assert torch.equal(got.sums, want.sums)  # the same additions in the same order
    idx, counts, _ = ref.bin_uniform(t.float().numpy(), k, lo, hi)
    np.testing.assert_array_equal(want.indices.numpy().astype(np.int64), idx.astype(np.int64))
    np.testing.assert_array_equal(want.counts.numpy(), counts)
    assert_sums_close(want.sums.numpy(), t.float().numpy(), idx, k)


def shifting_weights(n: int, seed: int) -> np.ndarray:
    """Weights whose hot bins move: three tight clusters, a narrow Laplace part, a wider one
    shifted right, a sorted run and a uniform tail (five parts that do not line up with the
    binning kernel's blocks), so the hot bins chosen early stop fitting."""
    rng = np.random.default_rng(seed)
    q = n // 5
    parts = [rng.choice([-0.02, 0.01, 0.05], q) + rng.normal(0.0, 1e-4, q), rng.laplace(-0.05, 0.01, q),
             rng.laplace(0.08, 0.04, q), np.sort(rng.laplace(0.0, 0.05, q)),
             rng.uniform(-0.3, 0.25, n - 4 * q)]
    return np.clip(np.concatenate(parts), -0.3, 0.25).astype(np.float32)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("k", [2, 16, 256, 1024, 4096])
def test_bin_uniform_hot_bins_change_and_levels_agree(level, dtype, k, threads):
    """1,200,011 elements in four blocks of the kernel (csrc/cpu/binning.cpp) of 293 x 1024
    (the last with a tail), so on a CPU with AVX-512 the hot bins are chosen from each block's
    first 1024 elements and, for k <= 256, again at its 257th while the distribution moves
    under them (k = 1024 and 4096, two sub-histograms: the clusters and the sorted run
    start make two to four hot bins in the first and last blocks, none in the others);
    indices and counts exact, sums bit-identical across levels and to float rounding of the
    reference."""
    t = torch.from_numpy(shifting_weights(1_200_011, seed=k)).to(dtype)
    want = at_level(SCALAR, wsc.ops.bin_uniform, t, k, -0.3, 0.25)
    got = at_level(level, wsc.ops.bin_uniform, t, k, -0.3, 0.25)
    assert torch.equal(got.indices, want.indices) and torch.equal(got.counts, want.counts)
    assert torch.equal(got.sums, want.sums)
    idx, counts, _ = ref.bin_uniform(t.float().numpy(), k, -0.3, 0.25)
    np.testing.assert_array_equal(want.indices.numpy().astype(np.int64), idx.astype(np.int64))
    np.testing.assert_array_equal(want.counts.numpy(), counts)
    assert_sums_close(want.sums.numpy(), t.float().numpy(), idx, k)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("k", [16, 256, 4096])
def test_bin_uniform_clipped_runs_levels_agree(level, k):
    """A range that clips a quarter of some 1024-weight chunks and none of others: the fused
    kernel switches between its unclamped and clamped rules (csrc/cpu/bin_avx512.h,
    RuleChoice) and must give the scalar level's indices, counts and sums bit for bit."""
    rng = np.random.default_rng(k)
    runs = [rng.laplace(0.0, 0.05 if i % 3 else 0.2, 1024 * int(rng.integers(1, 40))) for i in range(12)]
    x = np.concatenate(runs).astype(np.float32)
    lo, hi = -0.15, 0.2
    assert 0.05 < float(np.mean((x < lo) | (x > hi))) < 0.3
    want = at_level(SCALAR, wsc.ops.bin_uniform, x, k, lo, hi)
    got = at_level(level, wsc.ops.bin_uniform, x, k, lo, hi)
    np.testing.assert_array_equal(got.indices, want.indices)
    np.testing.assert_array_equal(got.counts, want.counts)
    np.testing.assert_array_equal(got.sums, want.sums)
    idx, counts, _ = ref.bin_uniform(x, k, lo, hi)
    np.testing.assert_array_equal(want.indices.astype(np.int64), idx.astype(np.int64))
    np.testing.assert_array_equal(want.counts, counts)
    assert_sums_close(want.sums, x, idx, k)


@pytest.mark.parametrize("level", LEVELS)
def test_bin_uniform_levels_equal_scalar_on_nan(level):
    x = weights_like(5000, seed=1)
    x[4321] = np.nan
    for lv in (SCALAR, level):
        with pytest.raises(ValueError, match=r"1 NaN/Inf value\(s\); the first is at flat index 4321"):
            at_level(lv, wsc.ops.bin_uniform, x, 16, -0.3, 0.25)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("out_dtype", DTYPES, ids=str)
@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("n", SIZES)
def test_gather_levels_equal_scalar(level, out_dtype, k, n, threads):
    rng = np.random.default_rng(n + k)
    codebook = torch.from_numpy(rng.normal(size=k).astype(np.float32))
    idx = torch.from_numpy(rng.integers(0, k, size=n).astype(np.uint8 if k <= 256 else np.uint16))
    want = at_level(SCALAR, wsc.ops.gather, idx, codebook, dtype=out_dtype)
    got = at_level(level, wsc.ops.gather, idx, codebook, dtype=out_dtype)
    assert torch.equal(got, want)
    assert torch.equal(want, torch.from_numpy(ref.gather(idx.numpy(), codebook.numpy())).to(out_dtype))
    if k <= 16:
        packed = wsc.ops.pack_u4(idx)
        u4 = [at_level(lv, torch.ops.wsc.gather_u4, packed, codebook, [n], out_dtype) for lv in (SCALAR, level)]
        assert torch.equal(u4[0], want) and torch.equal(u4[1], want)


def assert_fills_shifted_output(level: int, shift: int, want: np.ndarray, fill) -> None:
    """fill(out) at the scalar level and at `level` writes `want` whole into a caller buffer that
    starts `shift` floats past a 64-byte boundary, and nothing around it."""
    n = want.size
    for lv in (SCALAR, level):
        base = np.full(n + 16 + shift, np.nan, dtype=np.float32)
        start = (-(base.ctypes.data // 4)) % 16 + shift
        out = base[start:start + n]
        at_level(lv, fill, out)
        assert np.array_equal(out, want)
        assert np.isnan(base[:start]).all() and np.isnan(base[start + n:]).all()


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("k", [16, 33, 64])
@pytest.mark.parametrize("shift", [0, 1, 13])
def test_gather_streamed_output_levels_equal_scalar(level, k, shift):
    """A float32 output of 32 MiB or more is written with streamed stores from its first 64-byte
    boundary on: a caller buffer starting `shift` floats past one must still be filled whole."""
    n = (32 << 20) // 4 + 101
    rng = np.random.default_rng(k + shift)
    codebook = rng.normal(size=k).astype(np.float32)
    idx = rng.integers(0, k, size=n).astype(np.uint8)
    assert_fills_shifted_output(level, shift, codebook[idx],
                                lambda out: wsc.ops.gather(idx, codebook, out=out))


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("shift", [0, 13])
def test_share_streamed_output_levels_equal_scalar(level, shift):
    """Share streams a float32 output of 32 MiB or more too (its workers' blocks start anywhere):
    a caller buffer `shift` floats past a 64-byte boundary is filled whole, as the reference."""
    n = (32 << 20) // 4 + 101
    rng = np.random.default_rng(shift)
    x = rng.laplace(0, 0.05, n).astype(np.float32)
    codebook = rng.normal(size=16).astype(np.float32)
    lo, hi = float(x.min()), float(x.max())
    assert_fills_shifted_output(level, shift, ref.share(x, lo, hi, codebook),
                                lambda out: wsc.ops.share(x, lo, hi, codebook, out=out))


@pytest.mark.parametrize("level", LEVELS)
def test_gather_levels_reject_bad_index(level):
    idx = np.zeros(1000, dtype=np.uint8)
    idx[999] = 16
    with pytest.raises(ValueError, match=r"gather: 1 index value\(s\) >= codebook size 16"):
        at_level(level, wsc.ops.gather, idx, np.zeros(16, dtype=np.float32))


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("n", [0, 1, 17, 4099, 70_001])
def test_share_levels_equal_scalar(level, dtype, k, n):
    t = torch.from_numpy(weights_with_edges(n, k, seed=3 * k + n)).to(dtype)
    codebook = torch.from_numpy(np.random.default_rng(k).normal(size=k).astype(np.float32))
    want = at_level(SCALAR, wsc.ops.share, t, -0.3, 0.25, codebook)
    got = at_level(level, wsc.ops.share, t, -0.3, 0.25, codebook)
    assert torch.equal(got, want)
    assert torch.equal(want, torch.from_numpy(ref.share(t.float().numpy(), -0.3, 0.25, codebook.numpy())).to(dtype))
