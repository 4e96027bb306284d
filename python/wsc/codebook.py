"""The single global codebook over all shared weights: uniform bins, bin means, merges.

Three ways to get the bins of any k, with the same interface (``lo``, ``hi``, ``n``,
``bins(k)``):

- :class:`SortedTensors` (what :class:`wsc.workbench.Workbench` uses up to
  ``SORT_LIMIT`` weights): the paper's incremental codebook, each tensor sorted once.
- :class:`WeightStream` (what the workbench uses above that): the weights stay
  where they are, tensor by tensor; each k costs one streaming pass of the native binning
  kernel in fixed blocks, O(N) time and O(block) memory. Compressing never needs a copy of
  all weights, so a model of 1e9 weights fits beside its working copy. The pass costs no
  more than applying a codebook to the model, which every evaluation does anyway.
- :class:`SortedWeights`: the weights sorted once (float32 values, float64 prefix sums,
  12 bytes per weight); the codebook of any k then costs O(k log N): the first value of
  each bin is found by binary search, and the bin sums are differences of prefix sums.
  Exact, and the oracle of the tests.

The counts agree exactly; the float64 sums agree up to rounding (summation order). The bin
boundaries follow exactly the rule
of the native kernel (``wsc.reference.bin_index``: in float64, ``width = (hi - lo) / k``
and ``bin = clamp(floor((x - lo) / width), 0, k - 1)``): the boundary of bin i is the
smallest float32 whose rule gives i or more, found by bisection over float32 bit patterns.

A :class:`Codebook` is one state of the method: the non-empty bins of a k-bin binning,
grouped into runs of neighbouring bins that share one value (the weighted mean of the
group). A fresh uniform codebook has one group per non-empty bin; a k-means codebook groups
the bins of a fine binning into its clusters; :meth:`Codebook.merge` joins two
neighbouring groups.
"""

from __future__ import annotations

import copy
import dataclasses
import heapq
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from wsc._arrays import check_bins, check_bounds
from wsc.scheme import KMEANS_BINS, PAPER, Scheme, lloyd_groups


def _bounds(source, lo, hi) -> tuple[float, float]:
    return (source.lo if lo is None else float(lo)), (source.hi if hi is None else float(hi))


def bin_rule(x: np.ndarray, lo: float, hi: float, k: int) -> np.ndarray:
    """The native binning rule on float32 values, as int64 (same as ``reference.bin_index``)."""
    lo64, width = float(np.float32(lo)), (float(np.float32(hi)) - float(np.float32(lo))) / k
    x64 = np.asarray(x, dtype=np.float32).astype(np.float64)
    if width == 0.0:
        return np.zeros(x64.shape, dtype=np.int64)
    return np.clip(np.floor((x64 - lo64) / width), 0, k - 1).astype(np.int64)


def _order_key(x: np.ndarray) -> np.ndarray:
    """uint64 keys that order float32 values like the values themselves (-0.0 just before +0.0)."""
    u = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return np.where(u & 0x80000000, 0xFFFFFFFF - u, u | 0x80000000)


def _from_key(key: np.ndarray) -> np.ndarray:
    u = np.where(key & 0x80000000, key & 0x7FFFFFFF, 0xFFFFFFFF - key)
    return u.astype(np.uint32).view(np.float32)


def bin_thresholds(lo: float, hi: float, k: int) -> np.ndarray:
    """float32[k - 1]: entry i - 1 is the smallest float32 that the rule puts in bin >= i.

    The rule is monotone in x, so the values in bin i are exactly [t_i, t_{i+1}). Found
    by bisection over the ordered float32 bit patterns between lo (bin 0) and hi (bin
    k - 1): at most 32 vectorised steps, exact whatever the rounding near the edges.
    """
    lo, hi = check_bounds(lo, hi)
    k = check_bins(k)
    if hi == lo:  # every value falls into bin 0
        return np.full(k - 1, np.inf, dtype=np.float32)
    i = np.arange(1, k, dtype=np.int64)
    a = np.full(k - 1, _order_key(np.float32(lo)), dtype=np.uint64)  # rule(a) < i
    b = np.full(k - 1, _order_key(np.float32(hi)), dtype=np.uint64)  # rule(b) >= i
    while True:
        open_ = b - a > 1
        if not open_.any():
            return _from_key(b)
        mid = a + (b - a) // 2
        ok = bin_rule(_from_key(mid), lo, hi, k) >= i
        b = np.where(open_ & ok, mid, b)
        a = np.where(open_ & ~ok, mid, a)


