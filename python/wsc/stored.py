"""How the unshared tensors go into the file, and BatchNorm statistics re-estimated for shared weights.

Weight sharing codes the big tensors in a few bits per weight; what stays float32 (biases,
BatchNorm vectors) then weighs on small models: on a depthwise-separable CNN of 15,000
weights the four BatchNorm vectors per channel are 40% of the file. ``stored``:

- ``"exact"``: every unshared tensor bit for bit (the paper's file);
- ``"float16"``: each BatchNorm's four vectors become the affine map it computes in eval
  mode (weight = gamma / sqrt(var + eps), bias = beta - mean * weight, mean 0 and var
  1 - eps: constant tensors, which the file records as one value each), and float32 /
  float64 tensors are stored as float16 where their values fit its range (the outputs
  move by float16 rounding);
- ``"compact"`` (the default of ``wsc.compress``): as ``"float16"``, but float tensors of
  more than ``CODES_FROM`` values are stored as uint8 codes of 256 equal steps over their
  range (:func:`wsc.container.quantize8`) where a step is at most a sixteenth of their
  interquartile range (else float16: one outlier, e.g. the folded scale of a nearly dead
  BatchNorm channel, would leave the others a few codes): biases and BatchNorm maps at a
  byte per value, a quarter of float32 (measured: no accuracy change on the four built-in
  models). Constant tensors keep their dtype: the file holds them as one value.

Every score and file of a run is of the model so stored (nothing is rounded after the
fact). Training a folded model further in train mode starts from other BatchNorm statistics.

With calibration inputs, the running statistics of every BatchNorm whose statistics are
unshared are re-estimated for each codebook (:func:`recalibrate`): the shared weights move
the mean and variance of every layer's outputs, most on small depthwise filters, and
statistics measured on the shared model restore them. This needs no labels and no
gradients, one pass of the calibration inputs per codebook.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from wsc.compensate import inputs_on
from wsc.container import Narrowed, quantize8

STORED = ("exact", "float16", "compact")
CODES_FROM = 32  # values from which a float tensor is stored as uint8 codes (its range costs about as much)
STEP_OF_IQR = 1 / 16  # the largest code step, as a fraction of the tensor's interquartile range
FLOAT16_MAX = 65504.0
_WIDE = (torch.float32, torch.float64)
STATS = ("running_mean", "running_var")
_AFFINE = ("weight", "bias") + STATS
_BUFFERS = STATS + ("num_batches_tracked",)


def check_stored(stored) -> str:
    if stored not in STORED:
        raise ValueError(f"stored must be one of {STORED}; got {stored!r}")
    return stored


def batchnorms(model: nn.Module, unshared: Iterable[str], parts: tuple[str, ...] = STATS) -> dict[str, nn.Module]:
    """The BatchNorm modules (by name) that track running statistics and whose tensors
    ``parts`` are all among the ``unshared`` names."""
    names = set(unshared)
    out = {}
    for prefix, m in model.named_modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats:
            if all(f"{prefix}.{p}" in names for p in parts):
                out[prefix] = m
    return out


def compact(tensors: dict[str, torch.Tensor], norms: dict[str, float], codes: bool = True) -> tuple[dict, dict]:
    """(the tensors as the file stores them, {name: :class:`Narrowed`} of those narrowed):
    BatchNorm ``norms`` (prefix -> eps) folded into their affine map; with ``codes``, float
    tensors of more than CODES_FROM finite values as uint8 codes where a step is at most
    STEP_OF_IQR of their interquartile range; other non-constant wide floats in float16
    where they fit (finite, magnitude at most 65504)."""
    out = dict(tensors)
    for prefix, eps in norms.items():
        w, b, mean, var = (tensors[f"{prefix}.{p}"] for p in _AFFINE)
        scale = w.double() / torch.sqrt(var.double() + eps)
        out[f"{prefix}.weight"] = scale.to(w.dtype)
        out[f"{prefix}.bias"] = (b.double() - mean.double() * scale).to(b.dtype)
        out[f"{prefix}.running_mean"] = torch.zeros_like(mean)
        out[f"{prefix}.running_var"] = torch.full_like(var, 1.0 - eps)
    restore = {}
    for name, t in out.items():
        if not t.is_floating_point() or not t.numel() or not bool(torch.isfinite(t).all()) or t.min() == t.max():
            continue
        if codes and t.numel() > CODES_FROM and _codes_fit(t):
            out[name], span = quantize8(t)
            restore[name] = Narrowed(t.dtype, span)
        elif t.dtype in _WIDE and t.abs().max() <= FLOAT16_MAX:
            out[name], restore[name] = t.half(), Narrowed(t.dtype)
    return out, restore


def _codes_fit(t: torch.Tensor) -> bool:
    """Whether 256 equal steps over the range of ``t`` are fine for its bulk: a step of at
    most STEP_OF_IQR of the interquartile range, and a range float64 can subtract."""
    x = t.detach().reshape(-1).to(torch.float64)
    span = float(x.max() - x.min())
    q1, q3 = torch.quantile(x, torch.tensor([0.25, 0.75], dtype=torch.float64)).tolist()
    return math.isfinite(span) and span / 255 <= STEP_OF_IQR * (q3 - q1)


def examples(batch) -> int | None:
    """Examples in a calibration batch (a tensor, a tuple / list whose first element is the
    input, or a dict of keyword inputs): its first tensor's first dimension, if known."""
    if isinstance(batch, dict):
        batch = next((v for v in batch.values() if isinstance(v, torch.Tensor)), None)
    elif isinstance(batch, (tuple, list)):
        batch = batch[0] if batch else None
    return batch.shape[0] if isinstance(batch, torch.Tensor) and batch.dim() else None


def recalibrate(model: nn.Module, norms: dict[str, nn.Module], batches: Iterable) -> dict[str, torch.Tensor]:
    """Running mean and variance of the BatchNorm ``norms`` (prefix -> module of ``model``)
    re-estimated over ``batches`` (cumulative averages; batches of one example are skipped;
    every other module in eval mode, so dropout is off); returns them by state-dict name and leaves the model as it was
    (modes, momenta, statistics and ``num_batches_tracked``)."""
    modes = [(m, m.training) for m in model.modules()]
    saved = {p: (m.momentum, [getattr(m, b).clone() for b in _BUFFERS]) for p, m in norms.items()}
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    model.eval()
    try:
        for m in norms.values():
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over the batches
            m.train()
        with torch.no_grad():
            for batch in batches:
                if examples(batch) == 1:  # train-mode BatchNorm needs two or more; the average skips it
                    continue
                x = inputs_on(device, batch)
                model(**x) if isinstance(x, dict) else model(x)
        return {f"{p}.{s}": getattr(m, s).detach().clone() for p, m in norms.items() for s in STATS}
    finally:
        for m, mode in modes:
            m.train(mode)
        with torch.no_grad():
            for p, m in norms.items():
                m.momentum = saved[p][0]
                for b, t in zip(_BUFFERS, saved[p][1]):
                    getattr(m, b).copy_(t)


__all__ = ["STORED", "STATS", "check_stored", "examples", "batchnorms", "compact", "recalibrate"]
