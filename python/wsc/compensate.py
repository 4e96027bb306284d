"""Error-compensated assignment of weights to shared values (GPTQ / Optimal Brain Quantization).

Rounding every weight to its bin's value ignores what the layer computes. For a layer
y = W x, the output error of a rounded row is (w - q) H (w - q)^T with H = E[x x^T], the
second moment of the layer's inputs over some calibration data. GPTQ (Frantar et al.,
2023) rounds one input column at a time and moves the error it made onto the columns not
yet rounded, through the inverse of H (its Cholesky factor), so that the later roundings
cancel it. Here the "rounding" is to the nearest value of the shared codebook, so the
result is still one index per weight into the same codebook: only which value each weight
takes changes. No training, no gradients: one pass of calibration inputs to collect H per
layer, then a few matrix operations per layer.

Layers: ``nn.Linear`` and ``nn.Conv1d`` / ``nn.Conv2d`` (any groups; a convolution's inputs
are its unfolded patches). Other shared tensors keep the plain bin assignment.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.nn import functional as F

LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d)
DAMP = 0.01  # added to H's diagonal, as a fraction of its mean: keeps the factorisation stable
BLOCK = 128  # columns updated lazily together (the result does not depend on it)


def _patches(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The inputs of ``m``'s weight as rows [samples, groups, fan_in / groups]."""
    if isinstance(m, nn.Linear):
        return x.reshape(-1, 1, x.shape[-1])
    if isinstance(m, nn.Conv1d):  # as a 2-D convolution of height 1
        x, kernel, dil, pad, stride = x.unsqueeze(2), (1, *m.kernel_size), (1, *m.dilation), (0, *m.padding), (1, *m.stride)
    else:
        kernel, dil, pad, stride = m.kernel_size, m.dilation, m.padding, m.stride
    if isinstance(pad, str) or m.padding_mode != "zeros":
        raise ValueError(f"calibration: {type(m).__name__} with padding={m.padding!r}, padding_mode="
                         f"{m.padding_mode!r} is not supported (zero padding given as numbers only)")
    cols = F.unfold(x, kernel, dilation=dil, padding=pad, stride=stride)  # [N, C*kh*kw, L]
    n, d, length = cols.shape
    return cols.transpose(1, 2).reshape(n * length, m.groups, d // m.groups)


def second_moments(model: nn.Module, names: Iterable[str], batches: Iterable) -> dict[str, torch.Tensor]:
    """H = E[x x^T] (float64, [groups, fan_in / groups, fan_in / groups]) of the inputs of each
    weight in ``names`` that belongs to a supported layer, over ``batches`` run through
    ``model`` (a tensor each, or a tuple / list whose first element is the input)."""
    modules = dict(model.named_modules())
    targets = {}
    for name in names:
        owner, _, leaf = name.rpartition(".")
        m = modules.get(owner)
        if leaf == "weight" and isinstance(m, LAYERS) and not isinstance(m, nn.modules.conv._ConvTransposeNd):
            targets[name] = m
    sums = {n: None for n in targets}
    counts = dict.fromkeys(targets, 0)

    def hook(name):
        def collect(module, inputs, output):
            p = _patches(module, inputs[0].detach()).to(torch.float64)
            g = torch.einsum("ngi,ngj->gij", p, p)
            sums[name] = g if sums[name] is None else sums[name] + g
            counts[name] += p.shape[0]
        return collect

    handles = [m.register_forward_hook(hook(n)) for n, m in targets.items()]
    try:
        with torch.no_grad():
            for batch in batches:
                x = batch[0] if isinstance(batch, (tuple, list)) else batch
                model(x)
    finally:
        for h in handles:
            h.remove()
    return {n: sums[n] / counts[n] for n in targets if counts[n]}


def nearest(x: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Index of the nearest of the sorted ``values`` for every element of ``x`` (ties: the lower)."""
    if values.numel() == 1:
        return torch.zeros(x.shape, dtype=torch.long)
    i = torch.searchsorted(values, x.contiguous()).clamp(1, values.numel() - 1)
    return torch.where((x - values[i - 1]).abs() <= (values[i] - x).abs(), i - 1, i)


def assign(w: torch.Tensor, h: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """GPTQ indices [rows, cols] into the sorted ``values`` for the rows of ``w`` [rows, cols]
    whose inputs have second moment ``h`` [cols, cols] (float64 throughout)."""
    w = w.to(torch.float64).clone()
    h = h.clone()
    dead = torch.diagonal(h) == 0  # inputs that are always 0: their weights do not matter
    h[dead, dead] = 1.0
    h += DAMP * torch.diagonal(h).mean() * torch.eye(h.shape[0], dtype=h.dtype)
    u = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)
    values = values.to(torch.float64)
    q = torch.empty(w.shape, dtype=torch.long)
    cols = w.shape[1]
    for b0 in range(0, cols, BLOCK):
        b1 = min(b0 + BLOCK, cols)
        block = w[:, b0:b1].clone()
        err = torch.empty_like(block)
        for i in range(b1 - b0):
            idx = nearest(block[:, i], values)
            q[:, b0 + i] = idx
            err[:, i] = (block[:, i] - values[idx]) / u[b0 + i, b0 + i]
            block[:, i + 1:] -= err[:, i:i + 1] * u[b0 + i, b0 + i + 1:b1]
        w[:, b1:] -= err @ u[b0:b1, b1:]
    return q


def assign_tensor(weight: torch.Tensor, h: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """GPTQ indices (flat, the weight's element order) of a layer's weight [out, in / groups,
    ...] whose inputs have second moments ``h`` [groups, fan, fan]."""
    groups = h.shape[0]
    rows = weight.reshape(weight.shape[0], -1)
    per = rows.shape[0] // groups
    parts = [assign(rows[g * per:(g + 1) * per], h[g], values) for g in range(groups)]
    return torch.cat(parts).reshape(-1)


__all__ = ["second_moments", "assign", "assign_tensor", "nearest", "LAYERS", "DAMP"]
