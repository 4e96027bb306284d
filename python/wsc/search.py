"""NSGA-II over the number of bins k (and the scheme's integer choices), with an evaluation cache.

Decision variables: integers, each in its own inclusive range: the number of values k in
[k_min, k_max] (the paper's only variable) and, when the caller searches them, the
clipping level, the scheme and the step levels (:mod:`wsc.scheme`). Objectives (both minimised): the error
on the search split (1 - score; or the upper confidence bound of the drop) and the size
(number of shared values, or the coded size in bits). pymoo's NSGA-II with the paper's
defaults: integer random sampling, SBX crossover and polynomial mutation with rounding to
integers, duplicates eliminated. Every configuration is scored at most once (:class:`ScoreCache`), and the
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
    """Scores (whatever ``fn`` returns) keyed by configuration: each key is computed once,
    even across threads."""

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

    def get(self, key: Hashable, item):
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
            value = self._fn(key, item)
            with self._lock:
                self._scores[key] = value
        finally:
            with self._lock:
                del self._pending[key]
            event.set()
        return value

    def many(self, pairs: Sequence[tuple[Hashable, object]]) -> list:
        """Scores of (key, item) pairs, the missing ones in parallel when workers > 1."""
        if self._pool is None or len(pairs) < 2:
            return [self.get(k, it) for k, it in pairs]
        return list(self._pool.map(lambda p: self.get(*p), pairs))

    def snapshot(self) -> dict:
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

    evaluated: dict[tuple[int, ...], tuple[float, float]]  # configuration -> (error, size)
    front: list[tuple[int, ...]]  # the non-dominated configurations, by increasing size
    history: list[dict]


Config = tuple[int, ...]


class _IntProblem(Problem):
    def __init__(self, space: Sequence[tuple[int, int]], objectives: Callable[[list[Config]], list]):
        super().__init__(n_var=len(space), n_obj=2, xl=np.array([a for a, _ in space]),
                         xu=np.array([b for _, b in space]), vtype=int)
        self._objectives = objectives

    def _evaluate(self, x, out, *args, **kwargs):
        configs = [tuple(int(round(v)) for v in row) for row in np.asarray(x, dtype=float)]
        out["F"] = np.asarray(self._objectives(configs), dtype=float)


def _recording(objectives, evaluated: dict):
    """Ask ``objectives`` only for configurations not seen before (pymoo proposes old ones
    again in later generations: it eliminates duplicates within a population only)."""
    def f(configs: list[Config]) -> list[tuple[float, float]]:
        new = list(dict.fromkeys(c for c in configs if c not in evaluated))
        for c, v in zip(new, objectives(new) if new else []):
            evaluated[c] = tuple(map(float, v))
        return [evaluated[c] for c in configs]
    return f


class _Sampling(IntegerRandomSampling):
    """Integer random sampling, except that the first half of the samples have the variables
    ``low`` at their lower bound (step levels and the GPTQ rate level: half the first
    population as the paper's)."""

    def __init__(self, low: Sequence[int]):
        super().__init__()
        self._low = list(low)

    def _do(self, problem, n_samples: int, *args, random_state=None, **kwargs) -> np.ndarray:
        x = super()._do(problem, n_samples, *args, random_state=random_state, **kwargs)
        if self._low:
            x[: n_samples // 2, self._low] = np.asarray(problem.bounds()[0])[self._low]
        return x


class _Progress(Callback):
    def __init__(self, report):
        super().__init__()
        self._report = report

    def notify(self, algorithm):
        self._report(int(algorithm.n_gen))


def run(objectives: Callable[[list[Config]], list[tuple[float, float]]], *, space: Sequence[tuple[int, int]],
        pop_size: int, generations: int, seed: int,
        on_generation: Callable[[dict], None] | None = None, zero_half: Sequence[int] = ()) -> SearchOutcome:
    """NSGA-II over integer configurations, variable i in the inclusive range ``space[i]``;
    ``objectives(configs)`` returns (error, size) for each configuration (the caller caches).
    ``zero_half``: variables at their lower bound in the first half of the first population."""
    space = [(int(a), int(b)) for a, b in space]
    free = [i for i, (a, b) in enumerate(space) if a < b]  # variables fixed to one value are not searched
    fixed = tuple(a for a, _ in space)
    history: list[dict] = []
    evaluated: dict[Config, tuple[float, float]] = {}
    recorded = _recording(objectives, evaluated)

    def full(partial: list[Config]) -> list[Config]:
        out = []
        for p in partial:
            c = list(fixed)
            for i, v in zip(free, p):
                c[i] = v
            out.append(tuple(c))
        return out

    def objectives(partial: list[Config]) -> list[tuple[float, float]]:
        return recorded(full(partial))

    def report(gen: int) -> None:
        pts = list(evaluated.values())
        front = non_dominated(pts)
        entry = {"generation": gen, "generations": generations, "evaluations": len(evaluated),
                 "best_error": min(p[0] for p in pts), "front_size": len(front)}
        history.append(entry)
        if on_generation is not None:
            on_generation(entry)

    if not free:  # nothing to search
        recorded([fixed])
        report(1)
    else:
        algorithm = NSGA2(
            pop_size=pop_size,
            sampling=_Sampling([free.index(i) for i in zero_half if i in free]),
            crossover=SBX(prob=1.0, eta=3.0, vtype=float, repair=RoundingRepair()),
            mutation=PM(prob=1.0, eta=3.0, vtype=float, repair=RoundingRepair()),
            eliminate_duplicates=True,
        )
        minimize(_IntProblem([space[i] for i in free], objectives), algorithm, ("n_gen", generations), seed=seed,
                 callback=_Progress(report), verbose=False, save_history=False)
    configs = sorted(evaluated)
    front = [configs[i] for i in non_dominated([evaluated[c] for c in configs])]
    return SearchOutcome(evaluated, front, history)


__all__ = ["ScoreCache", "non_dominated", "SearchOutcome", "run"]
