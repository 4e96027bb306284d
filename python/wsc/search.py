"""NSGA-II over the number of bins k, with an evaluation cache.

Decision variable: the integer k in [k_min, k_max]. Objectives (both minimised): the
error on the search split (1 - score) and the size (number of shared values, or the
coded size in bits). pymoo's NSGA-II with the paper's defaults: integer random
sampling, SBX crossover and polynomial mutation with rounding to integers, duplicates
eliminated. Every configuration is scored at most once (:class:`ScoreCache`), and the
front returned is the non-dominated set of *all* configurations evaluated during the
run (never worse than the final population's front).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Hashable, Sequence

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.callback import Callback
from pymoo.core.problem import Problem
from pymoo.operators.crossover.sbx import SBX
from pymoo.operators.mutation.pm import PM
from pymoo.operators.repair.rounding import RoundingRepair
from pymoo.operators.sampling.rnd import IntegerRandomSampling
from pymoo.optimize import minimize


class ScoreCache:
    """Scores keyed by configuration: each key is computed once, even across threads."""

    def __init__(self, fn: Callable[[Hashable, object], float], workers: int = 1,
                 known: dict[Hashable, float] | None = None):
        self._fn = fn
        self._scores: dict[Hashable, float] = dict(known or {})
        self.preloaded = len(self._scores)
        self._pending: dict[Hashable, threading.Event] = {}
        self._lock = threading.Lock()
        self.workers = workers
        self._pool = ThreadPoolExecutor(workers) if workers > 1 else None

    def __len__(self) -> int:
        return len(self._scores)

    def __contains__(self, key) -> bool:
        return key in self._scores

    def get(self, key: Hashable, item) -> float:
        with self._lock:
            if key in self._scores:
                return self._scores[key]
            event = self._pending.get(key)
            owner = event is None
            if owner:
                event = self._pending[key] = threading.Event()
        if not owner:
            event.wait()
            if key in self._scores:
                return self._scores[key]
            return self.get(key, item)  # the owner failed: try again here (and raise here)
        try:
            value = float(self._fn(key, item))
            with self._lock:
                self._scores[key] = value
        finally:
            with self._lock:
                del self._pending[key]
            event.set()
        return value

    def many(self, pairs: Sequence[tuple[Hashable, object]]) -> list[float]:
        """Scores of (key, item) pairs, the missing ones in parallel when workers > 1."""
        if self._pool is None or len(pairs) < 2:
            return [self.get(k, it) for k, it in pairs]
        return list(self._pool.map(lambda p: self.get(*p), pairs))

    def snapshot(self) -> dict[Hashable, float]:
        """A copy of every score so far (safe while other threads score)."""
        with self._lock:
            return dict(self._scores)

    def close(self, cancel: bool = False) -> None:
        """Stop the worker threads; ``cancel``: drop queued work (running evaluations finish)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=cancel)


def non_dominated(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point dominates (both coordinates minimised).

    Of several identical points only the first is kept. Returned in increasing order of
    the second coordinate.
    """
    order = sorted(range(len(points)), key=lambda i: (points[i][1], points[i][0], i))
    keep, best = [], float("inf")
    for i in order:
        if points[i][0] < best:
            keep.append(i)
            best = points[i][0]
    return keep


@dataclass
class SearchOutcome:
    """All configurations evaluated, the non-dominated ones, and per-generation history."""

    evaluated: dict[int, tuple[float, float]]  # k -> (error, size)
    front: list[int]  # the k of the non-dominated configurations, by increasing size
    history: list[dict]


class _KProblem(Problem):
    def __init__(self, k_min: int, k_max: int, objectives: Callable[[list[int]], list[tuple[float, float]]]):
        super().__init__(n_var=1, n_obj=2, xl=k_min, xu=k_max, vtype=int)
        self._objectives = objectives

    def _evaluate(self, x, out, *args, **kwargs):
        ks = [int(round(v)) for v in np.asarray(x, dtype=float)[:, 0]]
        out["F"] = np.asarray(self._objectives(ks), dtype=float)


def _recording(objectives, evaluated: dict):
    """Ask ``objectives`` only for the k not seen before (pymoo proposes old k again in later
    generations: it eliminates duplicates within a population only)."""
    def f(ks: list[int]) -> list[tuple[float, float]]:
        new = list(dict.fromkeys(k for k in ks if k not in evaluated))
        for k, v in zip(new, objectives(new) if new else []):
            evaluated[k] = tuple(map(float, v))
        return [evaluated[k] for k in ks]
    return f


class _Progress(Callback):
    def __init__(self, report):
        super().__init__()
        self._report = report

    def notify(self, algorithm):
        self._report(int(algorithm.n_gen))


def run(objectives: Callable[[list[int]], list[tuple[float, float]]], *, k_range: tuple[int, int],
        pop_size: int, generations: int, seed: int,
        on_generation: Callable[[dict], None] | None = None) -> SearchOutcome:
    """NSGA-II over k; ``objectives(ks)`` returns (error, size) for each k (the caller caches)."""
    k_min, k_max = k_range
    history: list[dict] = []
    evaluated: dict[int, tuple[float, float]] = {}
    objectives = _recording(objectives, evaluated)

    def report(gen: int) -> None:
        pts = list(evaluated.values())
        front = non_dominated(pts)
        entry = {"generation": gen, "generations": generations, "evaluations": len(evaluated),
                 "best_error": min(p[0] for p in pts), "front_size": len(front)}
        history.append(entry)
        if on_generation is not None:
            on_generation(entry)

    if k_min == k_max:  # nothing to search
        objectives([k_min])
        report(1)
    else:
        algorithm = NSGA2(
            pop_size=pop_size,
            sampling=IntegerRandomSampling(),
            crossover=SBX(prob=1.0, eta=3.0, vtype=float, repair=RoundingRepair()),
            mutation=PM(prob=1.0, eta=3.0, vtype=float, repair=RoundingRepair()),
            eliminate_duplicates=True,
        )
        minimize(_KProblem(k_min, k_max, objectives), algorithm, ("n_gen", generations), seed=seed,
                 callback=_Progress(report), verbose=False, save_history=False)
    ks = sorted(evaluated)
    front = [ks[i] for i in non_dominated([evaluated[k] for k in ks])]
    return SearchOutcome(evaluated, front, history)


__all__ = ["ScoreCache", "non_dominated", "SearchOutcome", "run"]
