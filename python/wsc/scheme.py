"""How weights map onto a codebook: scope of the scale, clipping, and where the values sit.

A :class:`Scheme` is the part of a configuration beyond the number of values:

- ``scope``: ``"global"`` (the paper: one codebook over the raw weights of every layer),
  ``"tensor"`` or ``"channel"`` (one codebook over weights divided by a scale per tensor,
  or per slice along dimension 0 — the output channel of Conv/Linear, the row of an
  Embedding; the scales are stored in the file, as bfloat16, and counted in its size);
- ``clip``: the fraction of the range kept, ``2 ** (-clip / 4)`` (0: all of it, 16: a
  sixteenth); values beyond are clamped into the end bins (whose means they join);
- ``placement``: ``"uniform"`` (k equal bins, the paper) or ``"kmeans"`` (the k-means
  centres of the weights, by Lloyd's iterations on a fine histogram: O(N + iterations x
  histogram), no pass over the weights per iteration);
- ``steps``: per group of shared tensors (:func:`step_groups`), a coarsening level j: the
  group's weights are divided by ``2 ** (j / 2)`` before binning (and the values multiplied
  back, by a stored scale), so the same codebook gives that group fewer, wider bins: the
  search spends bits where accuracy needs them (empty: every level 0, the paper's).

``wsc.compress(codebook=...)`` names the schemes the search may use: ``"uniform"`` (the
paper's), ``"normalized"`` (uniform bins over per-tensor or per-channel normalised
weights, ``scale=``), ``"kmeans"`` (global k-means) or ``"auto"`` (all of them: the search
chooses).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

SCOPES = ("global", "tensor", "channel")
PLACEMENTS = ("uniform", "kmeans")
CODEBOOKS = ("uniform", "normalized", "kmeans", "auto")
SCALES = ("tensor", "channel")
CLIP_STEPS = 4  # clip levels per halving of the range
CLIP_MAX = 16  # the narrowest range kept: 2 ** (-16 / 4) = 1/16 of the full one
STEP_MAX = 4  # the coarsest step level: bins 2 ** (4 / 2) = 4 times wider
STEP_GROUPS = 16  # at most this many step levels (consecutive shared tensors share one beyond)
KMEANS_BINS = 65536  # bins of the histogram k-means iterates on
LLOYD_ITERATIONS = 2000  # converges long before on weight histograms (stops when stable)


@dataclass(frozen=True)
class Scheme:
    """Scope of the scale, clipping level and placement of the values (see the module doc)."""

    placement: str = "uniform"
    scope: str = "global"
    clip: int = 0
    steps: tuple[int, ...] = ()

    def __post_init__(self):
        if self.placement not in PLACEMENTS:
            raise ValueError(f"placement must be one of {PLACEMENTS}; got {self.placement!r}")
        if self.scope not in SCOPES:
            raise ValueError(f"scope must be one of {SCOPES}; got {self.scope!r}")
        if isinstance(self.clip, bool) or not isinstance(self.clip, int) or not 0 <= self.clip <= CLIP_MAX:
            raise ValueError(f"clip must be an int in [0, {CLIP_MAX}]; got {self.clip!r}")
        ok = isinstance(self.steps, tuple) and len(self.steps) <= STEP_GROUPS and all(
            isinstance(j, int) and not isinstance(j, bool) and 0 <= j <= STEP_MAX for j in self.steps)
        if not ok:
            raise ValueError(f"steps must be a tuple of at most {STEP_GROUPS} ints in [0, {STEP_MAX}]; "
                             f"got {self.steps!r}")
        if not any(self.steps):  # all level 0: the same scheme as no steps
            object.__setattr__(self, "steps", ())

    @property
    def fraction(self) -> float:
        """The fraction of the range the bins cover."""
        return 2.0 ** (-self.clip / CLIP_STEPS)

    @property
    def key(self) -> tuple:
        base = (self.placement, self.scope, self.clip)
        return base + (self.steps,) if self.steps else base

    def describe(self) -> dict:
        d = {"placement": self.placement, "scope": self.scope, "clip": self.clip, "range_kept": self.fraction}
        if self.steps:
            d["steps"] = list(self.steps)
        return d


PAPER = Scheme()


def check_codebook(codebook, scale) -> list[tuple[str, str]]:
    """The (placement, scope) pairs the search may use for ``codebook=`` (a name of
    ``CODEBOOKS`` or a list of them) and ``scale=``."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}; got {scale!r}")
    names = list(codebook) if isinstance(codebook, (list, tuple)) else [codebook]
    kinds: list[tuple[str, str]] = []
    for name in names:
        if name not in CODEBOOKS:
            raise ValueError(f"codebook must be one of {CODEBOOKS} or a list of them; got {codebook!r}")
        kinds += {"uniform": [("uniform", "global")], "normalized": [("uniform", scale)],
                  "kmeans": [("kmeans", "global")],
                  "auto": [(p, s) for s in SCOPES for p in PLACEMENTS]}[name]
    if not kinds:
        raise ValueError("codebook must name at least one kind of codebook")
    return list(dict.fromkeys(kinds))


def step_multiplier(level: int) -> float:
    """How many times wider the bins of a step level are."""
    return 2.0 ** (level / 2)


