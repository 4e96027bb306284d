"""Error-compensated assignment of weights to shared values (GPTQ / Optimal Brain Quantization).

Rounding every weight to its bin's value ignores what the layer computes. For a layer
y = W x, the output error of a rounded row is (w - q) H (w - q)^T with H = E[x x^T], the
second moment of the layer's inputs over some calibration data. GPTQ (Frantar et al.,
2023) rounds one input column at a time and moves the error it made onto the columns not
yet rounded, through the inverse of H (its Cholesky factor), so that the later roundings
cancel it. Here the "rounding" is to a value of the shared codebook, so the result is still
one index per weight into the same codebook: only which value each weight takes changes.
Columns go in order of decreasing H diagonal (GPTQ's "act order": the inputs with most
energy first, while most columns remain to absorb their error). No training, no gradients:
one pass of calibration inputs to collect H per layer, then a few matrix operations per
layer.

Rate: GPTQ alone spreads the weights over more values than plain rounding (higher entropy,
larger files). With ``rate`` > 0 a weight takes whichever of the two values around it
costs less in ((w - v) / spacing)^2 + rate * bits(v), where bits(v) = -log2 of v's share
under plain rounding of the same tensor and spacing the mean gap between values: a
cheaper value wins when the weight lies almost halfway (entropy-constrained rounding).

Layers: ``nn.Linear`` and ``nn.Conv1d`` / ``nn.Conv2d`` (any groups; a convolution's inputs
are its unfolded patches), and one-layer, one-direction ``nn.RNN`` / ``nn.GRU`` / ``nn.LSTM``
(``weight_ih_l0`` sees the input sequence, ``weight_hh_l0`` the previous hidden states:
the initial state, then the output sequence but its last step). Other shared tensors keep
the plain bin assignment.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from wsc._native import _C

LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d)
RNNS = (nn.RNN, nn.GRU, nn.LSTM)
DAMP = 0.01  # added to H's diagonal, as a fraction of its mean: keeps the factorisation stable
BLOCK = 128  # columns updated lazily together (the result does not depend on it)
RATES = (0.0, 0.1, 0.25)  # the rate weights a compensated codebook may use (Codebook.compensation - 1)
CHUNK = 1 << 16  # rows of layer inputs turned into float64 at once


def _patches(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The inputs of ``m``'s weight as rows [samples, groups, fan_in / groups]."""
    if isinstance(m, nn.Linear):
        return x.reshape(-1, 1, x.shape[-1])
    # padded as the convolution pads ("same": the odd extra on the right; any padding mode)
    pads = m._reversed_padding_repeated_twice
    if any(pads):
        x = F.pad(x, pads, mode="constant" if m.padding_mode == "zeros" else m.padding_mode)
    if isinstance(m, nn.Conv1d):  # as a 2-D convolution of height 1
        x, kernel, dil, stride = x.unsqueeze(2), (1, *m.kernel_size), (1, *m.dilation), (1, *m.stride)
    else:
        kernel, dil, stride = m.kernel_size, m.dilation, m.stride
    cols = F.unfold(x, kernel, dilation=dil, stride=stride)  # [N, C*kh*kw, L]
    n, d, length = cols.shape
    return cols.transpose(1, 2).reshape(n * length, m.groups, d // m.groups)


def _recurrent(m: nn.Module, leaf: str, inputs: tuple, kwargs: dict, output) -> torch.Tensor | None:
    """The inputs of a one-layer recurrent module's ``weight_ih_l0`` or ``weight_hh_l0`` as
    rows [samples, 1, fan_in]; None for what cannot be read (a PackedSequence, an unbatched
    sequence): that call adds nothing."""
    x, out = inputs[0], output[0]
    if isinstance(x, nn.utils.rnn.PackedSequence) or x.dim() != 3:
        return None
    if leaf == "weight_ih_l0":
        return x.reshape(-1, 1, x.shape[-1])
    if not m.batch_first:  # [T, N, H] -> [N, T, H]
        out = out.transpose(0, 1)
    h0 = inputs[1] if len(inputs) > 1 else kwargs.get("hx")
    if isinstance(h0, tuple):  # LSTM: (h0, c0)
        h0 = h0[0]
    h0 = torch.zeros_like(out[:, :1]) if h0 is None else h0.reshape(-1, 1, out.shape[-1])
    prev = torch.cat([h0.expand(out.shape[0], 1, -1), out[:, :-1]], 1)
    return prev.reshape(-1, 1, prev.shape[-1])


def _target(modules: dict, name: str):
    """(module, leaf) when the weight ``name`` can be compensated, else None."""
    owner, _, leaf = name.rpartition(".")
    m = modules.get(owner)
    if leaf == "weight" and isinstance(m, LAYERS) and not isinstance(m, nn.modules.conv._ConvTransposeNd):
        return m, leaf
    if (isinstance(m, RNNS) and leaf in ("weight_ih_l0", "weight_hh_l0") and m.num_layers == 1
            and not m.bidirectional and getattr(m, "proj_size", 0) == 0):
        return m, leaf
    return None


def _moment(p: torch.Tensor) -> torch.Tensor:
    """sum over rows of p p^T per group, in float64, CHUNK rows at a time (bounded memory)."""
    g = None
    for part in p.split(CHUNK):
        q = part.to(torch.float64)
        s = torch.einsum("ngi,ngj->gij", q, q)
        g = s if g is None else g + s
    return g


def inputs_on(device: torch.device, batch):
    """A calibration batch as the model takes it: its tensors on ``device``."""
    move = lambda v: v.to(device) if isinstance(v, torch.Tensor) else v  # noqa: E731
    if isinstance(batch, dict):
        return {k: move(v) for k, v in batch.items()}
    return move(batch[0] if isinstance(batch, (tuple, list)) else batch)


def second_moments(model: nn.Module, names: Iterable[str], batches: Iterable) -> dict[str, torch.Tensor]:
    """H = E[x x^T] (float64 on the CPU, [groups, fan_in / groups, fan_in / groups]) of the
    inputs of each weight in ``names`` that belongs to a supported layer, over ``batches`` run
    through ``model`` in eval mode (so no BatchNorm statistic moves; the mode is restored)
    on the device of its parameters: a tensor each, a tuple / list whose first element is
    the input, or a dict of keyword inputs. Convolutions are unfolded a few samples at a
    time, so memory stays near CHUNK rows."""
    modules = dict(model.named_modules())
    targets = {n: t for n in names if (t := _target(modules, n)) is not None}
    sums = {n: None for n in targets}
    counts = dict.fromkeys(targets, 0)

    def hook(name, leaf):
        def collect(module, args, kwargs, output):
            if isinstance(module, RNNS):
                p = _recurrent(module, leaf, args, kwargs, output)
                parts = [] if p is None else [p.detach()]
            elif isinstance(module, nn.Linear):
                parts = [_patches(module, args[0].detach())]
            else:  # a few samples at a time: the unfolded patches outgrow the batch L-fold
                x = args[0].detach()
                if x.dim() == len(module.kernel_size) + 1:  # unbatched
                    x = x.unsqueeze(0)
                positions = math.prod(output.shape[-len(module.kernel_size):])
                parts = [_patches(module, xs) for xs in x.split(max(1, CHUNK // positions))]
            for p in parts:
                g = _moment(p)
                sums[name] = g if sums[name] is None else sums[name] + g
                counts[name] += p.shape[0]
        return collect

    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    handles = [m.register_forward_hook(hook(n, leaf), with_kwargs=True) for n, (m, leaf) in targets.items()]
    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for batch in batches:
                x = inputs_on(device, batch)
                model(**x) if isinstance(x, dict) else model(x)
    finally:
        model.train(training)
        for h in handles:
            h.remove()
    return {n: (sums[n] / counts[n]).cpu() for n in targets if counts[n]}


def nearest(x: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Index of the nearest of the sorted ``values`` for every element of ``x`` (ties: the lower)."""
    if values.numel() == 1:
        return torch.zeros(x.shape, dtype=torch.long)
    i = torch.searchsorted(values, x.contiguous()).clamp(1, values.numel() - 1)  # values[i - 1], values[i] around x
    return torch.where((x - values[i - 1]).abs() <= (values[i] - x).abs(), i - 1, i)


def code_lengths(w: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """-log2 of each value's share (plus half a count) when ``w`` is rounded to the nearest."""
    c = torch.bincount(nearest(w.reshape(-1), values), minlength=values.numel()).to(torch.float64) + 0.5
    return -torch.log2(c / c.sum())


def _solve_block(block, u, pivots, values, bits, rate):
    """(indices, errors) of one block of columns [groups, rows, width] by the native kernel
    (wsc.reference.gptq_block is its plain twin): each column rounded in turn and its error
    moved onto the block's later columns."""
    block = block.clone(memory_format=torch.contiguous_format)
    u, pivots = u.contiguous(), pivots.contiguous()
    groups, rows, width = block.shape
    q = torch.empty(block.shape, dtype=torch.long)
    err = torch.empty_like(block)
    _C.gptq_block(block.data_ptr(), groups, rows, width, u.data_ptr(), pivots.data_ptr(), values.data_ptr(),
                  values.numel(), bits.data_ptr() if bits is not None else 0, float(rate), q.data_ptr(), err.data_ptr())
    return q, err


@dataclass(frozen=True, eq=False)
class Factor:
    """What GPTQ needs of a layer's H, computed once per layer (:func:`factor`): the column
    order (decreasing H diagonal, int64 [groups, cols]) and the upper Cholesky factor of the
    damped H's inverse in that order (float64 [groups, cols, cols]), on the CPU."""

    order: torch.Tensor
    u: torch.Tensor

    def __post_init__(self):
        g, c = self.order.shape if self.order.dim() == 2 else (-1, -1)
        if (self.order.dtype != torch.int64 or self.u.dtype != torch.float64 or tuple(self.u.shape) != (g, c, c)
                or self.order.device.type != "cpu" or self.u.device.type != "cpu"):
            raise ValueError("a Factor holds order (int64 [groups, cols]) and u (float64 [groups, cols, cols]) on "
                             f"the cpu; got {self.order.dtype} {tuple(self.order.shape)} and {self.u.dtype} "
                             f"{tuple(self.u.shape)}")


def factor(h: torch.Tensor) -> Factor:
    """The :class:`Factor` of second moments ``h`` [cols, cols] or [groups, cols, cols]."""
    if h.dim() not in (2, 3) or h.shape[-1] != h.shape[-2]:
        raise ValueError(f"h must be [cols, cols] or [groups, cols, cols]; got shape {tuple(h.shape)}")
    h = h.to(device="cpu", dtype=torch.float64).reshape(-1, *h.shape[-2:])
    cols = h.shape[-1]
    order = torch.argsort(torch.diagonal(h, dim1=1, dim2=2), dim=1, descending=True, stable=True)
    h = h.gather(1, order[:, :, None].expand_as(h)).gather(2, order[:, None, :].expand_as(h))
    diag = torch.diagonal(h, dim1=1, dim2=2)  # a view: writes go to h
    diag[diag == 0] = 1.0  # inputs that are always 0: their weights do not matter
    damp = torch.stack([DAMP * d.mean() for d in diag])  # per group, as alone
    h += damp[:, None, None] * torch.eye(cols, dtype=h.dtype)
    return Factor(order, torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True))


def assign(w: torch.Tensor, h: torch.Tensor | Factor, values: torch.Tensor, rate: float = 0.0,
           bits: torch.Tensor | None = None) -> torch.Tensor:
    """GPTQ indices [rows, cols] into the sorted ``values`` for the rows of ``w`` [rows, cols]
    whose inputs have second moment ``h`` [cols, cols] (or its :class:`Factor`; float64
    throughout), columns in order of decreasing H diagonal; ``rate``: weight of the code
    length (module doc), with each value's ``bits`` (default: :func:`code_lengths` of
    ``w``). With a leading dimension of groups (``w`` [groups, rows, cols], ``h`` [groups,
    cols, cols]: a grouped convolution's independent parts) all groups are solved together,
    each as it would be alone."""
    for name, t in (("w", w), ("values", values), ("bits", bits)):
        if t is not None and t.device.type != "cpu":
            raise ValueError(f"{name} must be on the cpu device (GPTQ runs there); got {t.device}")
    values = values.to(torch.float64).contiguous()
    if values.dim() != 1 or values.numel() == 0 or not bool(torch.isfinite(values).all()) or bool((values.diff() < 0).any()):
        raise ValueError(f"values must be a non-empty 1-D tensor of finite values sorted ascending; got shape {tuple(values.shape)}")
    if w.dim() not in (2, 3):
        raise ValueError(f"w must be [rows, cols] or [groups, rows, cols]; got shape {tuple(w.shape)}")
    f = h if isinstance(h, Factor) else factor(h)
    single = w.dim() == 2
    w = w.to(torch.float64).reshape(-1, *w.shape[-2:])
    groups, _, cols = w.shape
    if f.u.shape[1:] != (cols, cols) or f.u.shape[0] not in (1, groups):
        raise ValueError(f"h must be [{cols}, {cols}] or [{groups}, {cols}, {cols}] for w of shape {tuple(w.shape)}; its "
                         f"factor is {tuple(f.u.shape)}")
    u, order = f.u.expand(groups, cols, cols), f.order.expand(groups, cols)  # one H for every group
    if rate and bits is None:
        bits = code_lengths(w, values)
    if bits is not None:
        bits = bits.to(torch.float64).contiguous()
        if bits.shape != values.shape:
            raise ValueError(f"bits must hold one length per value ({values.numel()}); got shape {tuple(bits.shape)}")
    w = w.gather(2, order[:, None, :].expand_as(w))
    pivots = torch.diagonal(u, dim1=1, dim2=2)
    q = torch.empty(w.shape, dtype=torch.long)
    for b0 in range(0, cols, BLOCK):
        b1 = min(b0 + BLOCK, cols)
        q[..., b0:b1], err = _solve_block(w[..., b0:b1], u[..., b0:b1, b0:b1], pivots[..., b0:b1], values, bits, rate)
        if groups == 1:  # a matrix product (what one matrix always used)
            w[0, :, b1:] -= err[0] @ u[0, b0:b1, b1:]
        else:
            w[..., b1:] -= err @ u[..., b0:b1, b1:]
    out = torch.empty_like(q).scatter_(2, order[:, None, :].expand_as(q), q)
    return out[0] if single else out


def assign_tensor(weight: torch.Tensor, h: torch.Tensor | Factor, values: torch.Tensor, rate: float = 0.0) -> torch.Tensor:
    """GPTQ indices (flat, the weight's element order) of a layer's weight [out, in / groups,
    ...] whose inputs have second moments ``h`` [groups, fan, fan] (or their :class:`Factor`);
    the groups solved together."""
    groups = (h.u if isinstance(h, Factor) else h).shape[0]
    rows = weight.reshape(weight.shape[0], -1)
    bits = code_lengths(rows.to(torch.float64), values.to(torch.float64)) if rate else None  # the whole tensor's
    return assign(rows.reshape(groups, rows.shape[0] // groups, -1), h, values, rate, bits).reshape(-1)


__all__ = ["second_moments", "inputs_on", "Factor", "factor", "assign", "assign_tensor", "nearest", "code_lengths", "LAYERS", "DAMP",
           "RATES"]
