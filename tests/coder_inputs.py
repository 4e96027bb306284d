"""Index streams for the entropy-coder tests (test_huffman, test_rans, test_coders)."""

from __future__ import annotations

import numpy as np


def probabilities(k: int, kind: str) -> np.ndarray:
    """'uniform', 'skewed' (Laplace-like bins around the middle), 'zipf', 'dominant90',
    'dominant99' and 'dominant999' (one bin holds 90% / 99% / 99.9%, the rest decays
    geometrically away from it), 'flat90' and 'flat99' (one bin holds 90% / 99%, the rest
    share the remainder evenly)."""
    a = np.arange(k, dtype=np.float64)
    if kind == "uniform":
        w = np.ones(k)
    elif kind == "skewed":
        w = np.exp(-np.abs(a - (k - 1) / 2) / max(k / 12, 0.3))
    elif kind == "zipf":
        w = 1.0 / (a + 1) ** 1.2
    else:
        top = {"90": 0.9, "99": 0.99, "999": 0.999}[kind.removeprefix("dominant").removeprefix("flat")]
        centre = k // 3
        w = np.exp(-np.abs(a - centre) / max(k / 40, 0.7)) if kind.startswith("dominant") else np.ones(k)
        w[centre] = 0
        w = (1 - top) * w / w.sum() if k > 1 else w
        w[centre] = top
    return w / w.sum()


def symbols(k: int, n: int, kind: str, seed: int = 0) -> np.ndarray:
    """n indices < k (uint8 for k <= 256, else uint16) drawn from probabilities(k, kind), or
    all k // 2 for kind 'one'."""
    rng = np.random.default_rng(seed)
    dtype = np.uint8 if k <= 256 else np.uint16
    if kind == "one":
        return np.full(n, k // 2, dtype=dtype)
    return rng.choice(k, size=n, p=probabilities(k, kind)).astype(dtype)
