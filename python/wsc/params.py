"""Which tensors of a model share the codebook, and which are stored unchanged.

The choice works on ``model.state_dict()`` names only, so it needs no knowledge of the
layer types (custom modules work as they are):

- ``"weights"`` (default): every floating *parameter* with two or more dimensions: the
  weights of Conv*/Linear/Embedding/attention/recurrent layers and of any custom module
  holding matrices or kernels. Biases and norm scales (1-D) and all buffers stay as they are.
- ``"all"``: every floating parameter and every floating buffer (BatchNorm running
  statistics included); integer and bool buffers (e.g. ``num_batches_tracked``) never.
- a predicate ``(name, tensor) -> bool`` called on each non-empty floating state-dict
  entry with at least one dimension.

Never shared, whatever ``params`` says: integer, bool and complex tensors, empty tensors and
scalars (0-d; sharing one would cost more than storing it). They are stored unchanged, and
the predicate is not asked about them.

Tensors tied to one another (the same storage under two names) are shared or stored
once; the other names are recorded as aliases.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Union

import torch

ParamSpec = Union[str, Callable[[str, torch.Tensor], bool]]


@dataclass(frozen=True)
class Selection:
    """The state-dict names to share, to store unchanged, and the aliases of tied tensors."""

    shared: tuple[str, ...]
    unshared: tuple[str, ...]
    aliases: dict[str, str] = field(default_factory=dict)  # alias name -> stored name
    order: tuple[str, ...] = ()  # every state-dict name, in the model's order


def _identity(t: torch.Tensor) -> tuple:
    if t.numel() == 0:
        return ("empty", id(t))
    return (t.device.type, t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape),
            tuple(t.stride()), t.dtype)


def select(model: torch.nn.Module, params: ParamSpec = "weights") -> Selection:
    """Split ``model.state_dict()`` into shared and unshared names according to ``params``."""
    if isinstance(params, str):
        if params not in ("weights", "all"):
            raise ValueError(f"params must be 'weights', 'all' or a callable (name, tensor) -> bool; got {params!r}")
    elif not callable(params):
        raise TypeError(f"params must be 'weights', 'all' or a callable; got {type(params).__name__}")
    param_names = {name for name, _ in model.named_parameters(remove_duplicate=False)}
    state = model.state_dict(keep_vars=True)
    seen: dict[tuple, str] = {}
    aliases: dict[str, str] = {}
    shared, unshared = [], []
    for name, t in state.items():
        key = _identity(t)
        if key in seen:
            aliases[name] = seen[key]
            continue
        seen[key] = name
        (shared if _wanted(name, t, name in param_names, params) else unshared).append(name)
    return Selection(tuple(shared), tuple(unshared), aliases, tuple(state))


def _wanted(name: str, t: torch.Tensor, is_param: bool, params: ParamSpec) -> bool:
    if not t.is_floating_point() or t.numel() == 0 or t.dim() == 0:
        return False
    if params == "weights":
        return is_param and t.dim() >= 2
    if params == "all":
        return True
    answer = params(name, t.detach())
    if not isinstance(answer, (bool, int)) and not hasattr(answer, "__bool__"):
        raise TypeError(f"params predicate must return a bool; got {type(answer).__name__} for {name!r}")
    return bool(answer)


__all__ = ["Selection", "select", "ParamSpec"]
