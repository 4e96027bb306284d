"""NSGA-II over k: non-dominated fronts, reproducible, every configuration scored once."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

import wsc
from wsc.search import ScoreCache, non_dominated, run


def test_non_dominated():
    pts = [(0.5, 1), (0.4, 2), (0.45, 3), (0.1, 5), (0.1, 5), (0.1, 6), (0.6, 1)]
    keep = non_dominated(pts)
    assert keep == [0, 1, 3]
    for i in keep:
        assert not any(p[0] <= pts[i][0] and p[1] <= pts[i][1] and p != pts[i] for p in pts)


def _toy(calls: Counter):
    def objectives(configs):
        out = []
        for (k,) in configs:
            calls[k] += 1
            out.append((1.0 / k + (0.05 if k % 7 == 0 else 0.0), float(k)))
        return out
    return objectives


def test_search_is_seeded_and_records_every_k_once():
    fronts = []
    for _ in range(2):
        calls = Counter()
        out = run(_toy(calls), space=[(2, 200)], pop_size=12, generations=6, seed=5)
        assert max(calls.values()) == 1  # pymoo proposes old k again; run() never asks twice
        assert len(out.history) == 6 and out.history[-1]["evaluations"] == len(out.evaluated)
        assert set(out.front) <= set(out.evaluated)
        fronts.append(out.front)
    assert fronts[0] == fronts[1]
    assert run(_toy(Counter()), space=[(9, 9)], pop_size=4, generations=3, seed=0).front == [(9,)]


def test_zero_half_starts_half_the_population_at_the_lower_bound():
    seen = []

    def objectives(configs):
        seen.extend(configs)
        return [(1.0 / k + 0.01 * j, float(k)) for k, j in configs]

    run(objectives, space=[(2, 5000), (0, 4)], pop_size=20, generations=1, seed=3, zero_half=[1])
    first = seen[:20]
    assert sum(j == 0 for _, j in first) >= 10 and any(j > 0 for _, j in first)


def test_compress_searches_step_levels_unless_told_not_to(mlp, digits_eval):
    for steps in (False, True):
        r = wsc.compress(mlp, digits_eval, k_range=(2, 24), pop_size=8, generations=2, seed=0, progress=False,
                         steps=steps, merge=False)
        assert r.settings["steps"] is steps
        if not steps:
            assert all(not s.scheme.steps for s in r.front)
    with pytest.raises(TypeError, match="steps must be a bool"):
        wsc.compress(mlp, digits_eval, steps="yes")


def test_score_cache_computes_each_key_once_across_threads():
    calls = Counter()
    lock = threading.Lock()

    def fn(key, item):
        with lock:
            calls[key] += 1
        return key * 0.1

    cache = ScoreCache(fn, workers=4)
    try:
        scores = cache.many([(k % 5, None) for k in range(40)])
    finally:
        cache.close()
    assert scores == [(k % 5) * 0.1 for k in range(40)]
    assert set(calls.values()) == {1} and len(cache) == 5


def _counting(evaluator):
    """A callable evaluator that records the weights it is called with."""
    seen = Counter()

    def score(model):
        seen[tuple(model.fc1.weight.flatten()[:64].tolist())] += 1
        return evaluator.search(model)

    return score, seen


def test_compress_never_scores_a_configuration_twice(mlp, digits_eval):
    score, seen = _counting(digits_eval)
    r = wsc.compress(mlp, score, k_range=(2, 40), pop_size=8, generations=4, progress=False)
    # a callable is used for search and held-out alike: the baseline twice, then once per
    # configuration on the search side, once per reported solution on the held-out side
    reported = {s.codebook.key for s in r.front_before + r.front_after}
    assert r.heldout_evaluations == len(reported)
    assert sum(seen.values()) == 2 + r.evaluations + r.heldout_evaluations
    assert r.evaluator["same_splits"] is True


def test_same_seed_same_front_and_workers_agree(mlp, digits_eval):
    kw = dict(k_range=(2, 64), pop_size=8, generations=4, seed=3, progress=False)
    a = wsc.compress(mlp, digits_eval, **kw)
    b = wsc.compress(mlp, digits_eval, **kw, workers=2)
    for fa, fb in ((a.front_before, b.front_before), (a.front_after, b.front_after)):
        assert [(s.k, s.values, s.search_score, s.heldout_score, s.file_bytes) for s in fa] == \
               [(s.k, s.values, s.search_score, s.heldout_score, s.file_bytes) for s in fb]
    assert a.evaluations == b.evaluations


@pytest.mark.parametrize("size", ["values", "bits"])
def test_front_is_non_dominated(mlp, digits_eval, size):
    r = wsc.compress(mlp, digits_eval, k_range=(2, 64), pop_size=8, generations=4, size=size,
                     progress=False)
    for front in (r.front_before, r.front_after):
        pts = [(s.search_bound, s.size) for s in front]  # the first objective: the drop bound
        assert non_dominated(pts) == sorted(range(len(pts)), key=lambda i: pts[i][1])
        assert all(s.size == (s.values if size == "values" else s.size) for s in front)
    assert r.history[-1]["front_size"] == len(r.front_before)


def test_progress_events(mlp, digits_eval):
    events = []
    wsc.compress(mlp, digits_eval, k_range=(2, 16), pop_size=4, generations=3, progress=events.append,
                 confidence=None)  # the point estimate: every front solution is merged
    stages = Counter(e["stage"] for e in events)
    assert stages["search"] == 3 and stages["merge"] >= 1 and stages["measure"] == 1
    assert [e["generation"] for e in events if e["stage"] == "search"] == [1, 2, 3]


def test_score_cache_does_not_keep_failures():
    attempts = Counter()

    def flaky(key, item):
        attempts[key] += 1
        if attempts[key] == 1:
            raise RuntimeError("first try fails")
        return 0.5

    cache = ScoreCache(flaky)
    with pytest.raises(RuntimeError):
        cache.get("a", None)
    assert "a" not in cache and cache.get("a", None) == 0.5 and len(cache) == 1
