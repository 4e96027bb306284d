"""Shared fixtures: weight-like data, a thread-count switch that restores the default, and the
devices the kernels run on (cuda cases skipped with the reason where no GPU is usable)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import wsc

# The test machine has 2 shared cores: the small models of the tests run much faster on one thread.
torch.set_num_threads(1)

from pipeline_fixtures import digits, digits_eval, mlp, trained_mlp  # noqa: E402,F401


def weights_like(n: int, seed: int = 0) -> np.ndarray:
    """Laplace-distributed float32 values with a few outliers, shaped like trained weights."""
    rng = np.random.default_rng(seed)
    x = rng.laplace(0.0, 0.05, size=n).astype(np.float32)
    if n >= 100:
        out = rng.choice(n, size=max(1, n // 10000), replace=False)
        x[out] *= 20
    return x


def as_dtype(x: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    """Tensor of x in ``dtype`` (values rounded to that dtype)."""
    return torch.from_numpy(x).to(dtype)


@pytest.fixture(params=[1, 2, 3], ids=lambda t: f"threads{t}")
def threads(request):
    wsc.set_num_threads(request.param)
    yield request.param
    wsc.set_num_threads(0)


def _cuda_reason() -> str | None:
    from wsc import _cuda

    return _cuda.unavailable_reason()


CUDA_REASON = _cuda_reason()
needs_cuda = pytest.mark.skipif(CUDA_REASON is not None, reason=f"no CUDA device: {CUDA_REASON}")

# Parametrise a test over devices: DEVICES = ["cpu", "cuda" (skipped without a usable GPU)].
DEVICES = ["cpu", pytest.param("cuda", marks=needs_cuda)]


@pytest.fixture(params=["cpu-threads1", "cpu-threads2", "cpu-threads3", pytest.param("cuda", marks=needs_cuda)])
def backend(request) -> str:
    """Device an oracle test runs on: the CPU kernels with 1, 2 and 3 threads, then CUDA."""
    if request.param.startswith("cpu"):
        wsc.set_num_threads(int(request.param[-1]))
        yield "cpu"
        wsc.set_num_threads(0)
    else:
        yield "cuda"


def on(x, device: str) -> torch.Tensor:
    """x (numpy array or tensor) as a tensor on ``device``."""
    t = torch.from_numpy(x) if isinstance(x, np.ndarray) else x
    return t.to(device)


def host(t) -> np.ndarray:
    """A kernel result as a numpy array (bfloat16 widened to float32)."""
    if isinstance(t, np.ndarray):
        return t
    t = t.cpu()
    return (t.float() if t.dtype == torch.bfloat16 else t).numpy()


def assert_sums_close(sums, x, indices, k: int, device: str = "cpu") -> np.ndarray:
    """Per-bin sums of bin_uniform against numpy's float64 ones (returned), within the kernels'
    bound, relative to the bin's sum of |x|: both sides add in float64 (at most count roundings of
    2^-53 each); where hot bins may be used (CPUs with AVX-512, k <= 4096) their elements are
    first added in float32 partials of at most 16 values (kHotPartial / 16 in
    csrc/cpu/bin_accumulate.h: at most 15 roundings of 2^-24, 16 allowed)."""
    hot = device == "cpu" and k <= 4096 and wsc._C._simd_supported() >= 2
    values = np.asarray(x, dtype=np.float64).ravel()
    bins = np.asarray(indices).ravel().astype(np.int64)
    want = np.bincount(bins, weights=values, minlength=k)
    magnitude = np.bincount(bins, weights=np.abs(values), minlength=k)
    count = np.bincount(bins, minlength=k)
    bound = magnitude * (16 * 2.0**-24 * hot + 2 * count * 2.0**-53)
    err = np.abs(np.asarray(sums, dtype=np.float64) - want)
    bad = np.flatnonzero(err > bound)
    assert bad.size == 0, f"{bad.size} bin sums beyond the bound, first bin {bad[0]}: " \
        f"{sums[bad[0]]!r} vs {want[bad[0]]!r} (bound {bound[bad[0]]:.3g})"
    return want
