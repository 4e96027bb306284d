"""Scoring a model: accuracy, macro F1, or fidelity to the uncompressed model.

An :class:`Evaluator` scores on two disjoint splits: the *search* split, which the
search and the merge see, and the *held-out* split, used only to report. The inputs are
gathered into tensors once, so every evaluation is a plain batched forward pass in eval
mode under ``torch.inference_mode``. Scores are in [0, 1], higher is better.

A plain callable ``model -> float`` is accepted wherever an evaluator is; it then
serves as both the search and the held-out score (see :func:`as_evaluator`).

:meth:`Evaluator.outcome` returns a score with the per-example predictions behind it, and
:meth:`Evaluator.drop_bound` turns a baseline and a candidate outcome on the same examples
into an upper confidence bound of the drop (:mod:`wsc.confidence`): paired, so it is far
tighter than either score's own error. An evaluator without per-example outcomes (a plain
callable) gives the point estimate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np
import torch

from wsc.confidence import accuracy_drop_bound, bootstrap_drop_bound, weighted_macro_f1

DEFAULT_SEARCH_FRACTION = 0.2
DEFAULT_BATCH = 500


@dataclass(frozen=True, eq=False)
class Outcome:
    """A score with what a paired bound needs: top-1 predictions and the labels they are
    scored against (None when the evaluator has no per-example outcomes)."""

    value: float
    pred: np.ndarray | None = None
    labels: np.ndarray | None = None


def _paired_accuracy(base: Outcome, cand: Outcome, confidence: float) -> float:
    """The paired bound of an accuracy drop: from which examples each outcome gets right."""
    return accuracy_drop_bound(base.pred == base.labels, cand.pred == cand.labels, confidence)


class Evaluator:
    """Scores a model on a search split and on a held-out split (higher is better)."""

    name = "score"
    same_splits = False  # True when search and held-out scores come from the same data
    selects = False  # True when it holds a selection split: outcome(model, "select")

    def prepare(self, model: torch.nn.Module) -> None:
        """Called once with the uncompressed model before any scoring."""

    def search(self, model: torch.nn.Module) -> float:
        raise NotImplementedError

    def heldout(self, model: torch.nn.Module) -> float:
        raise NotImplementedError

    def outcome(self, model: torch.nn.Module, split: str = "search") -> Outcome:
        """The score on ``split`` ("search", "heldout", or "select" where :attr:`selects`) and
        its per-example outcomes."""
        return Outcome(self.search(model) if split == "search" else self.heldout(model))

    def drop_bound(self, base: Outcome, cand: Outcome, confidence: float) -> float:
        """Upper ``confidence`` bound of ``base.value - cand.value`` (same examples); without
        per-example outcomes, the point estimate."""
        return base.value - cand.value

    def describe(self) -> dict:
        return {"metric": self.name, "same_splits": self.same_splits}


class FunctionEvaluator(Evaluator):
    """A callable ``model -> float`` used for both the search and the held-out score."""

    same_splits = True

    def __init__(self, fn: Callable[[torch.nn.Module], float]):
        self.fn = fn
        self.name = getattr(fn, "__name__", "score")

    def _call(self, model):
        value = self.fn(model)
        try:
            return float(value)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"evaluate(model) must return a number; got {type(value).__name__}") from exc

    search = heldout = _call

    def describe(self) -> dict:
        return {"metric": self.name, "same_splits": True,
                "note": "a plain callable scores both sides: the held-out score is the search score"}


def as_evaluator(obj) -> Evaluator:
    """An Evaluator as is; a callable wrapped in :class:`FunctionEvaluator`."""
    if isinstance(obj, Evaluator):
        return obj
    if callable(obj):
        return FunctionEvaluator(obj)
    raise TypeError(f"evaluate must be a wsc.evaluate.Evaluator or a callable model -> float; got {type(obj).__name__}")


# ---------------------------------------------------------------- data
def _as_tensor(a) -> torch.Tensor:
    return a if isinstance(a, torch.Tensor) else torch.as_tensor(np.asarray(a))


def _is_pair(src) -> bool:
    return (isinstance(src, (tuple, list)) and len(src) == 2
            and all(isinstance(a, (torch.Tensor, np.ndarray)) for a in src))


def gather_data(source, *, labelled: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """All inputs (and labels) of ``source`` as two tensors.

    ``source``: a pair ``(inputs, labels)`` of tensors/arrays, a tensor/array of inputs
    (unlabelled only), a map-style dataset of ``(x, y)`` items, or any iterable of batches
    (a DataLoader) yielding ``(x, y)`` or ``x``.
    """
    if _is_pair(source):
        x, y = (_as_tensor(a) for a in source)
        if len(x) != len(y):
            raise ValueError(f"inputs and labels differ in length: {len(x)} vs {len(y)}")
        return x, y.long()
    if isinstance(source, (torch.Tensor, np.ndarray)):
        if labelled:
            raise TypeError("labels are needed: pass (inputs, labels), a dataset or a loader")
        return _as_tensor(source), None
    if hasattr(source, "__getitem__") and hasattr(source, "__len__") and not isinstance(source, (list, tuple)):
        source = torch.utils.data.DataLoader(source, batch_size=256, shuffle=False)
    if not isinstance(source, Iterable):
        raise TypeError(f"cannot read data from {type(source).__name__}")
    xs, ys = [], []
    for batch in source:
        if isinstance(batch, (tuple, list)) and len(batch) >= 2:
            xs.append(_as_tensor(batch[0]))
            ys.append(_as_tensor(batch[1]))
        elif labelled:
            raise TypeError("expected (inputs, labels) batches from the data source")
        else:
            xs.append(_as_tensor(batch[0] if isinstance(batch, (tuple, list)) else batch))
    if not xs:
        raise ValueError("the data source is empty")
    x = torch.cat(xs)
    return (x, torch.cat(ys).long()) if ys else (x, None)


def _split_count(search_size, n: int) -> int:
    if isinstance(search_size, float) and not isinstance(search_size, bool):
        if not 0.0 < search_size < 1.0:
            raise ValueError(f"search_size as a fraction must be in (0, 1); got {search_size}")
        count = int(round(search_size * n))
    elif isinstance(search_size, (int, np.integer)) and not isinstance(search_size, bool):
        count = int(search_size)
    else:
        raise TypeError(f"search_size must be an int (examples) or a float (fraction); got {type(search_size).__name__}")
    if not 1 <= count <= n - 1:
        raise ValueError(f"search_size must leave at least one example on each side of the split; "
                         f"got {count} of {n} examples")
    return count


def balanced_split(labels, search_size, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(search indices, held-out indices): a seeded, class-balanced search subset and the rest.

    ``search_size``: a number of examples, or a float fraction of them; both sides must be
    non-empty. The split itself is :func:`wsc.data.balanced_split`.
    """
    from wsc import data

    y = np.asarray(labels).ravel()
    return data.balanced_split(y, _split_count(search_size, y.size), seed)


