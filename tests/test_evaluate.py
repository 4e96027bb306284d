"""Evaluators: scores, splits, Fidelity, callables; the caller's model is left as it was."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from wsc.evaluate import Accuracy, Fidelity, FunctionEvaluator, MacroF1, as_evaluator, balanced_split


def _manual_accuracy(model, x, y):
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def test_accuracy_matches_a_manual_count(mlp, digits):
    x, y = digits
    ev = Accuracy(search=(x[:300], y[:300]), heldout=(x[300:], y[300:]), batch_size=64)
    assert ev.search(mlp) == pytest.approx(_manual_accuracy(mlp, x[:300], y[:300]))
    assert ev.heldout(mlp) == pytest.approx(_manual_accuracy(mlp, x[300:], y[300:]))
    assert ev.describe() == {"metric": "accuracy", "same_splits": False, "search_examples": 300,
                             "heldout_examples": len(y) - 300}


def test_sources_agree_tensors_dataset_loader(mlp, digits):
    x, y = digits
    a = Accuracy((x, y), search_size=200, seed=3)
    b = Accuracy(TensorDataset(x, y), search_size=200, seed=3)
    c = Accuracy(TensorDataset(x, y), search_size=200, seed=3, cache=False)
    assert a.search(mlp) == b.search(mlp) == c.search(mlp)
    assert a.heldout(mlp) == b.heldout(mlp) == c.heldout(mlp)
    d = Accuracy(search=DataLoader(TensorDataset(x[:100], y[:100]), batch_size=32), heldout=(x[100:], y[100:]))
    assert d.search(mlp) == pytest.approx(_manual_accuracy(mlp, x[:100], y[:100]))


def test_macro_f1_matches_sklearn(mlp, digits):
    from sklearn.metrics import f1_score

    x, y = digits
    ev = MacroF1(search=(x[:500], y[:500]), heldout=(x[500:], y[500:]))
    with torch.no_grad():
        pred = mlp(x[:500]).argmax(1)
    assert ev.search(mlp) == pytest.approx(f1_score(y[:500], pred, average="macro"))


def test_balanced_split_is_balanced_disjoint_seeded():
    labels = np.repeat(np.arange(5), [100, 100, 100, 100, 3])
    s, h = balanced_split(labels, 50, seed=1)
    assert len(s) == 50 and len(np.intersect1d(s, h)) == 0 and len(s) + len(h) == len(labels)
    per_class = np.bincount(labels[s], minlength=5)
    assert per_class[4] == 3 and per_class[:4].max() - per_class[:4].min() <= 1
    np.testing.assert_array_equal(s, balanced_split(labels, 50, seed=1)[0])
    assert not np.array_equal(s, balanced_split(labels, 50, seed=2)[0])
    assert len(balanced_split(labels, 0.1, seed=0)[0]) == 40
    for bad in (0, len(labels), 1.5, "10"):
        with pytest.raises((ValueError, TypeError)):
            balanced_split(labels, bad)


def test_fidelity_is_one_for_the_reference_and_needs_it(mlp, digits):
    x, _ = digits
    ev = Fidelity(x, search_size=0.3)
    with pytest.raises(RuntimeError, match="prepare"):
        ev.search(mlp)
    ev.prepare(mlp)
    assert ev.search(mlp) == 1.0 and ev.heldout(mlp) == 1.0
    other = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    assert ev.search(other) < 0.5


def test_evaluation_restores_the_training_flag(mlp, digits):
    x, y = digits
    mlp.train()
    Accuracy((x, y), search_size=100).search(mlp)
    assert mlp.training


def test_callables_are_wrapped_and_checked(mlp):
    ev = as_evaluator(lambda m: 0.5)
    assert isinstance(ev, FunctionEvaluator) and ev.same_splits
    assert ev.search(mlp) == ev.heldout(mlp) == 0.5
    with pytest.raises(TypeError, match="number"):
        as_evaluator(lambda m: "high").search(mlp)
    with pytest.raises(TypeError, match="Evaluator or a callable"):
        as_evaluator(42)


def test_bad_arguments(digits):
    x, y = digits
    with pytest.raises(ValueError, match="not both"):
        Accuracy((x, y), search=(x, y))
    with pytest.raises(ValueError, match="both search= and heldout="):
        Accuracy(search=(x, y))
    with pytest.raises(ValueError, match="batch_size"):
        Accuracy((x, y), batch_size=0)
    with pytest.raises(ValueError, match="differ in length"):
        Accuracy((x, y[:10]))