class SortedWeights:
    """Values sorted once, with float64 prefix sums: the bins of any k in O(k log N)."""

    def __init__(self, values: np.ndarray, lo: float | None = None, hi: float | None = None):
        v = np.sort(np.asarray(values, dtype=np.float32).ravel())
        if v.size == 0:
            raise ValueError("no values to share: the selection of shared tensors is empty")
        if not np.isfinite(v).all():
            raise ValueError("the shared weights contain NaN or Inf values")
        self.values = v
        self.prefix = np.zeros(v.size + 1, dtype=np.float64)
        np.cumsum(v, dtype=np.float64, out=self.prefix[1:])
        self.lo = float(v[0]) if lo is None else float(lo)
        self.hi = float(v[-1]) if hi is None else float(hi)

    @property
    def n(self) -> int:
        return int(self.values.size)

    def starts(self, k: int, lo: float | None = None, hi: float | None = None,
               thresholds: np.ndarray | None = None) -> np.ndarray:
        """int64[k + 1]: bin i holds sorted values [starts[i], starts[i + 1]) (bins over [lo, hi],
        default the values' own range; values outside fall into the end bins). ``thresholds``:
        ``bin_thresholds(lo, hi, k)`` when the caller has them."""
        if thresholds is None:
            thresholds = bin_thresholds(*_bounds(self, lo, hi), k)
        pos = np.searchsorted(self.values, thresholds, side="left")
        return np.concatenate(([0], pos, [self.n])).astype(np.int64)

    def bins(self, k: int, lo: float | None = None, hi: float | None = None,
             thresholds: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(counts int64[k], sums float64[k]) of the k uniform bins over [lo, hi]."""
        s = self.starts(k, lo, hi, thresholds)
        return np.diff(s), self.prefix[s[1:]] - self.prefix[s[:-1]]


class _RecentBins:
    """The bins of the last few (k, lo, hi) asked for (a merge asks for the same bins many
    times), computed by the subclass's ``_compute``; safe across threads."""

    RECENT = 4

    def _init_recent(self) -> None:
        self._recent: OrderedDict[tuple, tuple] = OrderedDict()
        self._lock = threading.Lock()

    def tensor_bins(self, k: int, lo: float | None = None,
                    hi: float | None = None) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
        """(per-tensor counts, counts int64[k], sums float64[k]) of the k uniform bins over
        [lo, hi] (default the weights' range)."""
        key = (k, *_bounds(self, lo, hi))
        with self._lock:
            if key not in self._recent:
                self._recent[key] = self._compute(*key)
                if len(self._recent) > self.RECENT:
                    self._recent.popitem(last=False)
            self._recent.move_to_end(key)
            return self._recent[key]

    def bins(self, k: int, lo: float | None = None, hi: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(counts int64[k], sums float64[k]) of the k uniform bins over [lo, hi]."""
        _, counts, sums = self.tensor_bins(k, lo, hi)
        return counts, sums


class WeightStream(_RecentBins):
    """Flat weight tensors as they are: the bins of any k by one streaming pass, no copy.

    ``tensors``: 1-D contiguous CPU float32/float16/bfloat16 tensors (never modified). Each
    pass bins fixed blocks of ``block`` values into one reused index buffer; the per-block
    float64 sums are added in tensor and block order, and the native kernel's own blocks
    depend on the block length and k only, so the sums are the same for any thread count.
    NaN or Inf raise ValueError naming the tensor.
    """

    BLOCK = 1 << 22

    def __init__(self, tensors: dict[str, torch.Tensor], block: int = BLOCK):
        from wsc import ops

        if not tensors:
            raise ValueError("no values to share: the selection of shared tensors is empty")
        self.tensors = dict(tensors)
        self.block = int(block)
        los, his = [], []
        for name, t in self.tensors.items():
            try:
                lo, hi = ops.range(t)
            except ValueError as exc:
                raise ValueError(f"{name!r}: {exc}") from None
            los.append(lo)
            his.append(hi)
        self.lo, self.hi = float(min(los)), float(max(his))
        self.n = sum(int(t.numel()) for t in self.tensors.values())
        self._init_recent()

    def _compute(self, k: int, lo: float, hi: float) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
        """One streaming pass of the native binning kernel."""
        from wsc import ops
        from wsc._arrays import index_dtype

        biggest = max(int(t.numel()) for t in self.tensors.values())
        buf = torch.empty(min(self.block, biggest), dtype=index_dtype(k))
        per, counts, sums = [], np.zeros(k, dtype=np.int64), np.zeros(k, dtype=np.float64)
        for t in self.tensors.values():
            tc = np.zeros(k, dtype=np.int64)
            for s in range(0, t.numel(), self.block):
                part = t[s:s + self.block]
                b = ops.bin_uniform(part, k, lo, hi, out=buf[:part.numel()])
                tc += b.counts.numpy()
                sums += b.sums.numpy()
            per.append(tc)
            counts += tc
        return per, counts, sums


class SortedTensors(_RecentBins):
    """The paper's incremental codebook, per tensor: each shared tensor sorted once (float32
    values, float64 prefix sums: 12 bytes per weight), then the bins of any k in O(T k log N)
    by binary search and prefix differences. Same interface as :class:`WeightStream`;
    :class:`wsc.workbench.Workbench` uses it up to ``SORT_LIMIT`` weights and streams above.
    """

    BLOCK = WeightStream.BLOCK

    def __init__(self, tensors: dict[str, torch.Tensor]):
        if not tensors:
            raise ValueError("no values to share: the selection of shared tensors is empty")
        self.block = self.BLOCK
        self.sorted: list[SortedWeights] = []
        for name, t in tensors.items():
            try:
                self.sorted.append(SortedWeights(t.float().numpy()))
            except ValueError as exc:
                raise ValueError(f"{name!r}: {exc}") from None
        self.lo = float(min(w.lo for w in self.sorted))
        self.hi = float(max(w.hi for w in self.sorted))
        for w in self.sorted:  # one range for all tensors: the global codebook's
            w.lo, w.hi = self.lo, self.hi
        self.n = sum(w.n for w in self.sorted)
        self._init_recent()

    @classmethod
    def of(cls, parts: list[SortedWeights]) -> "SortedTensors":
        """The tensors of ``parts`` (already sorted, shared, never changed) as one source, with
        their joint range."""
        self = cls.__new__(cls)
        self.block = cls.BLOCK
        self.sorted = [copy.copy(w) for w in parts]  # the range below is this source's own
        self.lo = float(min(w.values[0] for w in parts))
        self.hi = float(max(w.values[-1] for w in parts))
        for w in self.sorted:
            w.lo, w.hi = self.lo, self.hi
        self.n = sum(w.n for w in parts)
        self._init_recent()
        return self

    def _compute(self, k: int, lo: float, hi: float) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
        """Binary search in each sorted tensor, the thresholds found once for all."""
        thresholds = bin_thresholds(lo, hi, k)
        per, counts, sums = [], np.zeros(k, dtype=np.int64), np.zeros(k, dtype=np.float64)
        for w in self.sorted:
            c, sm = w.bins(k, thresholds=thresholds)
            per.append(c)
            counts += c
            sums += sm
        return per, counts, sums


@dataclass(frozen=True, eq=False)
class Codebook:
    """Non-empty bins of a k-bin uniform binning over [lo, hi], grouped into runs that share
    one value.

    ``bins``: ids (0..k-1, increasing) of the non-empty bins; ``counts``/``sums``: their
    weight counts and float64 sums; ``groups``: the start (an index into ``bins``) of
    each group, beginning with 0. ``scheme``: how the weights were mapped onto the bins
    (scope of the scale, clipping, placement: see :mod:`wsc.scheme`); ``target``: the
    number of values the scheme asked for (k for uniform bins, the clusters of k-means,
    whose codebook groups the fine bins of a k-means partition). ``compensation``: 0, weights
    take their bins' values; L >= 1, error-compensated assignment (:mod:`wsc.compensate`) with
    rate weight ``compensate.RATES[L - 1]``.
    """

    k: int
    lo: float
    hi: float
    bins: np.ndarray
    counts: np.ndarray
    sums: np.ndarray
    groups: tuple[int, ...]
    scheme: Scheme = PAPER
    target: int = 0
    merges: int = 0  # merge steps taken since the codebook was made
    compensation: int = 0

    @classmethod
    def uniform(cls, weights: SortedWeights, k: int, lo: float | None = None, hi: float | None = None,
                scheme: Scheme = PAPER) -> "Codebook":
        """The paper's codebook: k equal bins over [lo, hi] (default the weights' range; values
        outside fall into the end bins), one value per non-empty bin."""
        lo, hi = _bounds(weights, lo, hi)
        counts, sums = weights.bins(k, lo, hi)
        used = np.flatnonzero(counts)
        return cls(k, lo, hi, used, counts[used], sums[used], tuple(range(used.size)), scheme, k)

    @classmethod
    def kmeans(cls, weights: SortedWeights, clusters: int, lo: float | None = None, hi: float | None = None,
               scheme: Scheme = Scheme("kmeans"), fine: int = KMEANS_BINS) -> "Codebook":
        """k-means centres in O(N + iterations x fine): Lloyd's iterations on the histogram of
        ``fine`` uniform bins over [lo, hi] (each bin's weights move together; the centres
        are the weighted means of contiguous runs of bins)."""
        lo, hi = _bounds(weights, lo, hi)
        counts, sums = weights.bins(fine, lo, hi)
        used = np.flatnonzero(counts)
        c, sm = counts[used], sums[used]
        return cls(fine, lo, hi, used, c, sm, lloyd_groups(c, sm, clusters), scheme, clusters)

    @property
    def size(self) -> int:
        """Number of shared values."""
        return len(self.groups)

    @property
    def key(self) -> tuple:
        """Hashable identity of the configuration (equal keys give equal shared models)."""
        return (self.scheme.key, self.k, self.groups) + ((("gptq", self.compensation),) if self.compensation else ())

    @property
    def merged(self) -> bool:
        return self.merges > 0

    @property
    def compensated(self) -> bool:
        return self.compensation > 0

    @property
    def index_type(self) -> type:
        """numpy dtype of the indices into its values: uint8 up to 256 values, else uint16."""
        return np.uint8 if self.size <= 256 else np.uint16

    @cached_property
    def group_of_bin(self) -> np.ndarray:
        """int64[len(bins)]: the group of each non-empty bin."""
        g = np.zeros(len(self.bins), dtype=np.int64)
        g[list(self.groups[1:])] = 1
        return np.cumsum(g)

    @cached_property
    def group_counts(self) -> np.ndarray:
        return np.add.reduceat(self.counts, list(self.groups))

    @cached_property
    def values(self) -> np.ndarray:
        """float32[size]: each group's weighted mean (sum of its weights / their number)."""
        sums = np.add.reduceat(self.sums, list(self.groups))
        return (sums / self.group_counts).astype(np.float32)

    @cached_property
    def index_map(self) -> np.ndarray:
        """int64[k]: the codebook index of every bin (an empty bin takes a neighbour's)."""
        owner = np.searchsorted(self.bins, np.arange(self.k), side="left")
        owner = np.minimum(owner, len(self.bins) - 1)
        return self.group_of_bin[owner]

    def table(self) -> np.ndarray:
        """float32[k]: the shared value of every bin, for ``wsc.ops.share``."""
        return np.ascontiguousarray(self.values[self.index_map])

    def merge(self, j: int) -> "Codebook":
        """A new codebook with groups j and j + 1 joined (their value: the weighted mean)."""
        if not 0 <= j < self.size - 1:
            raise IndexError(f"cannot merge group {j} with its right neighbour: {self.size} groups")
        groups = self.groups[: j + 1] + self.groups[j + 2:]
        return Codebook(self.k, self.lo, self.hi, self.bins, self.counts, self.sums, groups, self.scheme,
                        self.target, self.merges + 1, self.compensation)

    def regroup(self, groups, merges: int = 0) -> "Codebook":
        """The same bins with other groups (starts into ``bins``, beginning with 0)."""
        return Codebook(self.k, self.lo, self.hi, self.bins, self.counts, self.sums, tuple(int(g) for g in groups),
                        self.scheme, self.target, merges, self.compensation)

    def compensate(self, level: int = 1) -> "Codebook":
        """The same values, taken by error-compensated assignment (:mod:`wsc.compensate`) at
        rate level ``level`` (1: plain GPTQ; 0: the bins again)."""
        from wsc.compensate import RATES

        if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= len(RATES):
            raise ValueError(f"level must be an int in [0, {len(RATES)}]; got {level!r}")
        return dataclasses.replace(self, compensation=level)

    def entropy(self) -> float:
        """Order-0 entropy of the bins' indices over all shared weights, in bits per weight."""
        return entropy_bits(self.group_counts)


def entropy_bits(counts: np.ndarray) -> float:
    """Order-0 entropy in bits per symbol of a histogram."""
    c = np.asarray(counts, dtype=np.float64)
    c = c[c > 0]
    if c.size <= 1:
        return 0.0
    p = c / c.sum()
    return float(-(p * np.log2(p)).sum())


def huffman_bits(counts: np.ndarray) -> int:
    """Payload bits of an (unlimited-length) Huffman code of a histogram; 1 bit per symbol if one symbol."""
    c = [int(v) for v in np.asarray(counts).ravel() if v > 0]
    if len(c) <= 1:
        return sum(c)
    heapq.heapify(c)
    total = 0
    while len(c) > 1:
        s = heapq.heappop(c) + heapq.heappop(c)
        total += s
        heapq.heappush(c, s)
    return total


__all__ = ["SortedWeights", "SortedTensors", "WeightStream", "Codebook", "bin_rule", "bin_thresholds", "entropy_bits", "huffman_bits"]
