"""What ``wsc.compress`` returns: the Pareto fronts, measured solutions, save/plot/JSON."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from wsc import container
from wsc.codebook import Codebook


def keeps_bar(score: float, bound: float, baseline: float, tolerance: float, confidence: float | None) -> bool:
    """Whether a candidate scored ``score`` with drop bound ``bound`` on a split keeps the bar:
    the bound within ``tolerance`` (with a confidence level), else the score within
    ``tolerance`` of the uncompressed model's ``baseline`` there; NaN never does."""
    return bound <= tolerance if confidence is not None else score >= baseline - tolerance


@dataclass(frozen=True)
class Solution:
    """One configuration, scored and measured.

    ``bits_per_weight``: payload bits per shared weight with the coder the file uses
    (``coder``: ``"huffman"``, ``"rans"`` or ``"huffman+rans"`` when ``coder="auto"`` mixed
    them); ``entropy_bits``: the order-0 entropy of the indices of all shared weights together
    (bits per weight; each tensor has its own code, so the payload can come slightly below
    it); ``file_bytes``: exact size of the .wsc file this solution writes; ``ratio``: original
    bytes of every tensor the file holds / ``file_bytes`` (honest); ``paper_style_ratio``: 32 /
    ``bits_per_weight`` (the paper's figure: ignores the codebook, code tables and unshared
    tensors).
    """

    k: int
    values: int
    merged: bool
    search_score: float
    heldout_score: float
    size: float  # the second objective (values or coded bits)
    bits_per_weight: float
    entropy_bits: float
    file_bytes: int
    ratio: float
    paper_style_ratio: float
    codebook: Codebook = field(repr=False, compare=False)
    coder: str = "huffman"
    search_bound: float = math.nan
    # on the evaluator's selection split, for the solutions within the bar on the search
    # split when it has one (else NaN): the score and the drop bound (or point drop)
    select_score: float = math.nan
    select_bound: float = math.nan

    @property
    def search_error(self) -> float:
        return 1.0 - self.search_score

    @property
    def scheme(self):
        return self.codebook.scheme

    @property
    def compensated(self) -> bool:
        """Whether Linear / Conv weights take their values by GPTQ error compensation."""
        return self.codebook.compensated

    def to_dict(self) -> dict:
        d = {f: getattr(self, f) for f in self.__dataclass_fields__ if f != "codebook"
             and not (f.startswith("select_") and math.isnan(getattr(self, f)))}
        d["scheme"] = self.scheme.describe()
        d["compensated"] = self.compensated
        if self.merged:  # first bin of every group: enough to rebuild the merged codebook
            d["group_first_bins"] = [int(self.codebook.bins[g]) for g in self.codebook.groups]
        return d


