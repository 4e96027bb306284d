"""Variance-aware selection: paired bounds on the drop, evaluators' outcomes, the bounded merge
and choosing by the bound."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import wsc
from wsc.codebook import Codebook, SortedWeights
from wsc.confidence import (accuracy_drop_bound, bootstrap_drop_bound, check_confidence, weighted_macro_f1)
from wsc.evaluate import Accuracy, Fidelity, FunctionEvaluator, MacroF1, macro_f1
from wsc.merge import merge

from conftest import weights_like


def test_check_confidence():
    assert check_confidence(None) is None and check_confidence(0.95) == 0.95
    for bad in (1.0, 0.3, True, "0.9"):
        with pytest.raises(ValueError, match="confidence"):
            check_confidence(bad)


def test_paired_bound_is_tighter_than_either_score_and_never_certain():
    rng = np.random.default_rng(0)
    base = rng.random(2000) < 0.9
    same = accuracy_drop_bound(base, base, 0.95)
    assert 0 < same < 0.002  # identical predictions: no drop, but a finite sample is never certain
    cand = base.copy()
    flip = rng.choice(2000, 40, replace=False)
    cand[flip] = ~cand[flip]  # disagree on 2%
    d = base.mean() - cand.mean()
    b = accuracy_drop_bound(base, cand, 0.95)
    assert d < b < d + 0.01  # unpaired standard error of one score alone: ~0.0067; paired: ~0.003
    assert accuracy_drop_bound(base, cand, 0.99) > b


def test_paired_bound_covers_the_true_drop():
    """Simulated candidates whose true drop is 1 pp: the 95% bound lies above it about 95% of the time."""
    rng = np.random.default_rng(1)
    n, trials, covered = 1000, 400, 0
    for _ in range(trials):
        base = rng.random(n) < 0.9
        u = rng.random(n)
        cand = np.where(u < 0.03, False, np.where(u < 0.05, True, base))  # loses 3%, gains 2% at random
        true = (0.03 * 0.9 - 0.02 * 0.1)  # expected drop
        covered += accuracy_drop_bound(base, cand, 0.95) >= true
    assert 0.90 <= covered / trials <= 0.99


def test_bootstrap_bound_of_macro_f1_is_paired_and_deterministic():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 5, 1500)
    base = np.where(rng.random(1500) < 0.85, labels, rng.integers(0, 5, 1500))
    cand = np.where(rng.random(1500) < 0.97, base, rng.integers(0, 5, 1500))
    w = np.ones((1, 1500), dtype=np.int64)
    assert weighted_macro_f1(w, base, labels)[0] == pytest.approx(
        macro_f1(torch.from_numpy(base), torch.from_numpy(labels)))
    b1 = bootstrap_drop_bound(weighted_macro_f1, labels, base, cand, 0.95)
    b2 = bootstrap_drop_bound(weighted_macro_f1, labels, base, cand, 0.95)
    point = macro_f1(torch.from_numpy(base), torch.from_numpy(labels)) - macro_f1(
        torch.from_numpy(cand), torch.from_numpy(labels))
    assert b1 == b2 and b1 > point
    assert bootstrap_drop_bound(weighted_macro_f1, labels, base, base, 0.95) == 0.0


def _noisy(model, seed=0, scale=0.3):
    m = copy.deepcopy(model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale * p.std())
    return m


@pytest.mark.parametrize("cls", [Accuracy, MacroF1])
def test_labelled_evaluators_give_outcomes_and_paired_bounds(cls, digits, trained_mlp):
    x, y = digits
    ev = cls((x, y), search_size=600, seed=0)
    base = ev.outcome(trained_mlp, "search")
    assert base.value == ev.search(trained_mlp) and base.pred.shape == (600,)
    cand = ev.outcome(_noisy(trained_mlp), "search")
    bound = ev.drop_bound(base, cand, 0.95)
    assert bound > base.value - cand.value
    assert ev.drop_bound(base, base, 0.95) >= 0


def test_fidelity_bound_and_a_plain_callable(digits, trained_mlp):
    x, _ = digits
    fid = Fidelity(x, search_size=0.5, reference=trained_mlp)
    base = fid.outcome(trained_mlp, "search")
    assert base.value == 1.0
    cand = fid.outcome(_noisy(trained_mlp), "search")
    assert fid.drop_bound(base, cand, 0.95) > 1.0 - cand.value
    fn = FunctionEvaluator(lambda m: 0.5)
    o = fn.outcome(trained_mlp)
    assert o.pred is None and fn.drop_bound(o, o, 0.95) == 0.0  # no per-example outcomes: the point drop


def test_bounded_merge_stays_within_the_bar():
    cb = Codebook.uniform(SortedWeights(weights_like(5000, seed=2)), 16)
    n = cb.size

    def score(cbs):  # the bound grows as values are merged away
        return [(0.9, 0.004 * (n - c.size)) for c in cbs]

    out, s = merge(cb, score, tolerance=0.02, bounded=True)
    assert s[1] <= 0.02 and out.size == n - 5 and out.merged
    # a start beyond the bar is never made worse
    out2, s2 = merge(cb, lambda cbs: [(0.5, 0.1 + 0.01 * (n - c.size)) for c in cbs], tolerance=0.02, bounded=True)
    assert out2.size == cb.size and s2[1] == 0.1


def test_compress_chooses_by_the_bound(trained_mlp, digits_eval):
    r = wsc.compress(copy.deepcopy(trained_mlp), digits_eval, k_range=(2, 40), pop_size=8, generations=3,
                     seed=1, progress=False, tolerance=0.02, confidence=0.95)
    c = r.choose()
    assert r.within(c) and c.search_bound <= 0.02
    assert all(s.search_bound >= r.baseline_search - s.search_score - 1e-12 for s in r.front)
    smaller = [s for s in r.front if s.file_bytes < c.file_bytes]
    assert all(s.search_bound > 0.02 for s in smaller)
    d = r.to_dict()["chosen"]
    assert d["confidence"] == 0.95 and d["heldout_kept_bar"] == (d["heldout_drop"] <= 0.02)
    assert "scheme" in d and {"placement", "scope", "clip", "range_kept"} <= set(d["scheme"]) <= {
        "placement", "scope", "clip", "range_kept", "steps"}


def test_paper_options_search_k_only(trained_mlp, digits_eval):
    r = wsc.compress(copy.deepcopy(trained_mlp), digits_eval, k_range=(2, 40), pop_size=8, generations=3,
                     seed=1, progress=False, **wsc.PAPER)
    assert all(s.scheme == wsc.scheme.PAPER for s in r.front_before + r.front_after)
    assert r.settings["confidence"] is None and r.settings["size"] == "values"
    assert all(s.size == s.values for s in r.front_before)
