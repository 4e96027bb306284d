"""The iterative neighbour merge: never below the start score minus the tolerance."""

from __future__ import annotations

import numpy as np
import pytest

import wsc
from wsc.codebook import Codebook, SortedWeights
from wsc.merge import merge

from conftest import weights_like


def _codebook(k=24):
    return Codebook.uniform(SortedWeights(weights_like(5000, seed=2)), k)


def _spread_score(cb: Codebook) -> float:
    """A deterministic stand-in score: higher when the values stay spread out."""
    v = cb.values.astype(np.float64)
    return float(np.log(np.std(v) + 1e-3) + 0.002 * cb.size)


def _batch(fn, calls=None):
    def score(cbs):
        if calls is not None:
            calls.extend(c.key for c in cbs)
        return [fn(c) for c in cbs]
    return score


@pytest.mark.parametrize("tolerance", [0.0, 0.01, 0.2])
def test_score_never_drops_below_start_minus_tolerance(tolerance):
    cb = _codebook()
    start = _spread_score(cb)
    calls = []
    out, score = merge(cb, _batch(_spread_score, calls), tolerance=tolerance)
    assert score == _spread_score(out) and score >= start - tolerance
    assert out.size < cb.size
    assert calls[0] == cb.key


def test_tolerance_zero_accepts_only_merges_that_lose_nothing():
    cb = _codebook(12)
    out, score = merge(cb, _batch(lambda c: 1.0 if c.size >= cb.size - 2 else 0.0))
    assert out.size == cb.size - 2 and score == 1.0


def test_constant_score_merges_down_to_one_value():
    out, score = merge(_codebook(10), _batch(lambda c: 0.7))
    assert out.size == 1 and score == 0.7


def test_merged_values_are_weighted_means():
    cb = _codebook(16)
    out, _ = merge(cb, _batch(lambda c: 1.0 if c.size > 8 else 0.0))
    total = np.add.reduceat(cb.sums, list(out.groups)) / np.add.reduceat(cb.counts, list(out.groups))
    np.testing.assert_allclose(out.values, total.astype(np.float32), rtol=1e-6)


@pytest.mark.parametrize("tolerance", [0.0, 0.02])
def test_merge_on_a_real_model_respects_the_tolerance(mlp, digits_eval, tolerance):
    r = wsc.compress(mlp, digits_eval, k_range=(2, 48), pop_size=8, generations=3, tolerance=tolerance,
                     progress=False, **wsc.PAPER)  # the paper's rule: the score within the tolerance
    before = {s.k: s for s in r.front_before}
    for s in r.front_after:
        assert s.search_score >= before[s.k].search_score - tolerance - 1e-12
        assert s.values <= before[s.k].values
    assert any(s.merged for s in r.front_after)


def test_no_merge_keeps_the_search_front(mlp, digits_eval):
    r = wsc.compress(mlp, digits_eval, k_range=(2, 32), pop_size=6, generations=2, merge=False, progress=False)
    assert r.front_after == [] and r.front_compensated == [] and r.front == r.front_before
