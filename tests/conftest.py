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
