"""Shared fixtures: weight-like data and a thread-count switch that restores the default."""

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
