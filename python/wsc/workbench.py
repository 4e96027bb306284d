"""Working copies of the model, and turning a codebook into shared weights or a file payload.

Memory: the caller's model is deep-copied once, into the working copy that evaluations
run on (further copies, one per extra worker thread, are made from it). The original
weights are *not* copied again: the workbench reads them from the caller's tensors
(they must not change until the result is saved; an in-place change is detected and
refused). The codebook of any k comes from a streaming pass over those tensors
(:class:`wsc.codebook.WeightStream`), and the indices of a file are made and coded one
tensor at a time. So compressing needs about one float32 copy of the shared weights beyond
the model, plus the coded file while it is written. Copies are made only of tensors the
kernels cannot read in place (on another device, not contiguous, or float64: binned as
float32), and of tensors whose NaN/Inf are replaced (``nan="zero"``).

Applying a codebook writes ``wsc.ops.share`` of the original weights into the working
copy's tensors in place (one O(N) pass). After :meth:`Workbench.calibrate`, a compensated
codebook (:meth:`wsc.codebook.Codebook.compensate`) assigns the weights of Linear and Conv
layers by GPTQ instead (:mod:`wsc.compensate`); its indices are made once and kept for the
few most recent such codebooks.

The unshared tensors go into the file exactly or compact (``stored``, :mod:`wsc.stored`:
BatchNorm folded into its affine map, float16); after :meth:`Workbench.calibrate` the
BatchNorm statistics are re-estimated for each codebook. Either way each working copy
holds, for the codebook it scores, exactly the unshared tensors its file would restore
(made once per codebook and kept for the most recent few).

Schemes with a per-tensor or per-channel scope (:mod:`wsc.scheme`) bin normalised weights:
each tensor divided by its scale (the standard deviation of the tensor or of each slice
along dimension 0, rounded to bfloat16, which is how the file stores it). Those float32
copies (and their sorted form) are made the first time such a scheme is asked for; a
shared weight is then ``fl32(value * scale)``, computed the same way when a file is read.
Step levels (``Scheme.steps``) work the same way: a tensor at level j > 0 is divided by its
scale times ``2 ** (j / 2)`` (a scale of its own in the global scope); its copies are made
per (scope, tensor, level), the most recent kept up to 4 copies of the shared weights in all
(sorted models) or one (streamed models).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import queue
import threading
import warnings
import zlib
from collections import OrderedDict

import numpy as np
import torch

from wsc import ops
from wsc._arrays import index_dtype
from wsc.codebook import Codebook, SortedTensors, WeightStream, entropy_bits, huffman_bits
from wsc.compensate import RATES, Factor, assign_tensor, factor, second_moments
from wsc.scheme import PAPER, Scheme, clip_range, step_groups, step_multiplier
from wsc.stored import STATS, batchnorms, check_stored, compact, examples, recalibrate

# Up to this many shared weights the codebooks come from sorted copies (12 bytes per weight,
# O(k log N) per codebook); above it from streaming passes (no copy, O(N) per codebook), so
# a model of 1e9 weights compresses in about 1.5x its float32 size.
SORT_LIMIT = 1 << 25
from wsc.container import Payload, SharedTensor, rescale, restore_stored, scale_counts
from wsc.params import ParamSpec, Selection, select

_NATIVE = (torch.float32, torch.float16, torch.bfloat16)
NAN_POLICIES = ("error", "zero", "skip")
ASSIGNED_KEPT = 4  # compensated codebooks whose indices stay in memory
STORED_KEPT = 16  # codebooks whose recalibrated unshared tensors stay in memory
STEPPED_WEIGHTS = 4  # copies at other step levels kept, in weights, per shared weight of the model
STEPPED_KEPT = 16  # step-level combinations whose bins sources stay in memory


def check_model(model: torch.nn.Module) -> None:
    """TypeError unless a Module; ValueError naming the tensors on the meta device (no values)."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    meta = [n for n, t in model.state_dict(keep_vars=True).items() if t.device.type == "meta"]
    if meta:
        more = f" and {len(meta) - 5} more" if len(meta) > 5 else ""
        raise ValueError(f"{len(meta)} tensor(s) of the model are on the meta device and hold no values: "
                         f"{', '.join(map(repr, meta[:5]))}{more}; materialise and load the weights first "
                         f"(e.g. model.to_empty(device='cpu') then model.load_state_dict(...))")