# ---------------------------------------------------------------- predictions
def _logits(out) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out
    if hasattr(out, "logits"):
        return out.logits
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    raise TypeError(f"the model's output must be a tensor of logits; got {type(out).__name__}")


def predict(model: torch.nn.Module, inputs: torch.Tensor, batch_size: int = DEFAULT_BATCH) -> torch.Tensor:
    """Top-1 class of every input (int64), in eval mode; the model's training flag is restored."""
    batches = ((xb, torch.zeros(len(xb), dtype=torch.int64)) for xb in inputs.split(batch_size))
    return _predict_batches(model, batches)[0]


def accuracy(pred: torch.Tensor, labels: torch.Tensor) -> float:
    return int((pred == labels).sum()) / labels.numel()


def macro_f1(pred: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean F1 over the classes present in the labels or the predictions (sklearn's 'macro')."""
    classes = torch.unique(torch.cat([pred, labels]))
    f1 = []
    for c in classes.tolist():
        tp = int(((pred == c) & (labels == c)).sum())
        fp = int(((pred == c) & (labels != c)).sum())
        fn = int(((pred != c) & (labels == c)).sum())
        f1.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(f1))


# ---------------------------------------------------------------- evaluators
CACHE_LIMIT = 2 << 30  # bytes of inputs held in memory; larger datasets are re-read per evaluation


def _is_dataset(src) -> bool:
    return (hasattr(src, "__getitem__") and hasattr(src, "__len__")
            and not isinstance(src, (list, tuple, torch.Tensor, np.ndarray)))


class _Split:
    """Labelled examples, held as tensors (cached) or re-read from a dataset or loader."""

    def __init__(self, source, batch_size: int, cache: bool | None):
        self.batch_size = batch_size
        if cache is None:
            cache = not _is_dataset(source) or _estimated_bytes(source) <= CACHE_LIMIT
        self.tensors = gather_data(source) if cache else None
        self.source = None if cache else source
        if cache:
            self.size = len(self.tensors[1])
        else:
            loader = isinstance(source, torch.utils.data.DataLoader)
            self.size = len(source.dataset) if loader else len(source)

    def batches(self):
        if self.tensors is not None:
            x, y = self.tensors
            yield from zip(x.split(self.batch_size), y.split(self.batch_size))
            return
        src = self.source
        if _is_dataset(src):
            src = torch.utils.data.DataLoader(src, batch_size=self.batch_size, shuffle=False)
        for xb, yb in src:
            yield _as_tensor(xb), _as_tensor(yb).long()


def _estimated_bytes(ds) -> int:
    x = ds[0][0] if len(ds) else torch.zeros(0)
    return _as_tensor(x).numel() * 4 * len(ds)


def _predict_batches(model, batches):
    """(top-1 predictions, labels) over ``batches`` in eval mode; the training flag is restored."""
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    training = model.training
    model.eval()
    preds, labels = [], []
    try:
        with torch.inference_mode():
            for xb, yb in batches:
                logits = _logits(model(xb.to(device)))
                if logits.dim() != 2:
                    raise ValueError(f"the model must return logits of shape (batch, classes); got {tuple(logits.shape)}")
                preds.append(logits.argmax(dim=1).cpu())
                labels.append(yb)
    finally:
        model.train(training)
    return torch.cat(preds), torch.cat(labels)


class _Labelled(Evaluator):
    """Scores predictions against labels on a search and a held-out split.

    ``data``: one labelled source, split class-balanced into ``search_size`` examples (an
    int, or a float fraction) for the search and the rest held out, seeded by ``seed``.
    Or ``search=`` and ``heldout=``: two sources taken as given. A source is a pair
    ``(inputs, labels)``, a map-style dataset of ``(x, y)``, or a loader of batches.
    ``select``: optionally a third source, disjoint from the others, on which
    ``wsc.compress`` scores only the final solutions that keep the bar on the search split,
    to choose among them (:meth:`CompressionResult.choose`): the search and the merge keep
    what did well on the search split, so its scores of their results are optimistic, and
    these examples are not.
    ``cache``: hold the inputs in memory (default: unless a dataset exceeds 2 GiB).
    """

    def __init__(self, data=None, *, search=None, heldout=None, select=None, search_size=DEFAULT_SEARCH_FRACTION,
                 seed: int = 0, batch_size: int = DEFAULT_BATCH, cache: bool | None = None):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int; got {batch_size!r}")
        if data is not None:
            if search is not None or heldout is not None:
                raise ValueError("pass either data (split by search_size) or search= and heldout=, not both")
            if _is_dataset(data):
                from wsc.data import labels_of

                s, h = balanced_split(labels_of(data), search_size, seed)
                search = torch.utils.data.Subset(data, s.tolist())
                heldout = torch.utils.data.Subset(data, h.tolist())
            else:
                x, y = gather_data(data)
                s, h = balanced_split(y.numpy(), search_size, seed)
                search, heldout = (x[s], y[s]), (x[h], y[h])
        elif search is None or heldout is None:
            raise ValueError("pass data (one source to split) or both search= and heldout=")
        self._splits = {"search": _Split(search, batch_size, cache), "heldout": _Split(heldout, batch_size, cache)}
        if select is not None:
            self._splits["select"] = _Split(select, batch_size, cache)
            if self._splits["select"].size == 0:
                raise ValueError("select must hold at least one example (or pass select=None)")

    @property
    def selects(self) -> bool:
        return "select" in self._splits

    def _metric(self, pred, labels) -> float:
        raise NotImplementedError

    def score(self, model, split: str = "heldout") -> float:
        return self._metric(*_predict_batches(model, self._splits[split].batches()))

    def outcome(self, model, split: str = "search") -> Outcome:
        pred, labels = _predict_batches(model, self._splits[split].batches())
        return Outcome(self._metric(pred, labels), pred.numpy(), labels.numpy())

    def drop_bound(self, base: Outcome, cand: Outcome, confidence: float) -> float:
        """Paired bound (:mod:`wsc.confidence`): McNemar-style for accuracy, bootstrap otherwise."""
        if base.pred is None or cand.pred is None:
            return base.value - cand.value
        if self.paired_accuracy:
            return _paired_accuracy(base, cand, confidence)
        return bootstrap_drop_bound(self._weighted, cand.labels, base.pred, cand.pred, confidence)

    paired_accuracy = True
    _weighted = None

    def search(self, model) -> float:
        return self.score(model, "search")

    def heldout(self, model) -> float:
        return self.score(model, "heldout")

    def describe(self) -> dict:
        return {"metric": self.name, "same_splits": False,
                "search_examples": self._splits["search"].size, "heldout_examples": self._splits["heldout"].size,
                **({"select_examples": self._splits["select"].size} if self.selects else {})}


class Accuracy(_Labelled):
    """Top-1 accuracy. ``Accuracy(data, search_size=0.2, seed=0)`` splits ``data``
    class-balanced; ``Accuracy(search=..., heldout=...)`` takes the two splits as given."""

    name = "accuracy"

    def _metric(self, pred, labels):
        return accuracy(pred, labels)


class MacroF1(_Labelled):
    """Macro-averaged F1 score; same arguments as :class:`Accuracy`."""

    name = "macro-f1"
    paired_accuracy = False
    _weighted = staticmethod(weighted_macro_f1)

    def _metric(self, pred, labels):
        return macro_f1(pred, labels)


class Fidelity(Evaluator):
    """Agreement of top-1 predictions with the uncompressed model (no labels needed).

    ``reference_inputs`` is split at random (seeded) into search and held-out parts.
    ``wsc.compress`` calls :meth:`prepare` with the uncompressed model; pass
    ``reference=model`` to use the evaluator on its own.
    """

    name = "fidelity"

    def __init__(self, reference_inputs, *, search_size=0.5, seed: int = 0,
                 batch_size: int = DEFAULT_BATCH, reference: torch.nn.Module | None = None):
        x, _ = gather_data(reference_inputs, labelled=False)
        count = _split_count(search_size, len(x))
        perm = np.random.default_rng(seed).permutation(len(x))
        self._x = {"search": x[np.sort(perm[:count])], "heldout": x[np.sort(perm[count:])]}
        self._ref: dict[str, torch.Tensor] = {}
        self.batch_size = batch_size
        if reference is not None:
            self.prepare(reference)

    def prepare(self, model) -> None:
        self._ref = {k: predict(model, v, self.batch_size) for k, v in self._x.items()}

    def _predict(self, model, split: str) -> torch.Tensor:
        if not self._ref:
            raise RuntimeError("Fidelity needs the uncompressed model first: call prepare(model) "
                               "or pass reference=model")
        return predict(model, self._x[split], self.batch_size)

    def _score(self, model, split: str) -> float:
        return accuracy(self._predict(model, split), self._ref[split])

    def search(self, model) -> float:
        return self._score(model, "search")

    def heldout(self, model) -> float:
        return self._score(model, "heldout")

    def outcome(self, model, split: str = "search") -> Outcome:
        pred = self._predict(model, split)
        return Outcome(accuracy(pred, self._ref[split]), pred.numpy(), self._ref[split].numpy())

    def drop_bound(self, base: Outcome, cand: Outcome, confidence: float) -> float:
        return _paired_accuracy(base, cand, confidence)

    def describe(self) -> dict:
        return {"metric": self.name, "same_splits": False,
                "search_examples": len(self._x["search"]), "heldout_examples": len(self._x["heldout"])}


__all__ = ["Evaluator", "Outcome", "FunctionEvaluator", "Accuracy", "MacroF1", "Fidelity", "as_evaluator",
           "balanced_split", "gather_data", "predict", "accuracy", "macro_f1"]
