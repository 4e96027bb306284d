"""Plain numpy versions of every native kernel: the oracles the tests compare against.

Inputs are numpy arrays (float16 is numpy's; bfloat16 callers pass float32 values that
are exactly representable in bfloat16). Slow and obvious on purpose.
"""

from __future__ import annotations

import numpy as np


def range(x: np.ndarray) -> tuple[float, float]:  # noqa: A001 - mirrors the kernel's name
    """(min, max) of x; ValueError on empty input or NaN/Inf."""
    x = np.asarray(x, dtype=np.float32).ravel()
    if x.size == 0:
        raise ValueError("x is empty")
    bad = ~np.isfinite(x)
    if bad.any():
        raise ValueError(f"x contains {int(bad.sum())} NaN/Inf value(s); first at {int(np.argmax(bad))}")
    return float(x.min()), float(x.max())


def bin_index(x: np.ndarray, lo: float, hi: float, k: int) -> np.ndarray:
    """The binning rule in float64: clamp(floor((x - lo) / ((hi - lo) / k)), 0, k - 1) as int64."""
    x64 = np.asarray(x, dtype=np.float32).astype(np.float64).ravel()
    lo64, hi64 = float(np.float32(lo)), float(np.float32(hi))
    width = (hi64 - lo64) / k
    if width == 0.0:
        return np.zeros(x64.shape, dtype=np.int64)
    t = np.floor((x64 - lo64) / width)
    return np.clip(t, 0, k - 1).astype(np.int64)


def bin_uniform(x: np.ndarray, k: int, lo: float, hi: float):
    """(indices uint8/uint16, counts int64[k], sums float64[k]) of k equal bins over [lo, hi]."""
    x = np.asarray(x)
    idx = bin_index(x, lo, hi, k)
    vals = x.astype(np.float64).ravel()
    counts = np.bincount(idx, minlength=k).astype(np.int64)
    sums = np.bincount(idx, weights=vals, minlength=k)
    itype = np.uint8 if k <= 256 else np.uint16
    return idx.astype(itype).reshape(x.shape), counts, sums


def gather(indices: np.ndarray, codebook: np.ndarray, dtype=np.float32) -> np.ndarray:
    """codebook[indices] (float32 codebook, result cast to ``dtype``)."""
    cb = np.asarray(codebook, dtype=np.float32)
    idx = np.asarray(indices)
    if idx.size and int(idx.max()) >= cb.size:
        raise ValueError("index >= codebook size")
    return cb[idx.astype(np.int64)].astype(dtype)


def share(x: np.ndarray, lo: float, hi: float, codebook: np.ndarray) -> np.ndarray:
    """codebook[bin(x)] with len(codebook) bins over [lo, hi], in x's dtype."""
    x = np.asarray(x)
    k = len(codebook)
    idx = bin_index(x, lo, hi, k).reshape(x.shape)
    return np.asarray(codebook, dtype=np.float32)[idx].astype(x.dtype)