def _non_finite(t: torch.Tensor) -> int:
    """How many values of a floating tensor are NaN or Inf (0 without a full scan when all are finite)."""
    flat = t.detach()
    if flat.device.type == "cpu" and flat.is_contiguous() and flat.dtype in _NATIVE and flat.numel():
        try:
            ops.range(flat.reshape(-1))
            return 0
        except ValueError:
            pass
    return int((~torch.isfinite(flat)).sum())


class Workbench:
    """The shared tensors of one model, their binning, and a pool of working copies.

    ``nan``: what to do with shared tensors holding NaN or Inf: ``"error"`` (default: a
    ValueError naming them), ``"zero"`` (replace those values by 0 before sharing; the
    baseline is still scored on the original model) or ``"skip"`` (store such tensors
    unchanged, unshared). ``stored``: how the unshared tensors go into the file,
    ``"exact"``, ``"float16"`` or ``"compact"`` (:mod:`wsc.stored`).
    """

    def __init__(self, model: torch.nn.Module, params: ParamSpec = "weights", *, nan: str = "error",
                 stored: str = "exact"):
        check_model(model)
        self.stored_policy = check_stored(stored)
        if nan not in NAN_POLICIES:
            raise ValueError(f"nan must be one of {NAN_POLICIES}; got {nan!r}")
        selection = select(model, params)
        state = model.state_dict()
        bad = {n: c for n in selection.shared if (c := _non_finite(state[n]))}
        if bad and nan == "error":
            listed = ", ".join(f"{n!r} ({c} of {state[n].numel()} values)" for n, c in list(bad.items())[:5])
            raise ValueError(f"NaN or Inf in {len(bad)} tensor(s) selected for sharing: {listed}; pass "
                             f"nan='zero' to replace them by 0 before sharing, or nan='skip' to store those "
                             f"tensors unchanged (CLI: --nan zero|skip)")
        if bad and nan == "skip":
            unshared = set(selection.unshared) | set(bad)
            selection = Selection(tuple(n for n in selection.shared if n not in bad),
                                  tuple(n for n in selection.order if n in unshared),
                                  selection.aliases, selection.order)
        if not selection.shared:
            why = " (every candidate holds NaN or Inf and nan='skip')" if bad else ""
            raise ValueError(f"no tensor selected for sharing{why}: the model has no non-empty floating "
                             f"parameter matching params={_label(params)} (use params='all' or a predicate)")
        self.selection: Selection = selection
        self.non_finite = dict(bad)  # name -> count, as found (replaced or skipped per the policy)
        self.nan = nan
        # the caller's tensors, read in place (no copy); versions to detect in-place changes
        self.originals = {n: state[n].detach() for n in selection.shared}
        self.stored = {n: state[n].detach() for n in selection.unshared}
        self._versions = {n: t._version for n, t in {**self.originals, **self.stored}.items()}
        self._work = {n: self._readable(n, t) for n, t in self.originals.items()}
        self.weights = _source(self._work)
        self.lo, self.hi = self.weights.lo, self.weights.hi
        self._scoped: dict[str, tuple[dict, dict, object]] = {}  # scope -> (scales, normalised, source)
        self._stepped: OrderedDict = OrderedDict()  # (scope, name, level) -> (scale, normalised, sorted or None)
        self._stepped_sources: OrderedDict = OrderedDict()  # (scope, levels) -> (scales, normalised, source)
        self._step_groups = step_groups(len(self._work))
        self._scope_lock = threading.Lock()
        base = copy.deepcopy(model)  # the working copy: the only full copy made of the caller's model
        self._pool: queue.SimpleQueue = queue.SimpleQueue()
        self._base = base
        self._pool.put(self._targets(base))
        self._copy_lock = threading.Lock()
        self.factors: dict[str, Factor] = {}  # weight name -> GPTQ's factor of E[x x^T] of its layer's inputs
        self._assigned: OrderedDict = OrderedDict()  # compensated codebook key -> {name: indices}
        self._assign_lock = threading.Lock()
        tied = set(selection.aliases.values())  # tensors another name also uses: never rewritten
        unshared = [n for n in selection.unshared if n not in tied]
        self._folded = ({p: m.eps for p, m in batchnorms(base, unshared, ("weight", "bias", *STATS)).items()}
                        if stored != "exact" else {})
        self._norms = list(batchnorms(base, unshared))  # BatchNorms whose statistics calibration re-estimates
        self._calibration: list | None = None
        self._calibration_crc: int | None = None  # of the batches calibrate() last took
        self._stored_written = False  # whether copies may hold unshared tensors other than the originals
        # modes and BatchNorm momenta of the model, which re-estimation changes for a while on a copy
        self._modes = [(m.training, getattr(m, "momentum", None)) for m in base.modules()]
        self._stored: OrderedDict = OrderedDict()  # codebook key -> (file tensors, restore, restored)

    def _readable(self, name: str, t: torch.Tensor) -> torch.Tensor:
        """t flat, as the kernels read it: in place when possible, else a CPU float32 copy."""
        if name in self.non_finite:  # nan == "zero"
            t = torch.nan_to_num(t.to("cpu", torch.float32 if t.dtype not in _NATIVE else t.dtype),
                                 nan=0.0, posinf=0.0, neginf=0.0)
        if t.device.type != "cpu" or t.dtype not in _NATIVE:
            t = t.to("cpu", torch.float32 if t.dtype not in _NATIVE else t.dtype)
        return t.contiguous().reshape(-1)

    def check_unchanged(self) -> None:
        """RuntimeError if a tensor of the caller's model was changed in place since the start."""
        changed = [n for n, t in {**self.originals, **self.stored}.items() if t._version != self._versions[n]]
        if changed:
            listed = ", ".join(map(repr, changed[:5]))
            raise RuntimeError(f"the model's tensors changed after compress() began ({listed}); wsc reads the "
                               "original weights from the model itself, so keep them unchanged until the result "
                               "is saved, or compress again")

    # ------------------------------------------------------------ sizes
    @property
    def n_shared(self) -> int:
        return self.weights.n

    @property
    def original_bytes(self) -> int:
        """Bytes of every tensor the file represents, in its own dtype (tied tensors once)."""
        ts = list(self.originals.values()) + list(self.stored.values())
        return sum(t.numel() * t.element_size() for t in ts)

    # ------------------------------------------------------------ scopes
    def scoped(self, scheme: Scheme | str) -> tuple[dict, dict, object]:
        """(scales, normalised flat weights, their bins source) of a scheme (or a scope name);
        the global scope without steps has no scales and bins the weights themselves."""
        scope, steps = (scheme, ()) if isinstance(scheme, str) else (scheme.scope, scheme.steps)
        base = self._scope(scope)
        if not steps:
            return base
        levels = self.tensor_levels(steps)
        key = (scope, levels)
        with self._scope_lock:
            if key in self._stepped_sources:
                self._stepped_sources.move_to_end(key)
                return self._stepped_sources[key]
        scales, norm, parts = dict(base[0]), dict(base[1]), []
        for i, (name, j) in enumerate(zip(self._work, levels)):
            if j:
                scales[name], norm[name], part = self._stepped_tensor(scope, name, j)
            else:
                part = base[2].sorted[i] if isinstance(base[2], SortedTensors) else None
            parts.append(part)
        src = SortedTensors.of(parts) if isinstance(base[2], SortedTensors) else WeightStream(norm)
        with self._scope_lock:
            self._stepped_sources[key] = (scales, norm, src)
            while len(self._stepped_sources) > STEPPED_KEPT:
                self._stepped_sources.popitem(last=False)
        return scales, norm, src

    def _scope(self, scope: str) -> tuple[dict, dict, object]:
        if scope == "global":
            return {}, self._work, self.weights
        with self._scope_lock:
            if scope not in self._scoped:
                scales = {n: _scale(self.originals[n], t, scope) for n, t in self._work.items()}
                norm = {n: _divide(t, scales[n]) for n, t in self._work.items()}
                self._scoped[scope] = (scales, norm, _source(norm))
            return self._scoped[scope]

    def tensor_levels(self, steps: tuple[int, ...]) -> tuple[int, ...]:
        """The step level of each shared tensor, in order, from the levels of its groups."""
        groups = self.step_group_count
        if len(steps) != groups:
            raise ValueError(f"steps must hold one level per group of shared tensors ({groups} for this "
                             f"model's {len(self._work)} shared tensors); got {len(steps)}")
        return tuple(steps[g] for g in self._step_groups)

    @property
    def step_group_count(self) -> int:
        """How many step levels a scheme of this model holds (wsc.scheme.step_groups)."""
        return max(self._step_groups) + 1

    def _stepped_tensor(self, scope: str, name: str, level: int) -> tuple[torch.Tensor, torch.Tensor, object]:
        """(bfloat16 scale, normalised flat weights, their sorted form or None) of one tensor at
        a step level: divided by its scope's scale times the level's multiplier."""
        key = (scope, name, level)
        with self._scope_lock:
            if key in self._stepped:
                self._stepped.move_to_end(key)
                return self._stepped[key]
        base = self._scope(scope)[0].get(name)
        base = torch.ones(1) if base is None else base.float()
        s = _bf16_scale(base * step_multiplier(level))
        norm = _divide(self._work[name], s)
        part = SortedTensors({name: norm}).sorted[0] if isinstance(self.weights, SortedTensors) else None
        entry = (s, norm, part)
        # sorted models: a few copies; streamed ones (too big to sort): at most one copy in all
        budget = (STEPPED_WEIGHTS if part is not None else 1) * self.n_shared
        with self._scope_lock:
            self._stepped[key] = entry
            while sum(e[1].numel() for e in self._stepped.values()) > budget and len(self._stepped) > 1:
                (sc, n, j), _ = self._stepped.popitem(last=False)
                at = list(self._work).index(n)  # and the sources holding that copy
                for old in [k for k in self._stepped_sources if k[0] == sc and k[1][at] == j]:
                    del self._stepped_sources[old]
        return entry

    def codebook(self, k: int, scheme: Scheme = PAPER) -> Codebook:
        """The codebook of ``k`` values (uniform bins or k-means clusters) under ``scheme``."""
        _, _, src = self.scoped(scheme)
        lo, hi = clip_range(src.lo, src.hi, scheme.fraction)
        make = Codebook.uniform if scheme.placement == "uniform" else Codebook.kmeans
        return make(src, k, lo, hi, scheme)

    def tensor_counts(self, cb: Codebook) -> list[np.ndarray]:
        """Per shared tensor, how many of its weights take each codebook value."""
        if cb.compensated:
            return [np.bincount(i, minlength=cb.size) for i in self.assigned(cb).values()]
        per, _, _ = self.scoped(cb.scheme)[2].tensor_bins(cb.k, cb.lo, cb.hi)
        return [np.add.reduceat(c[cb.bins], list(cb.groups)) for c in per]

    def entropy(self, cb: Codebook) -> float:
        """Order-0 entropy of the codebook indices over all shared weights, bits per weight."""
        return entropy_bits(sum(self.tensor_counts(cb))) if cb.compensated else cb.entropy()

    # ------------------------------------------------------------ compensation
    def calibrate(self, batches) -> list[str]:
        """Collect the second moments of the inputs of every shared Linear / Conv weight over
        ``batches`` (run through the original model), for compensated codebooks, and keep the
        batches to re-estimate BatchNorm statistics for every codebook; returns the names of
        those weights. ValueError when the model has none or no batch reached them."""
        batches = list(batches)
        with self.model(None) as m:
            moments = second_moments(m, self._work, batches)
        bad = [n for n, h in moments.items() if not bool(torch.isfinite(h).all())]
        if bad:
            warnings.warn(f"calibration: NaN or Inf in the inputs of {', '.join(bad)} (overflow?); those "
                          "weights keep their bins' values", RuntimeWarning, stacklevel=2)
        factors = {}
        for n, h in moments.items():  # once per layer, not per codebook; nothing changes if one fails
            if n not in bad:
                try:
                    factors[n] = factor(h)
                except torch.linalg.LinAlgError as exc:
                    raise ValueError(f"calibration: the inputs of {n} give no usable second moments ({exc})") from exc
        self._calibration_crc = _digest(batches)
        self.factors = factors
        with self._assign_lock:
            self._assigned.clear()
            self._stored.clear()
        self._calibration = batches if self.factors and self._norms else None
        if self._calibration is not None and all(examples(b) == 1 for b in batches):
            self._calibration = None
            raise ValueError("calibration: every batch holds one example; the model's BatchNorm statistics "
                             "are re-estimated from batches of two or more (batch the inputs)")
        if not self.factors:
            raise ValueError("calibration: no shared weight of a Linear or Conv layer received inputs (wsc "
                             "compensates those; pass batches the model accepts, or no calibration)")
        return list(self.factors)

    def assigned(self, cb: Codebook) -> dict[str, np.ndarray]:
        """Codebook indices (flat, uint8 for <= 256 values, else uint16) of every shared tensor
        under a compensated codebook: GPTQ for calibrated layers, the bins' values for the others."""
        with self._assign_lock:
            if cb.key in self._assigned:
                self._assigned.move_to_end(cb.key)
                return self._assigned[cb.key]
        if not self.factors:
            raise RuntimeError("a compensated codebook needs Workbench.calibrate() first")
        values = torch.from_numpy(cb.values.astype(np.float64))
        work = self.scoped(cb.scheme)[1]
        out = {}
        for name, flat in work.items():
            if name in self.factors:
                w = flat.to(torch.float64).reshape(self.originals[name].shape)
                q = assign_tensor(w, self.factors[name], values, RATES[cb.compensation - 1])
                out[name] = q.numpy().astype(cb.index_type)
            else:
                out[name] = self.tensor_indices(name, cb.compensate(0))
        with self._assign_lock:
            self._assigned[cb.key] = out
            while len(self._assigned) > ASSIGNED_KEPT:
                self._assigned.popitem(last=False)
        return out

    @property
    def recalibrating(self) -> bool:
        """Whether each codebook's BatchNorm statistics are re-estimated (after calibrate())."""
        return self._calibration is not None

    def calibration_digest(self) -> int | None:
        """CRC-32 of the calibration inputs (they move the scores of compensated codebooks, and
        of every codebook when BatchNorm statistics are re-estimated), or None before calibrate()."""
        return self._calibration_crc

    def stored_file(self, cb: Codebook, item=None) -> tuple[dict, dict, dict]:
        """(the unshared tensors as the file of ``cb`` stores them, {name: Narrowed} of those
        stored narrower, the tensors as its reader restores them): exact or compact, with
        re-estimated BatchNorm statistics after calibrate(). ``item``: a working copy
        (model, state) holding ``cb``'s shared weights."""
        if not self.recalibrating:
            return self._plain
        with self._assign_lock:
            if cb.key in self._stored:
                self._stored.move_to_end(cb.key)
                return self._stored[cb.key]
        if item is None:
            with self._copy_holding(cb) as held:
                stats = self._recalibrated(*held)
        else:
            stats = self._recalibrated(*item)
        out = self._encoded({**self.stored, **stats})
        with self._assign_lock:
            self._stored[cb.key] = out
            while len(self._stored) > STORED_KEPT:
                self._stored.popitem(last=False)
        return out

    def _encoded(self, tensors: dict[str, torch.Tensor]) -> tuple[dict, dict, dict]:
        """(file tensors, restore, restored tensors) of unshared tensors under the policy."""
        out = (tensors, {}) if self.stored_policy == "exact" else compact(
            tensors, self._folded, codes=self.stored_policy == "compact")
        return (*out, restore_stored(*out))

    @functools.cached_property
    def _plain(self) -> tuple[dict, dict, dict]:
        """:meth:`stored_file` of every codebook without re-estimated statistics."""
        return self._encoded(dict(self.stored))

    def _recalibrated(self, model: torch.nn.Module, target: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Re-estimated statistics of the BatchNorms of a working copy holding shared weights.
        Its unshared tensors are first set to what the file restores (the BatchNorms' affine
        parameters to the originals), so the statistics never depend on what the copy held."""
        modules = dict(model.named_modules())
        affine = {f"{p}.{leaf}" for p in self._norms for leaf in ("weight", "bias")}
        with torch.no_grad():
            for name, t in self._plain[2].items():
                target[name].copy_(self.stored[name] if name in affine else t)
        return recalibrate(model, {p: modules[p] for p in self._norms}, self._calibration)

    def scale_bytes(self, scheme: Scheme) -> int:
        """Bytes the scales of a scheme add to the file (bfloat16, one per tensor or per channel)."""
        return sum(2 * int(s.numel()) for s in self.scoped(scheme)[0].values())

    def coded_bits(self, cb: Codebook, coder: str = "huffman") -> int:
        """Estimated coded size in bits: payloads, code tables and the codebook.

        ``coder``: ``"huffman"`` (Huffman payloads, one byte of code length per value and
        tensor), ``"rans"`` (:func:`wsc.rans.estimate_bits` of each tensor's histogram: its
        order-0 entropy, flushed states and packed table) or ``"auto"`` (the smaller per tensor).
        """
        from wsc import rans

        total = 32 * cb.size + 8 * self.scale_bytes(cb.scheme)
        for c in self.tensor_counts(cb):
            huffman = huffman_bits(c) + 8 * cb.size
            coded = rans.estimate_bits(c) if coder != "huffman" else 0
            total += {"huffman": huffman, "rans": coded, "auto": min(huffman, coded)}[coder]
        return int(total)

    # ------------------------------------------------------------ models
    @staticmethod
    def _targets(model: torch.nn.Module) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
        return model, model.state_dict()

    def _new_copy(self):
        """A new working copy, made from the first one (with the modes and momenta of the
        model: the first may be in the middle of a re-estimation on another thread)."""
        with self._copy_lock:
            model = copy.deepcopy(self._base)
        for m, (training, momentum) in zip(model.modules(), self._modes):
            m.training = training
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.momentum = momentum
        return self._targets(model)

    def apply(self, target: dict[str, torch.Tensor], cb: Codebook | None) -> None:
        """Write the shared weights of ``cb`` (or the originals when None) into a copy's tensors."""
        table = None if cb is None else torch.from_numpy(cb.table())
        scales, source, _ = self.scoped(PAPER if cb is None else cb.scheme)
        assigned = self.assigned(cb) if cb is not None and cb.compensated else None
        with torch.no_grad():
            for name, work in source.items():
                t = target[name]
                if table is None:
                    t.copy_(self.originals[name])
                elif assigned is not None:
                    v = torch.from_numpy(cb.values)[torch.from_numpy(assigned[name].astype(np.int64))]
                    t.copy_((rescale(v, scales[name]) if name in scales else v).reshape(t.shape))
                elif name in scales:
                    t.copy_(rescale(ops.share(work, cb.lo, cb.hi, table), scales[name]).reshape(t.shape))
                elif t.device.type == "cpu" and t.dtype in _NATIVE and t.is_contiguous():
                    ops.share(work, cb.lo, cb.hi, table, out=t.view(-1))  # in place, no temporary
                else:
                    t.copy_(ops.share(work, cb.lo, cb.hi, table).reshape(t.shape))

    @contextlib.contextmanager
    def _copy_holding(self, cb: Codebook | None):
        """A working copy (model, state) from the pool holding the shared weights of ``cb``."""
        try:
            item = self._pool.get_nowait()
        except queue.Empty:
            item = self._new_copy()
        try:
            self.apply(item[1], cb)
            yield item
        finally:
            self._pool.put(item)

    @contextlib.contextmanager
    def model(self, cb: Codebook | None):
        """A working copy of the model as the file of ``cb`` restores it (None: the original model)."""
        with self._copy_holding(cb) as item:
            if self.stored_policy != "exact" or self.recalibrating or self._stored_written:
                self._stored_written = True  # else the copies hold the originals, as always before
                tensors = self.stored if cb is None else self.stored_file(cb, item)[2]
                with torch.no_grad():
                    for name, t in tensors.items():
                        item[1][name].copy_(t)
            yield item[0]

    # ------------------------------------------------------------ files
    def tensor_indices(self, name: str, cb: Codebook) -> np.ndarray:
        """Flat codebook indices (uint8 for <= 256 values, else uint16) of one shared tensor,
        binned in blocks (no temporary larger than a block), or as compensated."""
        if cb.compensated:
            return self.assigned(cb)[name]
        itype = cb.index_type
        lut = cb.index_map.astype(itype)
        work = self.scoped(cb.scheme)[1][name]
        out = np.empty(work.numel(), dtype=itype)
        block = self.weights.block
        buf = torch.empty(min(block, work.numel()), dtype=index_dtype(cb.k))
        for s in range(0, work.numel(), block):
            part = work[s:s + block]
            b = ops.bin_uniform(part, cb.k, cb.lo, cb.hi, out=buf[:part.numel()])
            np.take(lut, b.indices.numpy(), out=out[s:s + part.numel()])
        return out

    def indices(self, cb: Codebook) -> dict[str, np.ndarray]:
        """Flat codebook indices of every shared tensor (all at once; :meth:`payload` makes them one by one)."""
        return {name: self.tensor_indices(name, cb) for name in self._work}

    def payload(self, cb: Codebook, info: dict | None = None) -> Payload:
        """What the file of ``cb`` holds; each tensor's indices are made when the writer codes it."""
        self.check_unchanged()
        scales = self.scoped(cb.scheme)[0]
        shared = [SharedTensor(n, functools.partial(self.tensor_indices, n, cb), tuple(self.originals[n].shape),
                               self.originals[n].dtype, scales.get(n)) for n in self._work]
        stored, restore, _ = self.stored_file(cb)
        return Payload(cb.values, shared, dict(stored), dict(self.selection.aliases),
                       list(self.selection.order), info or {}, dict(restore))


def _digest(obj, crc: int = 0) -> int:
    """CRC-32 of nested batches: every tensor's dtype, shape and bytes, every container's
    kind, length and keys, every other leaf's repr, in order."""
    if isinstance(obj, torch.Tensor):
        crc = zlib.crc32(f"T{obj.dtype}{tuple(obj.shape)}".encode(), crc)
        return zlib.crc32(obj.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy(), crc)
    if isinstance(obj, dict):
        crc = zlib.crc32(f"D{len(obj)}".encode(), crc)
        for k in sorted(obj, key=repr):
            crc = _digest(obj[k], zlib.crc32(repr(k).encode(), crc))
        return crc
    if isinstance(obj, (list, tuple)):
        crc = zlib.crc32(f"{type(obj).__name__}{len(obj)}".encode(), crc)
        for v in obj:
            crc = _digest(v, crc)
        return crc
    return zlib.crc32(f"R{obj!r}".encode(), crc)


def _source(tensors: dict[str, torch.Tensor]):
    """Where the bins of any k come from: sorted copies up to SORT_LIMIT weights, else streaming."""
    n = sum(int(t.numel()) for t in tensors.values())
    return SortedTensors(tensors) if n <= SORT_LIMIT else WeightStream(tensors)


def _scale(original: torch.Tensor, flat: torch.Tensor, scope: str) -> torch.Tensor:
    """bfloat16 scales of a tensor: its standard deviation ("tensor"), or that of each slice
    along dimension 0 ("channel", tensors of two or more dimensions); 1 where it is 0."""
    rows = max(scale_counts(original.shape)) if scope == "channel" else 1
    return _bf16_scale(flat.float().reshape(rows, -1).std(dim=1, unbiased=False))


def _bf16_scale(x: torch.Tensor) -> torch.Tensor:
    """x rounded to bfloat16, as the file stores scales; 1 where that is 0 or not finite."""
    s = x.to(torch.bfloat16)
    return torch.where((s > 0) & torch.isfinite(s), s, torch.ones_like(s))


def _divide(flat: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """float32 weights / scale (per slice along dimension 0 when there are several scales)."""
    x = flat.float().reshape(scale.numel(), -1)
    return (x / scale.float().reshape(-1, 1)).reshape(-1).contiguous()


def _label(params: ParamSpec) -> str:
    return repr(params) if isinstance(params, str) else getattr(params, "__name__", "predicate")


__all__ = ["Workbench", "check_model", "NAN_POLICIES"]
