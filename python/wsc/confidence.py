"""Upper confidence bounds on the drop of a score, from paired per-example outcomes.

A candidate and the uncompressed model are scored on the *same* examples, so the
uncertainty of their difference comes only from the examples on which they disagree: far
less than the standard error of either score (a 1,000-example split has about 1 pp of
standard error on accuracy, but two models that disagree on 2% of it differ by about
±0.45 pp). Selecting by the upper bound of the drop at a confidence level, rather than by
the point estimate, keeps the chosen solution within the tolerance on unseen data.

- Accuracy (and fidelity): the paired difference of per-example correctness, a normal
  bound in the McNemar setting: ``drop = (n10 - n01) / n`` where ``n10`` examples the
  baseline gets right and the candidate wrong, ``n01`` the reverse; its variance is
  estimated with one extra discordant pair, so no finite sample makes the bound certain.
- Any other metric of predictions (macro F1): a paired bootstrap over examples (the same
  seeded resamples for the baseline and every candidate), the quantile of the drop.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Callable

import numpy as np

BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0


def check_confidence(confidence) -> float | None:
    """``confidence`` as a float in (0.5, 1), or None (select by the point estimate)."""
    if confidence is None:
        return None
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0.5 <= confidence < 1:
        raise ValueError(f"confidence must be None or a number in [0.5, 1) (e.g. 0.95); got {confidence!r}")
    return float(confidence)


def accuracy_drop_bound(base_ok: np.ndarray, ok: np.ndarray, confidence: float) -> float:
    """Upper ``confidence`` bound of mean(base_ok) - mean(ok), paired over the examples."""
    base_ok, ok = np.asarray(base_ok, dtype=bool), np.asarray(ok, dtype=bool)
    n = ok.size
    n10 = int(np.count_nonzero(base_ok & ~ok))
    n01 = int(np.count_nonzero(~base_ok & ok))
    d = (n10 - n01) / n
    var = max((n10 + n01 + 1) / n - d * d, 0.0)
    return d + NormalDist().inv_cdf(confidence) * math.sqrt(var / n)


def bootstrap_drop_bound(metric: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray], labels: np.ndarray,
                         base_pred: np.ndarray, pred: np.ndarray, confidence: float,
                         resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> float:
    """Upper ``confidence`` quantile of metric(base) - metric(candidate) over paired resamples.

    ``metric(weights, pred, labels)`` returns the metric under each row of example weights
    (resample counts, shape (resamples, n)).
    """
    n = labels.size
    w = np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=resamples)
    drops = metric(w, base_pred, labels) - metric(w, pred, labels)
    return float(np.quantile(drops, confidence))


def weighted_macro_f1(w: np.ndarray, pred: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Macro F1 (over the classes present in labels or predictions) under each row of weights."""
    classes = np.unique(np.concatenate([pred, labels]))
    f1 = np.empty((w.shape[0], classes.size))
    for j, c in enumerate(classes):
        p, t = pred == c, labels == c
        tp, fp, fn = (w @ (p & t).astype(np.float64), w @ (p & ~t).astype(np.float64),
                      w @ (~p & t).astype(np.float64))
        den = 2 * tp + fp + fn
        f1[:, j] = np.where(den > 0, 2 * tp / np.where(den > 0, den, 1), np.nan)
    return np.nanmean(f1, axis=1)


__all__ = ["check_confidence", "accuracy_drop_bound", "bootstrap_drop_bound", "weighted_macro_f1"]
