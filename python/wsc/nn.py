"""Shared-weight inference: modules that keep uint8/uint16 indices plus the codebook.

``share_tensors_`` swaps chosen parameters of any module for two buffers,
``<name>_indices`` and ``<name>_codebook``; reading ``module.<name>`` then materialises
the weight with the fused native gather (``torch.ops.wsc.gather``) in the parameter's
original dtype. Like ``torch.nn.utils.parametrize``, this works by giving the module a
dynamic subclass with a property per shared name, so any module that reads its
parameters as attributes (Conv*, Linear, Embedding, custom modules) runs unchanged.
``mode="compact"`` never keeps the float weight (it lives only while forward uses it);
``mode="cached"`` keeps it after first use, for speed. On the CPU, a codebook of at most 16
values packs the indices two per byte (``pack=True``, the default): half the memory again.
"""

from __future__ import annotations

import os
from typing import Mapping

import numpy as np
import torch
from torch import nn

from wsc._arrays import INDEX_CODES, check_tensor
from wsc.container import rescale, scale_counts

MODES = ("compact", "cached")
_CLASSES: dict[tuple[type, frozenset], type] = {}


def _weight_property(name: str) -> property:
    def get(self):
        idx = self._buffers[f"{name}_indices"]
        cb = self._buffers[f"{name}_codebook"]
        key = (idx._version, cb._version, idx.data_ptr(), cb.data_ptr())
        hit = self._wsc_cache.get(name)
        if hit is not None and hit[0] == key:
            return hit[1]
        shape = self._wsc_packed.get(name)
        scale = self._buffers.get(f"{name}_scale")
        dtype = self._wsc_dtypes[name] if scale is None else torch.float32
        if shape is None:
            w = torch.ops.wsc.gather(idx, cb, dtype)
        else:
            w = torch.ops.wsc.gather_u4(idx, cb, shape, dtype)
        if scale is not None:  # the product a .wsc reader computes, then the parameter's dtype
            w = rescale(w, scale).to(self._wsc_dtypes[name]).reshape(shape if shape is not None else idx.shape)
        if self._wsc_mode == "cached":
            self._wsc_cache[name] = (key, w)
        return w

    return property(get, doc=f"{name}, gathered from {name}_indices and {name}_codebook")


def _guarded_setattr(self, name, value):
    if name in self.__dict__.get("_wsc_dtypes", ()):
        raise AttributeError(f"{name} is shared (indices + codebook); call wsc.nn.unshare_(model) to assign it")
    type(self)._wsc_base.__setattr__(self, name, value)


def _shared_class(cls: type, names: frozenset) -> type:
    key = (cls, names)
    if key not in _CLASSES:
        attrs = {n: _weight_property(n) for n in names}
        attrs["_wsc_base"] = cls
        attrs["__setattr__"] = _guarded_setattr
        _CLASSES[key] = type(f"Shared{cls.__name__}", (cls,), attrs)
    return _CLASSES[key]


def _split(model: nn.Module, qualified: str) -> tuple[nn.Module, str]:
    owner, _, leaf = qualified.rpartition(".")
    return (model.get_submodule(owner) if owner else model), leaf