def step_groups(n: int) -> list[int]:
    """The step group of each of ``n`` shared tensors, in order: one group each up to
    STEP_GROUPS tensors, else STEP_GROUPS runs of consecutive tensors of (nearly) equal count."""
    return [i * min(n, STEP_GROUPS) // n for i in range(n)]


def clip_range(lo: float, hi: float, fraction: float) -> tuple[float, float]:
    """[lo, hi] shrunk to ``fraction`` of its width, about 0 when it holds 0 (weights do),
    else about its middle; float32 bounds, as the binning kernel reads them."""
    if fraction >= 1.0:
        return lo, hi
    centre = 0.0 if lo <= 0.0 <= hi else (lo + hi) / 2
    a = float(np.float32(centre + (lo - centre) * fraction))
    b = float(np.float32(centre + (hi - centre) * fraction))
    return (a, b) if a < b else (lo, hi)


def lloyd_groups(counts: np.ndarray, sums: np.ndarray, clusters: int,
                 iterations: int = LLOYD_ITERATIONS) -> tuple[int, ...]:
    """k-means on a histogram: group starts (indices into the bins, from 0) of at most
    ``clusters`` contiguous runs of bins.

    ``counts``/``sums``: weights and their sum per (non-empty, ordered) bin. Lloyd's
    iterations put every bin in the group of the nearest centre (boundaries at the midpoints
    between centres, by binary search over the bin means) and recompute the centres from
    prefix sums: O(clusters log bins) per iteration, until the groups no longer change. Run
    from two starts, equal-count groups (dense regions) and a greedy division (the group with
    the largest gain split at its best point, k - 1 times: tails and outliers get their own
    groups); the one with the smaller squared error wins. Groups left empty are dropped.
    """
    n = int(counts.size)
    if clusters >= n:
        return tuple(range(n))
    cc = np.concatenate(([0], np.cumsum(counts, dtype=np.int64)))
    cs = np.concatenate(([0.0], np.cumsum(sums, dtype=np.float64)))
    means = sums / counts
    cq = np.concatenate(([0.0], np.cumsum(sums * means, dtype=np.float64)))
    quantiles = np.searchsorted(cc[1:], np.arange(1, clusters) * (cc[-1] / clusters), side="right")
    best, best_err = None, np.inf
    for cuts in (quantiles, _divisive(cc, cs, cq, clusters)):
        starts = _lloyd(_starts(cuts, n), means, cc, cs, iterations)
        ends = np.append(starts[1:], n)
        centres = (cs[ends] - cs[starts]) / (cc[ends] - cc[starts])
        err = float((counts * (means - np.repeat(centres, ends - starts)) ** 2).sum())  # + a constant
        if err < best_err:
            best, best_err = starts, err
    return tuple(int(s) for s in best)


def _divisive(cc: np.ndarray, cs: np.ndarray, cq: np.ndarray, clusters: int) -> np.ndarray:
    """Group starts of a greedy division: split the group whose best split lowers the squared
    error most, until there are ``clusters`` groups (or no split helps)."""
    def sse(a, b):  # of bins [a, b), from prefix sums of counts, sums and sums x means
        return (cq[b] - cq[a]) - (cs[b] - cs[a]) ** 2 / (cc[b] - cc[a])

    def best_split(a, b):
        if b - a < 2:
            return 0.0, a
        j = np.arange(a + 1, b)
        cost = sse(a, j) + sse(j, b)
        i = int(np.argmin(cost))
        return float(sse(a, b) - cost[i]), int(j[i])

    n = cc.size - 1
    heap = [(-best_split(0, n)[0], 0, n)]
    cuts = []
    while heap and len(cuts) < clusters - 1:
        gain, a, b = heapq.heappop(heap)
        if -gain <= 0:
            break
        j = best_split(a, b)[1]
        cuts.append(j)
        heapq.heappush(heap, (-best_split(a, j)[0], a, j))
        heapq.heappush(heap, (-best_split(j, b)[0], j, b))
    return np.array(sorted(cuts), dtype=np.int64)


def _lloyd(starts: np.ndarray, means: np.ndarray, cc: np.ndarray, cs: np.ndarray, iterations: int) -> np.ndarray:
    n = means.size
    for _ in range(iterations):
        ends = np.append(starts[1:], n)
        centres = (cs[ends] - cs[starts]) / (cc[ends] - cc[starts])
        new = _starts(np.searchsorted(means, (centres[1:] + centres[:-1]) / 2, side="right"), n)
        if np.array_equal(new, starts):
            break
        starts = new
    return starts


def _starts(cuts: np.ndarray, n: int) -> np.ndarray:
    """Sorted distinct group starts from 0, inside [0, n)."""
    s = np.unique(np.concatenate(([0], cuts)))
    return s[s < n].astype(np.int64)


__all__ = ["Scheme", "PAPER", "SCOPES", "PLACEMENTS", "CODEBOOKS", "SCALES", "CLIP_MAX", "STEP_MAX",
           "STEP_GROUPS", "KMEANS_BINS", "check_codebook", "step_multiplier", "step_groups", "clip_range",
           "lloyd_groups"]