@dataclass
class CompressionResult:
    """Baseline scores, the fronts before and after merging (and compensated, with
    calibration data), and how much it cost."""

    baseline_search: float
    baseline_heldout: float
    front_before: list[Solution]
    front_after: list[Solution]
    evaluations: int  # distinct configurations scored on the search split
    heldout_evaluations: int
    wall_time: float
    tolerance: float
    n_shared: int
    original_bytes: int
    settings: dict[str, Any]
    evaluator: dict[str, Any]
    history: list[dict] = field(default_factory=list)
    _bench: Any = field(default=None, repr=False)
    front_compensated: list[Solution] = field(default_factory=list)

    @property
    def front(self) -> list[Solution]:
        """The final front (after merging when merging ran), and its compensated solutions."""
        return (self.front_after or self.front_before) + self.front_compensated

    @property
    def confidence(self) -> float | None:
        return self.settings.get("confidence")

    @property
    def selects(self) -> bool:
        """Whether the evaluator had a selection split (its scores are in the solutions)."""
        return "select_evaluations" in self.settings

    def within(self, s: Solution, tolerance: float | None = None, select: bool = True) -> bool:
        """Whether ``s`` keeps the bar on the search split: its drop bound (with a confidence
        level), else its search score, within ``tolerance`` of the uncompressed model's; and,
        when the evaluator has a selection split (unless ``select=False``), the same there.
        Only the solutions within the run's own tolerance were scored there: a larger
        ``tolerance`` cannot admit the others."""
        tol = self.tolerance if tolerance is None else tolerance
        if select and self.selects and not keeps_bar(s.select_score, s.select_bound, self.settings["select_baseline"],
                                                     tol, self.confidence):  # NaN (not scored) fails
            return False
        return keeps_bar(s.search_score, s.search_bound, self.baseline_search, tol, self.confidence)

    def choose(self, tolerance: float | None = None, select: bool = True) -> Solution:
        """The smallest file that keeps the bar (:meth:`within`): on the search split, and on
        the selection split when the evaluator has one, unless ``select=False`` (the held-out
        split never decides). If no solution qualifies: of those scored on the selection
        split, the one with the least drop there; else the best-scoring one on the search split."""
        ok = [s for s in self.front if self.within(s, tolerance, select)]
        if ok:
            return min(ok, key=lambda s: (s.file_bytes, -s.search_score, s.values))
        scored = [s for s in self.front if not math.isnan(s.select_bound)] if select and self.selects else []
        if scored:
            return min(scored, key=lambda s: (s.select_bound, s.file_bytes))
        if self.confidence is not None:
            return min(self.front, key=lambda s: (s.search_bound, s.file_bytes))
        return max(self.front, key=lambda s: (s.search_score, -s.file_bytes))

    def payload(self, solution: Solution) -> container.Payload:
        return self._bench.payload(solution.codebook, solution_info(solution, self.settings))

    def save(self, path, solution: Solution | None = None) -> Solution:
        """Write ``solution`` (default: :meth:`choose`) as a .wsc file; returns the solution."""
        if self._bench is None:
            raise RuntimeError("this result no longer holds the model's weights; it cannot save")
        sol = self.choose() if solution is None else solution
        size = container.write(path, self.payload(sol), coder=self.settings.get("coder", "huffman"))
        if size != sol.file_bytes:  # pragma: no cover - serialisation is deterministic
            raise RuntimeError(f"wrote {size} bytes, the report says {sol.file_bytes}")
        return sol

    def to_dict(self) -> dict:
        chosen = self.choose()
        return {
            "baseline": {"search": self.baseline_search, "heldout": self.baseline_heldout},
            "evaluator": self.evaluator,
            "settings": self.settings,
            "shared_weights": self.n_shared,
            "original_bytes": self.original_bytes,
            "evaluations": self.evaluations,
            "heldout_evaluations": self.heldout_evaluations,
            "wall_time_s": self.wall_time,
            "front_before_merge": [s.to_dict() for s in self.front_before],
            "front_after_merge": [s.to_dict() for s in self.front_after],
            "front_compensated": [s.to_dict() for s in self.front_compensated],
            "chosen": {**chosen.to_dict(), "tolerance": self.tolerance, "confidence": self.confidence,
                       "within_tolerance": self.within(chosen),
                       "heldout_drop": self.baseline_heldout - chosen.heldout_score,
                       "heldout_kept_bar": self.baseline_heldout - chosen.heldout_score <= self.tolerance},
            "history": self.history,
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, default=_jsonable)

    def plot(self, path) -> None:
        """Size (shared values) against error, fronts before and after merging (PNG/SVG/PDF by suffix)."""
        from wsc.plot import plot_fronts

        plot_fronts(self, path)


def solution_info(s: Solution, settings: dict) -> dict:
    """The method's parameters recorded in the file (no scores: the file depends on the configuration only)."""
    info = {"k": s.k, "lo": s.codebook.lo, "hi": s.codebook.hi, "values": s.values, "merged": s.merged,
            "params": settings.get("params")}
    if s.scheme.key != ("uniform", "global", 0):
        info["scheme"] = s.scheme.describe()
    if s.compensated:
        from wsc.compensate import RATES

        info["compensated"] = {"method": "gptq", "rate": RATES[s.codebook.compensation - 1]}
    if settings.get("nan", "error") != "error":  # NaN/Inf were replaced by 0 or left unshared
        info["nan"] = settings["nan"]
    return info


def _jsonable(o):
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, float) and not math.isfinite(o):
        return None
    return str(o)


__all__ = ["Solution", "CompressionResult", "solution_info"]