def share_tensors_(model: nn.Module, indices: Mapping[str, torch.Tensor], codebook: torch.Tensor,
                   mode: str = "compact", pack: bool = True,
                   packed_shapes: Mapping[str, list[int]] | None = None,
                   scales: Mapping[str, torch.Tensor] | None = None) -> nn.Module:
    """Replace each parameter named in ``indices`` by indices + ``codebook``; returns ``model``.

    ``indices`` maps qualified parameter names to uint8/uint16 tensors of the parameter's
    shape; ``codebook`` is a float32 1-D tensor shared by all of them (stored once). With
    ``pack`` and at most 16 values, CPU indices are stored 4 bits each. Names in
    ``packed_shapes`` come already packed (``wsc.ops.pack_u4``) for a parameter of that shape.
    ``scales``: for names whose weights are ``codebook[i] * scale`` (a normalised scope), the
    scales (one, or one per slice along dimension 0), kept as ``<name>_scale`` buffers.
    """
    packed_shapes = packed_shapes or {}
    scales = scales or {}
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    check_tensor(codebook, "codebook", (torch.float32,), device=None)
    if codebook.dim() != 1 or codebook.numel() == 0:
        raise ValueError(f"codebook must be a non-empty 1-D tensor, got shape {tuple(codebook.shape)}")
    from wsc.ops import pack_u4

    by_module: dict[nn.Module, dict[str, tuple]] = {}
    for qualified, idx in indices.items():
        module, leaf = _split(model, qualified)
        param = module._parameters.get(leaf)
        if param is None:
            raise ValueError(f"{qualified!r} is not a parameter of the model")
        device = None if param.device.type == "meta" else param.device.type
        check_tensor(idx, f"indices[{qualified!r}]", tuple(INDEX_CODES), device=device)
        shape = packed_shapes.get(qualified)
        if shape is not None:
            if list(param.shape) != list(shape) or idx.shape != ((param.numel() + 1) // 2,) or codebook.numel() > 16:
                raise ValueError(f"indices[{qualified!r}]: not {(param.numel() + 1) // 2} packed bytes for "
                                 f"shape {tuple(param.shape)} and a codebook of <= 16 values")
        elif idx.shape != param.shape:
            raise ValueError(f"indices[{qualified!r}] has shape {tuple(idx.shape)}, the parameter {tuple(param.shape)}")
        scale = scales.get(qualified)
        if scale is not None and (scale.dim() != 1 or scale.numel() not in scale_counts(param.shape)):
            raise ValueError(f"scales[{qualified!r}]: {tuple(scale.shape)} for a parameter of shape "
                             f"{tuple(param.shape)} (1, or one per slice of dimension 0)")
        by_module.setdefault(module, {})[leaf] = (idx, shape, scale)
    shared_packs: dict[int, torch.Tensor] = {}  # tied weights keep one packed buffer
    for module, leaves in by_module.items():
        base = getattr(type(module), "_wsc_base", type(module))
        dtypes = dict(getattr(module, "_wsc_dtypes", {}))
        packed = dict(getattr(module, "_wsc_packed", {}))
        for leaf, (idx, shape, scale) in leaves.items():
            dtypes[leaf] = module._parameters[leaf].dtype
            del module._parameters[leaf]
            if shape is not None:
                packed[leaf] = list(shape)
            elif pack and codebook.numel() <= 16 and idx.device.type == "cpu":
                packed[leaf] = list(idx.shape)
                key = idx.data_ptr()
                if key not in shared_packs:
                    shared_packs[key] = pack_u4(idx.to(torch.uint8))
                idx = shared_packs[key]
            module.register_buffer(f"{leaf}_indices", idx)
            module.register_buffer(f"{leaf}_codebook", codebook.to(idx.device))
            if scale is not None:
                module.register_buffer(f"{leaf}_scale", scale.to(idx.device))
        module.__dict__["_wsc_dtypes"] = dtypes
        module.__dict__["_wsc_packed"] = packed
        module.__dict__["_wsc_mode"] = mode
        module.__dict__["_wsc_cache"] = {}
        module.__class__ = _shared_class(base, frozenset(dtypes))
    return model


def _compact_source(source):
    """(codebook, {name: () -> flat indices}, {name: (shape, dtype, scale)}, stored state, aliases) of a
    .wsc file (path or bytes) or of a CompressionResult's chosen solution; indices are decoded
    only when asked for, one tensor at a time."""
    from wsc import container
    from wsc.result import CompressionResult

    if isinstance(source, CompressionResult):
        p = source.payload(source.choose())
        shared = {t.name: (lambda t=t: t.indices) for t in p.shared}
        meta = {t.name: (tuple(t.shape), t.dtype, t.scale) for t in p.shared}
        return torch.from_numpy(np.asarray(p.codebook, dtype=np.float32)), shared, meta, p.restored(), dict(p.aliases)
    if not isinstance(source, (str, bytes, os.PathLike)):
        raise TypeError(f"source must be a .wsc path, its bytes or a CompressionResult; got {type(source).__name__}")
    a = container.read(source)
    shared = {s.entry["name"]: (lambda j=j: a.indices(j)) for j, s in enumerate(a.streams)}
    meta = {s.entry["name"]: (tuple(s.entry["shape"]), container._FLOATS[s.entry["dtype"]],
                              None if s.scale is None else s.scale.clone()) for s in a.streams}
    stored = {e["name"]: a.stored_tensor(j) for j, e in enumerate(a.stored)}
    # clone: the codebook may be a view into the file's bytes, which must not stay resident
    return a.codebook.clone(), shared, meta, stored, dict(a.aliases)


def share_(model: nn.Module, source, mode: str = "compact", pack: bool = True) -> nn.Module:
    """Load a compressed model into ``model`` keeping shared weights compact; returns ``model``.

    ``source``: a .wsc path (or its bytes) or a :class:`wsc.CompressionResult` (its chosen
    solution). Shared weights become uint8/uint16 index buffers plus the codebook, gathered
    on use (``mode`` "compact" or "cached"); the other tensors are loaded as stored. ``model``
    may live on the meta device (built with ``torch.device("meta")``), so no float copy of
    the shared weights is ever made. Outputs equal those of ``wsc.load_into`` bit for bit.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    codebook, shared, meta, stored, aliases = _compact_source(source)
    params = dict(model.named_parameters(remove_duplicate=False))
    own = dict(model.state_dict(keep_vars=True))
    names = set(shared) | set(stored) | set(aliases)
    missing, unexpected = sorted(set(own) - names), sorted(names - set(own))
    if missing or unexpected:
        raise ValueError(f"the compressed model does not match the model: missing {missing[:10]}, "
                         f"unexpected {unexpected[:10]}")
    from wsc.ops import pack_u4

    indices: dict[str, torch.Tensor] = {}
    packed_shapes: dict[str, list[int]] = {}
    scales: dict[str, torch.Tensor] = {}
    per_target: dict[str, torch.Tensor] = {}  # tied names share one buffer
    for name in sorted(set(shared) | {a for a, t in aliases.items() if t in shared}):
        target = aliases.get(name, name)
        shape, dtype, scale = meta[target]
        if scale is not None:
            scales[name] = scale
        if name not in params:
            raise ValueError(f"{name}: shared in the file but not a parameter of the model")
        p = params[name]
        if tuple(p.shape) != shape or p.dtype != dtype:
            raise ValueError(f"{name}: {tuple(shape)} {dtype} in the file, {tuple(p.shape)} {p.dtype} in the model")
        on_cpu = p.device.type in ("cpu", "meta")
        packs = pack and on_cpu and codebook.numel() <= 16
        if target not in per_target:  # decode, and pack at once: one full index array at a time
            idx = torch.from_numpy(shared[target]()).reshape(shape)
            per_target[target] = pack_u4(idx) if packs else (idx if on_cpu else idx.to(p.device))
        indices[name] = per_target[target]
        if packs:
            packed_shapes[name] = list(shape)
    plain = {n: stored[aliases.get(n, n)] for n in own if n not in indices}
    for n, t in plain.items():
        if t.shape != own[n].shape or t.dtype != own[n].dtype:
            raise ValueError(f"{n}: {tuple(t.shape)} {t.dtype} in the file, {tuple(own[n].shape)} {own[n].dtype} in the model")
    model.load_state_dict(plain, strict=False, assign=any(t.is_meta for t in own.values()))
    return share_tensors_(model, indices, codebook, mode, pack, packed_shapes, scales)


def load_shared(model: nn.Module, path, mode: str = "compact", pack: bool = True) -> nn.Module:
    """Load the .wsc file at ``path`` into ``model`` with compact shared weights (see :func:`share_`)."""
    return share_(model, path, mode, pack)


def shared_modules(model: nn.Module):
    """(qualified name, module) of every module holding shared weights."""
    return [(n, m) for n, m in model.named_modules() if hasattr(type(m), "_wsc_base")]


def unshare_(model: nn.Module) -> nn.Module:
    """Restore plain float parameters (materialised from indices + codebook); returns ``model``."""
    for _, module in shared_modules(model):
        weights = {leaf: getattr(module, leaf) for leaf in module._wsc_dtypes}
        module.__class__ = module._wsc_base
        for leaf, w in weights.items():
            del module._buffers[f"{leaf}_indices"], module._buffers[f"{leaf}_codebook"]
            module._buffers.pop(f"{leaf}_scale", None)
            module.register_parameter(leaf, nn.Parameter(w.clone(), requires_grad=True))
        for attr in ("_wsc_dtypes", "_wsc_packed", "_wsc_mode", "_wsc_cache"):
            del module.__dict__[attr]
    return model
